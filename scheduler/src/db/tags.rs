//! ECS's resource tags: read, merge and remove the tags of a cluster,
//! service, task, task definition or container instance, named by its
//! [`ResourceArn`]. Tags live in the resource's own record (the
//! [`Tagged`] records), so they are saved, restored and snapshotted with it;
//! each change is one checked write of that record.
//!
//! A resource whose record is absent, or whose record belongs to another
//! cluster than its ARN says, is NotFound (ECS's ResourceNotFoundException).

use berth_proto::arn::ResourceArn;
use berth_proto::names::MAX_TAGS;
use serde::{de::DeserializeOwned, Serialize};

use super::services::service_key;
use super::{decode, encode, taskdef_key, Db, DbError};
use crate::records::{
    merge_tags, ClusterRecord, InstanceRecord, ServiceRecord, Tagged, TaskDefinitionRecord,
    TaskRecord,
};
use crate::store::{Table, Txn};

/// Where a resource's record is, and how to tell it is the one the ARN names.
struct Location {
    table: Table,
    key: Vec<u8>,
    cluster: Option<String>,
}

fn locate(r: &ResourceArn) -> Location {
    match r {
        ResourceArn::Cluster { name } => Location {
            table: Table::Clusters,
            key: name.as_bytes().to_vec(),
            cluster: None,
        },
        ResourceArn::Service { cluster, name } => Location {
            table: Table::Services,
            key: service_key(cluster, name),
            cluster: None,
        },
        ResourceArn::Task { cluster, id } => Location {
            table: Table::Tasks,
            key: id.as_bytes().to_vec(),
            cluster: Some(cluster.clone()),
        },
        ResourceArn::TaskDefinition { family, revision } => Location {
            table: Table::TaskDefinitions,
            key: taskdef_key(family, *revision),
            cluster: None,
        },
        ResourceArn::ContainerInstance { cluster, id } => Location {
            table: Table::Instances,
            key: id.as_bytes().to_vec(),
            cluster: Some(cluster.clone()),
        },
    }
}

/// The record's cluster, for the records the key alone does not place.
trait InCluster {
    fn cluster(&self) -> Option<&str>;
}

impl InCluster for TaskRecord {
    fn cluster(&self) -> Option<&str> {
        Some(&self.cluster)
    }
}

impl InCluster for InstanceRecord {
    fn cluster(&self) -> Option<&str> {
        Some(&self.cluster)
    }
}

macro_rules! keyed_alone {
    ($($record:ty),*) => {$(
        impl InCluster for $record {
            fn cluster(&self) -> Option<&str> {
                None
            }
        }
    )*};
}

keyed_alone!(ClusterRecord, ServiceRecord, TaskDefinitionRecord);

fn not_found(r: &ResourceArn) -> DbError {
    DbError::NotFound {
        kind: "resource",
        name: r.resource(),
    }
}

impl Db {
    /// The record `loc` holds, with its bytes, if it is the one named.
    fn tagged<T: Tagged + InCluster + DeserializeOwned>(
        &self,
        loc: &Location,
    ) -> Result<Option<(T, Vec<u8>)>, DbError> {
        let Some(bytes) = self.store.get(loc.table, &loc.key)? else {
            return Ok(None);
        };
        let rec: T = decode(loc.table, &loc.key, &bytes)?;
        if let (Some(want), Some(have)) = (&loc.cluster, rec.cluster()) {
            if want != have {
                return Ok(None);
            }
        }
        Ok(Some((rec, bytes)))
    }

    /// The tags of the resource `r` names (ECS's ListTagsForResource).
    pub fn tags_of(&self, r: &ResourceArn) -> Result<Vec<(String, String)>, DbError> {
        let loc = locate(r);
        let tags = match r {
            ResourceArn::Cluster { .. } => self.tagged::<ClusterRecord>(&loc)?.map(|t| t.0.tags()),
            ResourceArn::Service { .. } => self.tagged::<ServiceRecord>(&loc)?.map(|t| t.0.tags()),
            ResourceArn::Task { .. } => self.tagged::<TaskRecord>(&loc)?.map(|t| t.0.tags()),
            ResourceArn::TaskDefinition { .. } => self
                .tagged::<TaskDefinitionRecord>(&loc)?
                .map(|t| t.0.tags()),
            ResourceArn::ContainerInstance { .. } => {
                self.tagged::<InstanceRecord>(&loc)?.map(|t| t.0.tags())
            }
        };
        tags.ok_or_else(|| not_found(r))
    }

