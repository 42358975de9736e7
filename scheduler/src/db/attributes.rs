//! ECS's PutAttributes and DeleteAttributes on container instances: the
//! custom attributes placement reads (`memberOf(attribute:…)`, `spread`).
//!
//! They are kept in the instance record's `custom_attributes` (beside the
//! activation's) and merged into its `attributes`. A Hello rebuilds
//! `attributes` from what the agent reports with `custom_attributes` over
//! it, so they survive every reconnect. One call is one transaction over
//! every instance it names, checked against the bytes read: all of it
//! applies or none. Built-in (`ecs.*`) names are refused before this (the
//! API's rule, `berth_proto::names::is_builtin_attribute`).

use std::collections::BTreeMap;

use super::{encode, Db, DbError};
use crate::records::InstanceRecord;
use crate::store::{Table, Txn};

/// One attribute of one container instance (by id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceAttribute {
    pub instance_id: String,
    pub name: String,
    /// `""`: no value (ignored by deletions).
    pub value: String,
}

fn set(list: &mut Vec<(String, String)>, name: &str, value: Option<&str>) {
    let mut map: BTreeMap<String, String> = std::mem::take(list).into_iter().collect();
    match value {
        Some(v) => {
            map.insert(name.to_owned(), v.to_owned());
        }
        None => {
            map.remove(name);
        }
    }
    *list = map.into_iter().collect();
}

impl Db {
    /// ECS's PutAttributes: sets each attribute on its instance of
    /// `cluster` (replacing a value of the same name). An instance that is
    /// not in `cluster` is NotFound, and nothing is written.
    pub async fn put_attributes(
        &self,
        cluster: &str,
        attrs: &[InstanceAttribute],
    ) -> Result<(), DbError> {
        self.change_attributes(cluster, attrs, |rec, a| {
            set(&mut rec.custom_attributes, &a.name, Some(&a.value));
            set(&mut rec.attributes, &a.name, Some(&a.value));
        })
        .await
    }

    /// ECS's DeleteAttributes: removes each attribute from its instance of
    /// `cluster` (absent ones are no error). An attribute the agent itself
    /// reports (its configuration's) comes back with its next Hello.
    pub async fn delete_attributes(
        &self,
        cluster: &str,
        attrs: &[InstanceAttribute],
    ) -> Result<(), DbError> {
        self.change_attributes(cluster, attrs, |rec, a| {
            set(&mut rec.custom_attributes, &a.name, None);
            set(&mut rec.attributes, &a.name, None);
        })
        .await
    }

    async fn change_attributes(
        &self,
        cluster: &str,
        attrs: &[InstanceAttribute],
        apply: impl Fn(&mut InstanceRecord, &InstanceAttribute),
    ) -> Result<(), DbError> {
        self.write("container instance attributes", || {
            let mut records: BTreeMap<&str, (InstanceRecord, Vec<u8>)> = BTreeMap::new();
            for a in attrs {
                let id = a.instance_id.as_str();
                if !records.contains_key(id) {
                    let found = self
                        .get::<InstanceRecord>(Table::Instances, id.as_bytes())?
                        .filter(|(rec, _)| rec.cluster == cluster)
                        // ECS's TargetNotFoundException.
                        .ok_or_else(|| DbError::NotFound {
                            kind: "target",
                            name: format!("container instance {cluster}/{id}"),
                        })?;
                    records.insert(id, found);
                }
                if let Some((rec, _)) = records.get_mut(id) {
                    apply(rec, a);
                }
            }
            let mut txn = Txn::new();
            for (id, (rec, old)) in records {
                txn = txn.check_equals(Table::Instances, id, old).put(
                    Table::Instances,
                    id,
                    encode(Table::Instances, &rec)?,
                );
            }
            Ok((txn, ()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::records::{HostResources, InstanceStatus};
    use crate::store::SledStore;

    fn attr(id: &str, name: &str, value: &str) -> InstanceAttribute {
        InstanceAttribute {
            instance_id: id.into(),
            name: name.into(),
            value: value.into(),
        }
    }

    #[tokio::test]
    async fn custom_attributes_are_put_deleted_and_survive_a_hello() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(Arc::new(SledStore::open_when_free(dir.path()).unwrap()))
            .await
            .unwrap();
        db.create_instance(InstanceRecord {
            address: None,
            id: "i1".into(),
            cluster: "default".into(),
            hostname: "h".into(),
            status: InstanceStatus::Active,
            registered_at: 0,
            agent_version: "0".into(),
            resources: HostResources::default(),
            attributes: vec![("ecs.os-type".into(), "linux".into())],
            cert_serials: vec![],
            activation_id: String::new(),
            custom_attributes: vec![],
            tags: vec![],
        })
        .await
        .unwrap();
        db.put_attributes(
            "default",
            &[attr("i1", "rack", "r1"), attr("i1", "gpu", "")],
        )
        .await
        .unwrap();
        let i = db.instance("i1").unwrap().unwrap();
        assert_eq!(
            i.attributes,
            vec![
                ("ecs.os-type".to_owned(), "linux".to_owned()),
                ("gpu".to_owned(), String::new()),
                ("rack".to_owned(), "r1".to_owned()),
            ]
        );
        // What a Hello does: the report, with the custom ones over it.
        let reported = vec![
            ("ecs.os-type".to_owned(), "linux".to_owned()),
            ("rack".to_owned(), "spoofed".to_owned()),
        ];
        let merged = InstanceRecord::merged_attributes(&reported, &i.custom_attributes);
        assert!(merged.contains(&("rack".to_owned(), "r1".to_owned())));

        db.delete_attributes("default", &[attr("i1", "rack", "ignored")])
            .await
            .unwrap();
        let i = db.instance("i1").unwrap().unwrap();
        assert_eq!(i.custom_attributes, vec![("gpu".to_owned(), String::new())]);
        assert!(!i.attributes.iter().any(|(n, _)| n == "rack"));

        // An instance of another cluster is not found, and nothing applies.
        assert!(matches!(
            db.put_attributes("prod", &[attr("i1", "x", "")]).await,
            Err(DbError::NotFound { .. })
        ));
        assert!(matches!(
            db.put_attributes("default", &[attr("i1", "x", ""), attr("nope", "x", "")])
                .await,
            Err(DbError::NotFound { .. })
        ));
        let i = db.instance("i1").unwrap().unwrap();
        assert!(!i.attributes.iter().any(|(n, _)| n == "x"));
    }
}
