//! Service auto scaling's records: one [`ScalableTargetRecord`] per
//! service (`cluster` 0x00 `service`) holding its min/max, policies (with
//! their cooldown marks), scheduled actions and the last
//! [`MAX_ACTIVITIES`] scaling activities. A scaling decision writes the
//! service's desired count, its event and the target record in one
//! transaction ([`Db::scale_service`]), checked against what was read, so
//! an UpdateService in between makes the autoscaler decide again.

use serde::{Deserialize, Serialize};

use super::services::service_key;
use super::{encode, Db, DbError};
use crate::autoscaling::decide::{Cooldowns, PolicyConfig, Suspended};
use crate::records::{ServiceRecord, ServiceStatus, UnixMillis};
use crate::store::{Table, Txn};

/// Activities kept per service (newest first).
pub const MAX_ACTIVITIES: usize = 50;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub name: String,
    pub config: PolicyConfig,
    pub cooldowns: Cooldowns,
    pub created_at: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledActionRecord {
    pub name: String,
    /// at(…), rate(…) or cron(…).
    pub schedule: String,
    pub timezone: String,
    pub start: Option<UnixMillis>,
    pub end: Option<UnixMillis>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub created_at: UnixMillis,
    /// The latest fire time applied.
    pub last_fire: Option<UnixMillis>,
}

/// One entry of DescribeScalingActivities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRecord {
    pub id: String,
    pub description: String,
    pub cause: String,
    pub start: UnixMillis,
    pub end: Option<UnixMillis>,
    /// Successful, Failed, … (AAS's StatusCode).
    pub status_code: String,
    pub status_message: String,
    /// Set on evaluations that did not scale.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_scaled_reasons: Vec<String>,
}

/// A service's scalable target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalableTargetRecord {
    pub cluster: String,
    pub service: String,
    pub min: u32,
    pub max: u32,
    pub suspended: Suspended,
    pub created_at: UnixMillis,
    pub policies: Vec<PolicyRecord>,
    pub scheduled_actions: Vec<ScheduledActionRecord>,
    /// Newest first.
    pub activities: Vec<ActivityRecord>,
}

impl ScalableTargetRecord {
    /// Application Auto Scaling's ResourceId: `service/<cluster>/<service>`.
    pub fn resource_id(&self) -> String {
        format!("service/{}/{}", self.cluster, self.service)
    }

    pub fn push_activity(&mut self, a: ActivityRecord) {
        self.activities.insert(0, a);
        self.activities.truncate(MAX_ACTIVITIES);
    }
}

fn not_found(cluster: &str, service: &str) -> DbError {
    DbError::NotFound {
        kind: "scalable target",
        name: format!("service/{cluster}/{service}"),
    }
}

