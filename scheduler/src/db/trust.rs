//! Activations, certificate bookkeeping and deregistration. Registration
//! with an activation is one `Txn`: the activation's count goes up in the
//! same write that records the instance, checked against the activation's
//! bytes, so two hosts racing for the last registration of a code cannot
//! both win.

use super::{decode, encode, Db, DbError};
use crate::records::{
    ActivationRecord, ActivationStatus, ClusterRecord, ClusterStatus, InstanceRecord,
    InstanceStatus, RevokedCertRecord, UnixMillis,
};
use crate::store::{Table, Txn};

/// What a registration did.
#[derive(Debug, Clone)]
pub struct RegisterOutcome {
    pub instance: InstanceRecord,
    pub activation: ActivationRecord,
}

/// Compares without an early exit, so timing does not reveal a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn rfc3339(ms: UnixMillis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// The activation `id` if `code_sha256` matches it and it can register a
/// host at `now`, else the error the caller sees.
pub fn check_activation(
    found: Option<&ActivationRecord>,
    id: &str,
    code_sha256: &str,
    now: UnixMillis,
) -> Result<(), DbError> {
    // An unknown id and a wrong code read the same, so that neither can be
    // probed for.
    let a = found
        .filter(|a| constant_time_eq(a.code_sha256.as_bytes(), code_sha256.as_bytes()))
        .ok_or_else(|| {
            DbError::PermissionDenied(format!(
                "activation {id:?} does not exist or its code is wrong"
            ))
        })?;
    match a.status(now) {
        ActivationStatus::Active => Ok(()),
        ActivationStatus::Revoked => Err(DbError::PermissionDenied(format!(
            "activation {id} was revoked; create a new one with `berthctl activation create`"
        ))),
        ActivationStatus::Expired => Err(DbError::FailedPrecondition(format!(
            "activation {id} expired at {}; create a new one with `berthctl activation create`",
            rfc3339(a.expires_at)
        ))),
        ActivationStatus::Exhausted => Err(DbError::FailedPrecondition(format!(
            "activation {id} has reached its registration limit ({} of {} hosts registered); \
             create a new one with `berthctl activation create --registration-limit N`",
            a.registrations, a.registration_limit
        ))),
    }
}

impl Db {
    pub fn activation(&self, id: &str) -> Result<Option<ActivationRecord>, DbError> {
        Ok(self
            .get::<ActivationRecord>(Table::Activations, id.as_bytes())?
            .map(|(a, _)| a))
    }

