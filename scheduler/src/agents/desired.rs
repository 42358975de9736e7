//! The desired set of one instance as its agent is sent it: every task the
//! store assigns to the instance, with its definition rendered as ECS's JSON
//! (RunTask's overrides applied) and, while the task should run, the secret
//! values and registry credentials it references.
//!
//! A desired set is rebuilt on every change of the instance's set (and the
//! session sends the agent only the tasks that differ from what it sent
//! last, [`berth_proto::delta`]), so
//! each task's rendering is kept in a [`RenderCache`] shared by every
//! stream, keyed by (family, revision, overrides): the JSON is rendered
//! again only when the revision's record changes (its status on
//! deregistration), and secrets are decrypted again only when the secret
//! store's generation moves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use berth_proto::arn::ArnPrefix;
use berth_proto::ecs::StopCode;
use berth_proto::taskdef::{FieldIssue, TaskDefinitionStatus};

use super::Context;
use crate::db::DbError;
use crate::records::{
    DesiredStatus, HealthCheckRecord, PortAssignment, TargetGroupRecord, TaskDefinitionRecord,
    TaskOverrides, TaskRecord, TaskStatus, UnixMillis,
};
use crate::secrets::{Secrets, SecretsError, TaskSecrets};

/// Renderings kept before the cache starts over (RunTask overrides can make
/// every task's key its own).
const MAX_RENDERED: usize = 1024;

/// What the agent is sent: the whole set or a delta ([`berth_proto::delta`]).
pub type DesiredUpdate = berth_proto::delta::Update<DesiredTask>;

impl berth_proto::delta::Keyed for DesiredTask {
    fn key(&self) -> &str {
        &self.task_arn
    }
}

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
    /// Its targets' health checks, which its agent runs while it runs.
    pub target_checks: Vec<TargetCheck>,
    /// ECS's task group (`service:NAME` for a service's tasks).
    pub group: String,
}

/// One health check of a task's target, for its agent to run.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCheck {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: u16,
    pub host_port: u16,
    pub check: HealthCheckRecord,
}

/// The full desired set of `instance`.
pub fn desired_set(ctx: &Context, instance: &str) -> Result<DesiredSet, DbError> {
    let (generation, tasks) = ctx.db.desired_set(instance)?;
    let groups: HashMap<String, TargetGroupRecord> = if tasks.iter().any(|t| !t.targets.is_empty())
    {
        ctx.db
            .target_groups()?
            .into_iter()
            .map(|g| (g.name.clone(), g))
            .collect()
    } else {
        HashMap::new()
    };
    let mut definitions: Vec<TaskDefinitionRecord> = Vec::new();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let i = match definitions
            .iter()
            .position(|d| d.family == t.family && d.revision == t.revision)
        {
            Some(i) => i,
            None => {
                definitions.push(ctx.db.task_definition(&t.family, Some(t.revision))?);
                definitions.len() - 1
            }
        };
        let td = &definitions[i];
        // RunTask's overrides: the agent runs the definition as overridden.
        let rendered = ctx.rendered.render(td, t.overrides.as_ref(), &ctx.arn);
        let secrets = task_secrets(ctx, &t, &rendered);
        // A stopped task whose targets still drain keeps running.
        let runs = t.runs_for_agent();
        out.push(DesiredTask {
            task_arn: ctx.arn.task(&t.cluster, &t.id),
            desired_status: if runs {
                DesiredStatus::Running
            } else {
                DesiredStatus::Stopped
            },
            task_definition_json: rendered.json.clone(),
            cluster: t.cluster.clone(),
            family: t.family.clone(),
            revision: t.revision,
            ports: t.reservation.ports.clone(),
            stop_code: if runs { None } else { t.stop_code },
            stopped_reason: if runs {
                String::new()
            } else {
                t.stopped_reason.clone()
            },
            secrets,
            group: t.group.clone(),
            target_checks: if runs {
                target_checks(&t, &groups)
            } else {
                Vec::new()
            },
        });
    }
    Ok(DesiredSet {
        generation,
        tasks: out,
    })
}

/// The checks of a task's targets whose groups still exist.
fn target_checks(t: &TaskRecord, groups: &HashMap<String, TargetGroupRecord>) -> Vec<TargetCheck> {
    t.targets
        .iter()
        .filter_map(|x| {
            let g = groups.get(berth_proto::arn::target_group_name(&x.target_group_arn))?;
            x.target_group_arn.ends_with(&g.id).then(|| TargetCheck {
                target_group_arn: x.target_group_arn.clone(),
                container_name: x.container_name.clone(),
                container_port: x.container_port,
                host_port: x.host_port,
                check: g.health_check.clone(),
            })
        })
        .collect()
}

