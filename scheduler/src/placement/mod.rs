//! Placement: choosing container instances for tasks. Pure functions, no I/O.
//!
//! - [`cql`]: ECS's Cluster Query Language (`memberOf` constraints): parse once, evaluate
//!   against an instance's [`cql::Facts`].

pub mod cql;
