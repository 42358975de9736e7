//! Services: one record per service (its deployments and events inside),
//! keyed `cluster` 0x00 `name`. The API creates, updates and deletes them;
//! the service controller (`crate::services`) writes its decisions back
//! with [`Db::replace_service`], checked against the bytes it evaluated,
//! so a concurrent UpdateService makes it evaluate again rather than
//! overwrite the user's change.

use super::{decode, encode, Db, DbError};
use crate::records::{ClusterStatus, ServiceRecord, ServiceStatus, TaskRecord};
use crate::store::{Table, Txn};

pub(super) fn service_key(cluster: &str, name: &str) -> Vec<u8> {
    crate::store::composite_key(&[cluster.as_bytes(), name.as_bytes()], false)
}

/// A service record with the bytes it was read from (for a checked write).
#[derive(Debug, Clone)]
pub struct ServiceSnapshot {
    pub record: ServiceRecord,
    bytes: Vec<u8>,
}

fn not_found(cluster: &str, name: &str) -> DbError {
    DbError::NotFound {
        kind: "service",
        name: format!("{cluster}/{name}"),
    }
}

impl Db {
    /// ECS's CreateService: the name must not be taken by an ACTIVE or
    /// DRAINING service of the cluster (an INACTIVE one is replaced).
    pub async fn create_service(&self, rec: ServiceRecord) -> Result<ServiceRecord, DbError> {
        let key = service_key(&rec.cluster, &rec.name);
        self.write("service", || {
            let (cluster, cluster_bytes) = self
                .get::<crate::records::ClusterRecord>(Table::Clusters, rec.cluster.as_bytes())?
                .ok_or_else(|| DbError::NotFound {
                    kind: "cluster",
                    name: rec.cluster.clone(),
                })?;
            if cluster.status != ClusterStatus::Active {
                return Err(DbError::FailedPrecondition(format!(
                    "cluster {} is {}",
                    rec.cluster,
                    cluster.status.as_str()
                )));
            }
            let txn =
                Txn::new().check_equals(Table::Clusters, rec.cluster.as_bytes(), cluster_bytes);
            let txn = match self.get::<ServiceRecord>(Table::Services, &key)? {
                Some((old, _)) if old.status != ServiceStatus::Inactive => {
                    return Err(DbError::InvalidArgument {
                        field: "serviceName",
                        message: format!(
                            "Creation of service was not idempotent: service {} is {} in \
                             cluster {}",
                            rec.name,
                            old.status.as_str(),
                            rec.cluster
                        ),
                    })
                }
                Some((_, bytes)) => txn.check_equals(Table::Services, key.clone(), bytes),
                None => txn.check_absent(Table::Services, key.clone()),
            };
            Ok((
                txn.put(Table::Services, key.clone(), encode(Table::Services, &rec)?),
                rec.clone(),
            ))
        })
        .await
    }

    pub fn service(&self, cluster: &str, name: &str) -> Result<Option<ServiceRecord>, DbError> {
        Ok(self
            .get::<ServiceRecord>(Table::Services, &service_key(cluster, name))?
            .map(|(r, _)| r))
    }

    /// The service with the bytes it was read from.
    pub fn service_snapshot(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<Option<ServiceSnapshot>, DbError> {
        Ok(self
            .get::<ServiceRecord>(Table::Services, &service_key(cluster, name))?
            .map(|(record, bytes)| ServiceSnapshot { record, bytes }))
    }

    /// The services of `cluster` (every status), by name.
    pub fn services_of(&self, cluster: &str) -> Result<Vec<ServiceRecord>, DbError> {
        let prefix = crate::store::composite_key(&[cluster.as_bytes()], true);
        Ok(self.scan(Table::Services, &prefix)?)
    }

    /// Every service of every cluster, with its bytes.
    pub fn service_snapshots(&self) -> Result<Vec<ServiceSnapshot>, DbError> {
        self.store
            .scan_prefix(Table::Services, b"")?
            .into_iter()
            .map(|(k, v)| {
                Ok(ServiceSnapshot {
                    record: decode(Table::Services, &k, &v)?,
                    bytes: v,
                })
            })
            .collect()
    }

    /// Applies `change` to the current record (retried on conflict);
    /// writes only if it changed. NotFound for an INACTIVE service.
    pub async fn update_service(
        &self,
        cluster: &str,
        name: &str,
        mut change: impl FnMut(&mut ServiceRecord) -> Result<(), DbError>,
    ) -> Result<ServiceRecord, DbError> {
        let key = service_key(cluster, name);
        self.write("service", || {
            let (mut rec, bytes) = self
                .get::<ServiceRecord>(Table::Services, &key)?
                .filter(|(r, _)| r.status != ServiceStatus::Inactive)
                .ok_or_else(|| not_found(cluster, name))?;
            let before = rec.clone();
            change(&mut rec)?;
            if rec == before {
                return Ok((Txn::new(), rec));
            }
            rec.version += 1;
            Ok((
                Txn::new()
                    .check_equals(Table::Services, key.clone(), bytes)
                    .put(Table::Services, key.clone(), encode(Table::Services, &rec)?),
                rec,
            ))
        })
        .await
    }

    /// Writes the controller's new record if the stored one still has the
    /// bytes of `snap`. `Ok(false)`: it changed meanwhile (evaluate again).
    pub async fn replace_service(
        &self,
        snap: &ServiceSnapshot,
        mut rec: ServiceRecord,
    ) -> Result<bool, DbError> {
        rec.version = snap.record.version + 1;
        let key = service_key(&rec.cluster, &rec.name);
        let txn = Txn::new()
            .check_equals(Table::Services, key.clone(), snap.bytes.clone())
            .put(Table::Services, key, encode(Table::Services, &rec)?);
        match self.store.commit(&txn) {
            Ok(()) => {
                self.commit.durable().await?;
                Ok(true)
            }
            Err(crate::store::StoreError::Conflict) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The tasks of every service, by (cluster, group), from one scan.
    pub fn service_tasks(
        &self,
    ) -> Result<std::collections::HashMap<(String, String), Vec<TaskRecord>>, DbError> {
        let mut out: std::collections::HashMap<(String, String), Vec<TaskRecord>> =
            Default::default();
        for t in self.all_tasks()? {
            if t.group.starts_with("service:") {
                out.entry((t.cluster.clone(), t.group.clone()))
                    .or_default()
                    .push(t);
            }
        }
        Ok(out)
    }
}