    /// Every activation, oldest first.
    pub fn activations(&self) -> Result<Vec<ActivationRecord>, DbError> {
        let mut all: Vec<ActivationRecord> = self.scan(Table::Activations, b"")?;
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    /// Stores a new activation for an ACTIVE cluster.
    pub async fn create_activation(
        &self,
        rec: ActivationRecord,
    ) -> Result<ActivationRecord, DbError> {
        self.write("activation", || {
            let (_, cluster_bytes) = self.active_cluster_read(&rec.cluster)?;
            Ok((
                Txn::new()
                    .check_equals(Table::Clusters, rec.cluster.as_str(), cluster_bytes)
                    .check_absent(Table::Activations, rec.id.as_str())
                    .put(
                        Table::Activations,
                        rec.id.as_str(),
                        encode(Table::Activations, &rec)?,
                    ),
                rec.clone(),
            ))
        })
        .await
    }

    /// Revokes an activation: no host registers with it any more (hosts
    /// that did keep their certificates).
    pub async fn revoke_activation(&self, id: &str) -> Result<ActivationRecord, DbError> {
        self.write("activation", || {
            let (mut a, bytes) = self
                .get::<ActivationRecord>(Table::Activations, id.as_bytes())?
                .ok_or_else(|| DbError::NotFound {
                    kind: "activation",
                    name: id.to_owned(),
                })?;
            if a.revoked {
                return Ok((Txn::new(), a));
            }
            a.revoked = true;
            Ok((
                Txn::new().check_equals(Table::Activations, id, bytes).put(
                    Table::Activations,
                    id,
                    encode(Table::Activations, &a)?,
                ),
                a,
            ))
        })
        .await
    }

    /// Records a host that joins with activation `activation_id`: checks
    /// the code (by hash), expiry, revocation and limit, counts the
    /// registration and writes `instance` (whose cluster and custom
    /// attributes the caller took from the activation), all in one write.
    pub async fn register_instance(
        &self,
        activation_id: &str,
        code_sha256: &str,
        now: UnixMillis,
        instance: InstanceRecord,
    ) -> Result<RegisterOutcome, DbError> {
        self.write("registration", || {
            let found =
                self.get::<ActivationRecord>(Table::Activations, activation_id.as_bytes())?;
            check_activation(
                found.as_ref().map(|(a, _)| a),
                activation_id,
                code_sha256,
                now,
            )?;
            let Some((mut activation, act_bytes)) = found else {
                return Err(DbError::PermissionDenied(format!(
                    "activation {activation_id:?} does not exist or its code is wrong"
                )));
            };
            if activation.cluster != instance.cluster {
                return Err(DbError::FailedPrecondition(format!(
                    "activation {activation_id} is for cluster {}",
                    activation.cluster
                )));
            }
            let (_, cluster_bytes) = self
                .get::<ClusterRecord>(Table::Clusters, activation.cluster.as_bytes())?
                .filter(|(c, _)| c.status == ClusterStatus::Active)
                .ok_or_else(|| {
                    DbError::FailedPrecondition(format!(
                        "cluster {} of activation {activation_id} was deleted",
                        activation.cluster
                    ))
                })?;
            activation.registrations += 1;
            Ok((
                Txn::new()
                    .check_equals(Table::Activations, activation_id, act_bytes)
                    .check_equals(Table::Clusters, activation.cluster.as_str(), cluster_bytes)
                    .check_absent(Table::Instances, instance.id.as_str())
                    .put(
                        Table::Activations,
                        activation_id,
                        encode(Table::Activations, &activation)?,
                    )
                    .put(
                        Table::Instances,
                        instance.id.as_str(),
                        encode(Table::Instances, &instance)?,
                    ),
                RegisterOutcome {
                    instance: instance.clone(),
                    activation: activation.clone(),
                },
            ))
        })
        .await
    }

    /// Whether the certificate with this serial was revoked.
    pub fn is_revoked(&self, serial: &str) -> Result<bool, DbError> {
        Ok(self
            .store
            .get(Table::RevokedCerts, serial.as_bytes())?
            .is_some())
    }

    /// ECS's DeregisterContainerInstance: the instance becomes INACTIVE and
    /// every certificate issued to it is revoked, in one write. Tasks that
    /// are not STOPPED block it unless `force`; forced, they stay recorded
    /// until StopTask records them STOPPED (their instance is gone).
    pub async fn deregister_instance(
        &self,
        id: &str,
        force: bool,
    ) -> Result<InstanceRecord, DbError> {
        if !force {
            let busy = self
                .live_tasks_of_instance(id)?
                .iter()
                .filter(|t| t.holds_reservation())
                .count();
            if busy > 0 {
                return Err(DbError::FailedPrecondition(format!(
                    "container instance {id} still has {busy} task(s) that are not STOPPED; \
                     stop them first, or deregister with --force"
                )));
            }
        }
        self.write("container instance", || {
            let (mut rec, bytes) = self
                .get::<InstanceRecord>(Table::Instances, id.as_bytes())?
                .ok_or_else(|| DbError::NotFound {
                    kind: "container instance",
                    name: id.to_owned(),
                })?;
            let now = crate::records::now_millis();
            rec.status = InstanceStatus::Inactive;
            let mut txn = Txn::new().check_equals(Table::Instances, id, bytes).put(
                Table::Instances,
                id,
                encode(Table::Instances, &rec)?,
            );
            for serial in &rec.cert_serials {
                txn = txn.put(
                    Table::RevokedCerts,
                    serial.as_str(),
                    encode(
                        Table::RevokedCerts,
                        &RevokedCertRecord {
                            instance_id: id.to_owned(),
                            revoked_at: now,
                        },
                    )?,
                );
            }
            Ok((txn, rec))
        })
        .await
    }

    /// Revocation records, for tests and audits.
    pub fn revoked_certs(&self) -> Result<Vec<(String, RevokedCertRecord)>, DbError> {
        self.store
            .scan_prefix(Table::RevokedCerts, b"")?
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    decode(Table::RevokedCerts, &k, &v)?,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::HostResources;
    use crate::store::SledStore;
    use std::sync::Arc;

    fn activation(limit: u32, expires_at: UnixMillis) -> ActivationRecord {
        ActivationRecord {
            id: "act1".into(),
            code_sha256: "c0de".into(),
            cluster: "default".into(),
            created_at: 0,
            expires_at,
            registration_limit: limit,
            registrations: 0,
            attributes: vec![("rack".into(), "r1".into())],
            revoked: false,
        }
    }

    fn instance(id: &str) -> InstanceRecord {
        InstanceRecord {
            address: None,
            id: id.into(),
            cluster: "default".into(),
            hostname: "h".into(),
            status: InstanceStatus::Active,
            registered_at: 0,
            agent_version: String::new(),
            resources: HostResources::default(),
            attributes: vec![],
            cert_serials: vec![format!("serial-{id}")],
            activation_id: "act1".into(),
            custom_attributes: vec![],
            tags: vec![],
        }
    }

    async fn db(dir: &std::path::Path) -> Db {
        Db::open(Arc::new(SledStore::open(dir).unwrap()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn registrations_count_against_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path()).await;
        db.create_activation(activation(2, 1_000)).await.unwrap();
        for id in ["i1", "i2"] {
            db.register_instance("act1", "c0de", 10, instance(id))
                .await
                .unwrap();
        }
        let err = db
            .register_instance("act1", "c0de", 10, instance("i3"))
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::FailedPrecondition(_)), "{err}");
        assert!(err.to_string().contains("registration limit"), "{err}");
        assert!(db.instance("i3").unwrap().is_none());
        assert_eq!(db.activation("act1").unwrap().unwrap().registrations, 2);
    }

    #[tokio::test]
    async fn wrong_codes_expired_and_revoked_activations_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path()).await;
        db.create_activation(activation(5, 1_000)).await.unwrap();
        let err = |code: &'static str, now| {
            let db = db.clone();
            async move {
                db.register_instance("act1", code, now, instance("x"))
                    .await
                    .unwrap_err()
            }
        };
        let e = err("bad", 10).await;
        assert!(matches!(e, DbError::PermissionDenied(_)), "{e}");
        let e = err("c0de", 1_000).await;
        assert!(matches!(e, DbError::FailedPrecondition(_)), "{e}");
        assert!(
            e.to_string().contains("expired at 1970-01-01T00:00:01Z"),
            "{e}"
        );
        db.revoke_activation("act1").await.unwrap();
        let e = err("c0de", 10).await;
        assert!(e.to_string().contains("was revoked"), "{e}");
        let e = db
            .register_instance("nope", "c0de", 10, instance("x"))
            .await
            .unwrap_err();
        assert!(matches!(e, DbError::PermissionDenied(_)), "{e}");
    }

    #[tokio::test]
    async fn deregistration_revokes_every_certificate_of_the_instance() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path()).await;
        db.create_activation(activation(5, i64::MAX)).await.unwrap();
        db.register_instance("act1", "c0de", 10, instance("i1"))
            .await
            .unwrap();
        db.update_instance("i1", |r| r.cert_serials.push("renewed".into()))
            .await
            .unwrap();
        assert!(!db.is_revoked("serial-i1").unwrap());
        let rec = db.deregister_instance("i1", false).await.unwrap();
        assert_eq!(rec.status, InstanceStatus::Inactive);
        assert!(db.is_revoked("serial-i1").unwrap());
        assert!(db.is_revoked("renewed").unwrap());
        assert_eq!(db.revoked_certs().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn draining_and_activating_change_only_live_instances() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path()).await;
        db.create_activation(activation(5, i64::MAX)).await.unwrap();
        for id in ["i1", "i2"] {
            db.register_instance("act1", "c0de", 10, instance(id))
                .await
                .unwrap();
        }
        let rec = db
            .set_instance_status("i1", InstanceStatus::Draining)
            .await
            .unwrap();
        assert_eq!(rec.status, InstanceStatus::Draining);
        assert_eq!(
            db.instance("i1").unwrap().unwrap().status,
            InstanceStatus::Draining
        );
        // Again: nothing changes, no error.
        db.set_instance_status("i1", InstanceStatus::Draining)
            .await
            .unwrap();
        let rec = db
            .set_instance_status("i1", InstanceStatus::Active)
            .await
            .unwrap();
        assert_eq!(rec.status, InstanceStatus::Active);
        let e = db
            .set_instance_status("i1", InstanceStatus::Inactive)
            .await
            .unwrap_err();
        assert!(matches!(e, DbError::InvalidArgument { .. }), "{e}");
        db.deregister_instance("i2", false).await.unwrap();
        let e = db
            .set_instance_status("i2", InstanceStatus::Draining)
            .await
            .unwrap_err();
        assert!(matches!(e, DbError::FailedPrecondition(_)), "{e}");
        assert_eq!(
            db.instance("i2").unwrap().unwrap().status,
            InstanceStatus::Inactive
        );
        let e = db
            .set_instance_status("nope", InstanceStatus::Draining)
            .await
            .unwrap_err();
        assert!(matches!(e, DbError::NotFound { .. }), "{e}");
    }
}
