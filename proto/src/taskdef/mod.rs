//! ECS task definitions: serde model of ECS's JSON and its validation.
//!
//! (Being written: see the task-definition model work item.)