impl Db {
    pub fn scalable_target(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<ScalableTargetRecord>, DbError> {
        Ok(self
            .get::<ScalableTargetRecord>(Table::ScalableTargets, &service_key(cluster, service))?
            .map(|(r, _)| r))
    }

    /// The scalable targets of `cluster`, or of every cluster.
    pub fn scalable_targets(
        &self,
        cluster: Option<&str>,
    ) -> Result<Vec<ScalableTargetRecord>, DbError> {
        let prefix = match cluster {
            Some(c) => crate::store::composite_key(&[c.as_bytes()], true),
            None => Vec::new(),
        };
        Ok(self.scan(Table::ScalableTargets, &prefix)?)
    }

    /// RegisterScalableTarget: creates the target (min and max required)
    /// or changes the given fields of an existing one. The service must be
    /// ACTIVE.
    pub async fn register_scalable_target(
        &self,
        cluster: &str,
        service: &str,
        change: impl Fn(Option<ScalableTargetRecord>) -> Result<ScalableTargetRecord, DbError>,
    ) -> Result<ScalableTargetRecord, DbError> {
        let key = service_key(cluster, service);
        self.write("scalable target", || {
            let (svc, svc_bytes) = self
                .get::<ServiceRecord>(Table::Services, &key)?
                .filter(|(s, _)| s.status == ServiceStatus::Active)
                .ok_or_else(|| DbError::NotFound {
                    kind: "service",
                    name: format!("{cluster}/{service}"),
                })?;
            if svc.scheduling == crate::records::SchedulingStrategy::Daemon {
                return Err(DbError::InvalidArgument {
                    field: "target.service",
                    message: format!(
                        "{service} is a DAEMON service: its desired count follows the instances \
                         and cannot be scaled"
                    ),
                });
            }
            let old = self.get::<ScalableTargetRecord>(Table::ScalableTargets, &key)?;
            let mut txn = Txn::new().check_equals(Table::Services, key.clone(), svc_bytes);
            let rec = match old {
                Some((r, bytes)) => {
                    txn.add_check_equals(Table::ScalableTargets, key.clone(), bytes);
                    change(Some(r))?
                }
                None => {
                    txn.add_check_absent(Table::ScalableTargets, key.clone());
                    change(None)?
                }
            };
            txn.add_put(
                Table::ScalableTargets,
                key.clone(),
                encode(Table::ScalableTargets, &rec)?,
            );
            Ok((txn, rec))
        })
        .await
    }

    /// Applies `change` to an existing target (policies, actions).
    pub async fn update_scalable_target<R>(
        &self,
        cluster: &str,
        service: &str,
        mut change: impl FnMut(&mut ScalableTargetRecord) -> Result<R, DbError>,
    ) -> Result<(ScalableTargetRecord, R), DbError> {
        let key = service_key(cluster, service);
        self.write("scalable target", || {
            let (mut rec, bytes) = self
                .get::<ScalableTargetRecord>(Table::ScalableTargets, &key)?
                .ok_or_else(|| not_found(cluster, service))?;
            let out = change(&mut rec)?;
            Ok((
                Txn::new()
                    .check_equals(Table::ScalableTargets, key.clone(), bytes)
                    .put(
                        Table::ScalableTargets,
                        key.clone(),
                        encode(Table::ScalableTargets, &rec)?,
                    ),
                (rec, out),
            ))
        })
        .await
    }

    pub async fn deregister_scalable_target(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<ScalableTargetRecord, DbError> {
        let key = service_key(cluster, service);
        self.write("scalable target", || {
            let (rec, bytes) = self
                .get::<ScalableTargetRecord>(Table::ScalableTargets, &key)?
                .ok_or_else(|| not_found(cluster, service))?;
            Ok((
                Txn::new()
                    .check_equals(Table::ScalableTargets, key.clone(), bytes)
                    .delete(Table::ScalableTargets, key.clone()),
                rec,
            ))
        })
        .await
    }

    /// One scaling step: `change` sees the target and the ACTIVE service
    /// and edits both (desired count, event, activity, cooldowns); both
    /// are written in one transaction checked against what was read, and
    /// nothing is written (nor anyone woken) when neither changed.
    /// `Ok(None)`: the target or the service is gone.
    pub async fn scale_service<R>(
        &self,
        cluster: &str,
        service: &str,
        mut change: impl FnMut(&mut ScalableTargetRecord, &mut ServiceRecord) -> R,
    ) -> Result<Option<R>, DbError> {
        let key = service_key(cluster, service);
        let mut changed = false;
        let out = self.commit_retrying("service scaling", || {
            changed = false;
            let Some((mut target, t_bytes)) =
                self.get::<ScalableTargetRecord>(Table::ScalableTargets, &key)?
            else {
                return Ok((Txn::new(), None));
            };
            let Some((mut svc, s_bytes)) = self
                .get::<ServiceRecord>(Table::Services, &key)?
                .filter(|(s, _)| s.status == ServiceStatus::Active)
            else {
                return Ok((Txn::new(), None));
            };
            let before_svc = svc.clone();
            let before_target = target.clone();
            let out = change(&mut target, &mut svc);
            let mut txn = Txn::new();
            if svc != before_svc {
                svc.version += 1;
                txn.add_check_equals(Table::Services, key.clone(), s_bytes)
                    .add_put(Table::Services, key.clone(), encode(Table::Services, &svc)?);
            }
            if target != before_target {
                txn.add_check_equals(Table::ScalableTargets, key.clone(), t_bytes)
                    .add_put(
                        Table::ScalableTargets,
                        key.clone(),
                        encode(Table::ScalableTargets, &target)?,
                    );
            }
            changed = !txn.ops.is_empty();
            Ok((txn, Some(out)))
        })?;
        if changed {
            self.commit.durable().await?;
            self.wrote();
        }
        Ok(out)
    }
}