/// The secret values a task's agent needs, only while the task should run
/// and has not stopped. A reference that cannot be resolved now (a secret
/// deleted since StartTask) is logged by path and name and left out: the
/// agent then fails that container's start, naming it.
fn task_secrets(ctx: &Context, t: &TaskRecord, rendered: &Rendered) -> TaskSecrets {
    if !t.runs_for_agent() || t.last_status == TaskStatus::Stopped {
        return TaskSecrets::default();
    }
    match rendered.secrets(&ctx.secrets) {
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

/// Renderings by (family, revision), then overrides. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RenderCache {
    inner: Arc<Mutex<Renderings>>,
}

#[derive(Debug)]
struct Entry {
    overrides: Option<TaskOverrides>,
    /// The revision's mutable fields when rendered: a change renders again.
    status: TaskDefinitionStatus,
    deregistered_at: Option<UnixMillis>,
    rendered: Arc<Rendered>,
}

/// One task definition revision as overridden, rendered for agents.
#[derive(Debug)]
pub struct Rendered {
    /// The revision with the overrides applied.
    pub definition: TaskDefinitionRecord,
    /// `definition` as `describe-task-definition` prints it.
    pub json: String,
    /// The last resolution and the secret-store generation it was made at.
    secrets: Mutex<Option<Resolution>>,
}

type Resolution = (u64, TaskSecrets, Vec<FieldIssue>);

/// Entries by (family, revision), each for different overrides.
type Renderings = HashMap<(String, u32), Vec<Entry>>;

impl RenderCache {
    fn lock(&self) -> MutexGuard<'_, Renderings> {
        // Each update is one map operation; a poisoned lock holds a whole map.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `td` with `overrides` applied and rendered, from the cache when the
    /// revision's record is as it was rendered.
    pub fn render(
        &self,
        td: &TaskDefinitionRecord,
        overrides: Option<&TaskOverrides>,
        arn: &ArnPrefix,
    ) -> Arc<Rendered> {
        let key = (td.family.clone(), td.revision);
        if let Some(e) = self.lock().get(&key).and_then(|v| {
            v.iter().find(|e| {
                e.overrides.as_ref() == overrides
                    && e.status == td.status
                    && e.deregistered_at == td.deregistered_at
            })
        }) {
            return e.rendered.clone();
        }
        let mut definition = td.clone();
        if let Some(o) = overrides {
            definition.definition = o.apply(&td.definition);
        }
        let json = definition.describe_json(arn);
        let rendered = Arc::new(Rendered {
            definition,
            json,
            secrets: Mutex::new(None),
        });
        let mut map = self.lock();
        if map.values().map(Vec::len).sum::<usize>() >= MAX_RENDERED {
            map.clear();
        }
        let entries = map.entry(key).or_default();
        entries.retain(|e| e.overrides.as_ref() != overrides);
        entries.push(Entry {
            overrides: overrides.cloned(),
            status: td.status,
            deregistered_at: td.deregistered_at,
            rendered: rendered.clone(),
        });
        rendered
    }
}

impl Rendered {
    /// The definition's secrets resolved, decrypted again only when the
    /// secret store changed since the last resolution.
    pub fn secrets(&self, store: &Secrets) -> Result<(TaskSecrets, Vec<FieldIssue>), SecretsError> {
        // Read before resolving: a write during the resolution moves it, so
        // what is kept is never taken for newer than it is.
        let generation = store.generation();
        let mut last = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((g, secrets, issues)) = last.as_ref() {
            if *g == generation {
                return Ok((secrets.clone(), issues.clone()));
            }
        }
        let (secrets, issues) = store.resolve_task(&self.definition.definition)?;
        *last = Some((generation, secrets.clone(), issues.clone()));
        Ok((secrets, issues))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;
    use crate::records::ContainerOverride;
    use crate::secrets::SecretKey;
    use crate::store::SledStore;

    fn revision() -> TaskDefinitionRecord {
        let definition = berth_proto::taskdef::parse_registration(
            r#"{"family":"web","containerDefinitions":[{"name":"a","image":"x","memory":8,
                "secrets":[{"name":"PW","valueFrom":"pw"}]}]}"#,
        )
        .unwrap()
        .definition;
        TaskDefinitionRecord {
            family: "web".into(),
            revision: 3,
            status: TaskDefinitionStatus::Active,
            registered_at: 1,
            deregistered_at: None,
            definition,
        }
    }

    #[tokio::test]
    async fn renders_once_per_revision_overrides_and_secret_generation() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(Arc::new(SledStore::open_when_free(dir.path()).unwrap()))
            .await
            .unwrap();
        let secrets = Secrets::new(SecretKey::from_bytes([9; 32]), db);
        secrets.put("pw", b"one").await.unwrap();
        let arn = ArnPrefix::default();
        let cache = RenderCache::default();
        let td = revision();

        let plain = cache.render(&td, None, &arn);
        assert_eq!(plain.json, td.describe_json(&arn));
        assert!(Arc::ptr_eq(&plain, &cache.render(&td, None, &arn)));

        let o = TaskOverrides {
            container_overrides: vec![ContainerOverride {
                name: "a".into(),
                command: Some(vec!["sleep".into(), "9".into()]),
                ..Default::default()
            }],
        };
        let overridden = cache.render(&td, Some(&o), &arn);
        assert!(!Arc::ptr_eq(&plain, &overridden));
        assert!(overridden.json.contains("sleep"), "{}", overridden.json);
        assert!(Arc::ptr_eq(&overridden, &cache.render(&td, Some(&o), &arn)));
        assert!(Arc::ptr_eq(&plain, &cache.render(&td, None, &arn)));

        // Deregistration changes the record: the JSON is rendered again.
        let gone = TaskDefinitionRecord {
            status: TaskDefinitionStatus::Inactive,
            deregistered_at: Some(2),
            ..td.clone()
        };
        let again = cache.render(&gone, None, &arn);
        assert!(!Arc::ptr_eq(&plain, &again));
        assert_eq!(again.json, gone.describe_json(&arn));

        // Secrets are resolved again only after the store changed.
        let value = |r: &Rendered| r.secrets(&secrets).unwrap().0.env[0].value.clone();
        assert_eq!(value(&plain), "one");
        let generation = secrets.generation();
        assert_eq!(value(&plain), "one");
        assert_eq!(secrets.generation(), generation);
        secrets.put("pw", b"two").await.unwrap();
        assert_ne!(secrets.generation(), generation);
        assert_eq!(value(&plain), "two");
    }
}
