//! The desired set of one instance as its agent is sent it: every task the
//! store assigns to the instance, with its definition rendered as ECS's JSON
//! (RunTask's overrides applied) and, while the task should run, the secret
//! values and registry credentials it references.

use berth_proto::ecs::StopCode;

use super::Context;
use crate::db::DbError;
use crate::records::{DesiredStatus, PortAssignment, TaskDefinitionRecord, TaskRecord, TaskStatus};
use crate::secrets::TaskSecrets;

/// An instance's desired set at one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredSet {
    pub generation: u64,
    pub tasks: Vec<DesiredTask>,
}

/// One task of a desired set.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredTask {
    pub task_arn: String,
    pub desired_status: DesiredStatus,
    /// The definition as `describe-task-definition` prints it, overridden.
    pub task_definition_json: String,
    pub cluster: String,
    pub family: String,
    pub revision: u32,
    pub ports: Vec<PortAssignment>,
    pub stop_code: Option<StopCode>,
    pub stopped_reason: String,
    /// Empty unless the task should run and has not stopped.
    pub secrets: TaskSecrets,
}

/// The full desired set of `instance`.
pub fn desired_set(ctx: &Context, instance: &str) -> Result<DesiredSet, DbError> {
    let (generation, tasks) = ctx.db.desired_set(instance)?;
    let mut definitions: Vec<((String, u32), TaskDefinitionRecord, String)> = Vec::new();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let key = (t.family.clone(), t.revision);
        let (td, json) = match definitions.iter().find(|(k, _, _)| *k == key) {
            Some((_, td, j)) => (td.clone(), j.clone()),
            None => {
                let td = ctx.db.task_definition(&t.family, Some(t.revision))?;
                let j = td.describe_json(&ctx.arn);
                definitions.push((key, td.clone(), j.clone()));
                (td, j)
            }
        };
        // RunTask's overrides: the agent runs the definition as overridden.
        let (td, json) = match &t.overrides {
            Some(o) => {
                let mut td = td;
                td.definition = o.apply(&td.definition);
                let j = td.describe_json(&ctx.arn);
                (td, j)
            }
            None => (td, json),
        };
        let secrets = task_secrets(ctx, &t, &td);
        out.push(DesiredTask {
            task_arn: ctx.arn.task(&t.cluster, &t.id),
            desired_status: t.desired_status,
            task_definition_json: json,
            cluster: t.cluster.clone(),
            family: t.family.clone(),
            revision: t.revision,
            ports: t.reservation.ports.clone(),
            stop_code: t.stop_code,
            stopped_reason: t.stopped_reason.clone(),
            secrets,
        });
    }
    Ok(DesiredSet {
        generation,
        tasks: out,
    })
}

/// The secret values a task's agent needs, only while the task should run
/// and has not stopped. A reference that cannot be resolved now (a secret
/// deleted since StartTask) is logged by path and name and left out: the
/// agent then fails that container's start, naming it.
fn task_secrets(ctx: &Context, t: &TaskRecord, td: &TaskDefinitionRecord) -> TaskSecrets {
    if t.desired_status != DesiredStatus::Running || t.last_status == TaskStatus::Stopped {
        return TaskSecrets::default();
    }
    match ctx.secrets.resolve_task(&td.definition) {
        Ok((resolved, issues)) => {
            for i in issues {
                tracing::warn!(task = %t.id, path = %i.path, cause = %i.message, "a secret of the task cannot be resolved");
            }
            resolved
        }
        Err(e) => {
            tracing::error!(task = %t.id, cause = %e, "cannot read the task's secrets");
            TaskSecrets::default()
        }
    }
}