    /// ECS's TagResource: `tags` (validated) merged into the resource's; a
    /// key present gets the new value. More than 50 in all is refused.
    /// Returns the resource's tags after the change.
    pub async fn tag_resource(
        &self,
        r: &ResourceArn,
        tags: &[(String, String)],
    ) -> Result<Vec<(String, String)>, DbError> {
        self.change_tags(r, |current| {
            merge_tags(current, tags);
            if current.len() > MAX_TAGS {
                return Err(DbError::InvalidArgument {
                    field: "tags",
                    message: format!(
                        "the resource would have {} tags; it may have at most {MAX_TAGS}",
                        current.len()
                    ),
                });
            }
            Ok(())
        })
        .await
    }

    /// ECS's UntagResource: removes the tags with these keys; keys the
    /// resource does not have are ignored. Returns the tags left.
    pub async fn untag_resource(
        &self,
        r: &ResourceArn,
        keys: &[String],
    ) -> Result<Vec<(String, String)>, DbError> {
        self.change_tags(r, |current| {
            current.retain(|(k, _)| !keys.contains(k));
            Ok(())
        })
        .await
    }

    async fn change_tags(
        &self,
        r: &ResourceArn,
        change: impl Fn(&mut Vec<(String, String)>) -> Result<(), DbError>,
    ) -> Result<Vec<(String, String)>, DbError> {
        let loc = locate(r);
        self.write("tags", || match r {
            ResourceArn::Cluster { .. } => self.retag::<ClusterRecord>(r, &loc, &change),
            ResourceArn::Service { .. } => self.retag::<ServiceRecord>(r, &loc, &change),
            ResourceArn::Task { .. } => self.retag::<TaskRecord>(r, &loc, &change),
            ResourceArn::TaskDefinition { .. } => {
                self.retag::<TaskDefinitionRecord>(r, &loc, &change)
            }
            ResourceArn::ContainerInstance { .. } => self.retag::<InstanceRecord>(r, &loc, &change),
        })
        .await
    }

    /// One attempt: read the record, change its tags, write it checked
    /// against the bytes read (nothing is written when nothing changed).
    fn retag<T: Tagged + InCluster + Serialize + DeserializeOwned>(
        &self,
        r: &ResourceArn,
        loc: &Location,
        change: &impl Fn(&mut Vec<(String, String)>) -> Result<(), DbError>,
    ) -> Result<(Txn, Vec<(String, String)>), DbError> {
        let (mut rec, bytes) = self.tagged::<T>(loc)?.ok_or_else(|| not_found(r))?;
        let before = rec.tags();
        let mut tags = before.clone();
        change(&mut tags)?;
        if tags == before {
            return Ok((Txn::new(), tags));
        }
        rec.set_tags(tags.clone());
        Ok((
            Txn::new()
                .check_equals(loc.table, loc.key.clone(), bytes)
                .put(loc.table, loc.key.clone(), encode(loc.table, &rec)?),
            tags,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::SledStore;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[tokio::test]
    async fn cluster_tags_merge_remove_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let prod = ResourceArn::Cluster {
            name: "prod".into(),
        };
        {
            let db = Db::open(Arc::new(SledStore::open_when_free(dir.path()).unwrap()))
                .await
                .unwrap();
            db.create_cluster_tagged("prod", &kv(&[("team", "a"), ("env", "prod")]))
                .await
                .unwrap();
            let after = db
                .tag_resource(&prod, &kv(&[("team", "b"), ("cost", "1")]))
                .await
                .unwrap();
            assert_eq!(after, kv(&[("team", "b"), ("env", "prod"), ("cost", "1")]));
            let left = db
                .untag_resource(&prod, &["env".into(), "absent".into()])
                .await
                .unwrap();
            assert_eq!(left, kv(&[("team", "b"), ("cost", "1")]));
            db.close().await;
        }
        let db = Db::open(Arc::new(SledStore::open_when_free(dir.path()).unwrap()))
            .await
            .unwrap();
        assert_eq!(
            db.tags_of(&prod).unwrap(),
            kv(&[("team", "b"), ("cost", "1")])
        );
        assert!(matches!(
            db.tags_of(&ResourceArn::Cluster {
                name: "nope".into()
            }),
            Err(DbError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn at_most_fifty_tags_in_all() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(Arc::new(SledStore::open_when_free(dir.path()).unwrap()))
            .await
            .unwrap();
        let default = ResourceArn::Cluster {
            name: "default".into(),
        };
        let fifty: Vec<(String, String)> =
            (0..50).map(|i| (format!("k{i}"), String::new())).collect();
        db.tag_resource(&default, &fifty).await.unwrap();
        // Replacing a value keeps the count.
        db.tag_resource(&default, &kv(&[("k0", "v")]))
            .await
            .unwrap();
        assert!(matches!(
            db.tag_resource(&default, &kv(&[("k50", "")])).await,
            Err(DbError::InvalidArgument { field: "tags", .. })
        ));
        assert_eq!(db.tags_of(&default).unwrap().len(), 50);
    }
}
