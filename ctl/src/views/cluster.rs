//! Clusters, as `aws ecs describe-clusters` / `create-cluster` print them.

use std::ops::Deref;

use berth_proto::ecs_json;
use berth_proto::v1 as pb;
use serde::{Serialize, Serializer};

use super::tag::{tag_views, tags_cell};
use super::{serialize_cli, table_time, FailureView};
use crate::output::{blocks, Table};

/// One cluster: the message, printed as `berth_proto::ecs_json::cluster`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterView(pub pb::Cluster);

impl Serialize for ClusterView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_cli(ecs_json::cluster(&self.0), s)
    }
}

impl Deref for ClusterView {
    type Target = pb::Cluster;
    fn deref(&self) -> &pb::Cluster {
        &self.0
    }
}

impl From<pb::Cluster> for ClusterView {
    fn from(c: pb::Cluster) -> Self {
        Self(c)
    }
}

/// `{"clusters": [...], "failures": [...]}`, for `cluster ls` and `cluster describe`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClustersView {
    pub clusters: Vec<ClusterView>,
    pub failures: Vec<FailureView>,
}

impl From<pb::DescribeClustersResponse> for ClustersView {
    fn from(r: pb::DescribeClustersResponse) -> Self {
        Self {
            clusters: r.clusters.into_iter().map(Into::into).collect(),
            failures: r.failures.into_iter().map(Into::into).collect(),
        }
    }
}

/// `{"cluster": {...}}`, for `cluster create` and `cluster delete`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterResultView {
    pub cluster: ClusterView,
}

impl ClusterResultView {
    /// Converts a create/delete answer; `None` when the scheduler left the cluster out.
    pub fn from_proto(cluster: Option<pb::Cluster>) -> Option<Self> {
        cluster.map(|c| Self { cluster: c.into() })
    }
}

/// `cluster ls`: one row per cluster.
pub fn list_table(v: &ClustersView) -> String {
    let mut t = Table::new(&[
        "NAME",
        "STATUS",
        "INSTANCES",
        "RUNNING",
        "PENDING",
        "SERVICES",
    ]);
    for c in &v.clusters {
        t.row([
            c.cluster_name.clone(),
            c.status.clone(),
            c.registered_container_instances_count.to_string(),
            c.running_tasks_count.to_string(),
            c.pending_tasks_count.to_string(),
            c.active_services_count.to_string(),
        ]);
    }
    t.render()
}

fn detail_block(c: &ClusterView) -> String {
    let mut t = Table::plain();
    t.row(["Name:", c.cluster_name.as_str()])
        .row(["ARN:", c.cluster_arn.as_str()])
        .row(["Status:", c.status.as_str()])
        .row(["Created at:".to_owned(), table_time(c.created_at.as_ref())])
        .row([
            "Container instances:".to_owned(),
            c.registered_container_instances_count.to_string(),
        ])
        .row([
            "Running tasks:".to_owned(),
            c.running_tasks_count.to_string(),
        ])
        .row([
            "Pending tasks:".to_owned(),
            c.pending_tasks_count.to_string(),
        ])
        .row([
            "Active services:".to_owned(),
            c.active_services_count.to_string(),
        ]);
    if !c.tags.is_empty() {
        t.row(["Tags:".to_owned(), tags_cell(&tag_views(c.tags.clone()))]);
    }
    t.render()
}

/// `cluster describe`: one key/value block per cluster.
pub fn describe_table(v: &ClustersView) -> String {
    blocks(v.clusters.iter().map(detail_block))
}

/// `cluster create` / `cluster delete`: one sentence.
pub fn result_sentence(verb: &str) -> impl Fn(&ClusterResultView) -> String + '_ {
    move |v| {
        format!(
            "{verb} cluster {} ({})\n",
            v.cluster.cluster_name, v.cluster.cluster_arn
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::json;
    use crate::views::fixtures::t0;
    use expect_test::expect;

    fn cluster(name: &str, instances: i32, running: i32) -> pb::Cluster {
        pb::Cluster {
            cluster_arn: format!("arn:berth:ecs:local:000000000000:cluster/{name}"),
            cluster_name: name.to_owned(),
            status: "ACTIVE".to_owned(),
            registered_container_instances_count: instances,
            running_tasks_count: running,
            pending_tasks_count: 1,
            active_services_count: 2,
            created_at: t0(),
            tags: vec![],
        }
    }

    fn sample() -> ClustersView {
        pb::DescribeClustersResponse {
            clusters: vec![cluster("default", 3, 12), cluster("prod-eu", 10, 140)],
            failures: vec![pb::Failure {
                arn: "arn:berth:ecs:local:000000000000:cluster/nope".to_owned(),
                reason: "MISSING".to_owned(),
                detail: String::new(),
            }],
        }
        .into()
    }

    #[test]
    fn describe_json_is_ecs_shaped() {
        expect![[r#"
            {
              "clusters": [
                {
                  "clusterArn": "arn:berth:ecs:local:000000000000:cluster/default",
                  "clusterName": "default",
                  "status": "ACTIVE",
                  "registeredContainerInstancesCount": 3,
                  "runningTasksCount": 12,
                  "pendingTasksCount": 1,
                  "activeServicesCount": 2,
                  "statistics": [],
                  "tags": [],
                  "settings": [
                    {
                      "name": "containerInsights",
                      "value": "disabled"
                    }
                  ],
                  "capacityProviders": [],
                  "defaultCapacityProviderStrategy": []
                },
                {
                  "clusterArn": "arn:berth:ecs:local:000000000000:cluster/prod-eu",
                  "clusterName": "prod-eu",
                  "status": "ACTIVE",
                  "registeredContainerInstancesCount": 10,
                  "runningTasksCount": 140,
                  "pendingTasksCount": 1,
                  "activeServicesCount": 2,
                  "statistics": [],
                  "tags": [],
                  "settings": [
                    {
                      "name": "containerInsights",
                      "value": "disabled"
                    }
                  ],
                  "capacityProviders": [],
                  "defaultCapacityProviderStrategy": []
                }
              ],
              "failures": [
                {
                  "arn": "arn:berth:ecs:local:000000000000:cluster/nope",
                  "reason": "MISSING"
                }
              ]
            }
        "#]]
        .assert_eq(&json(&sample()));
    }

    #[test]
    fn list_table() {
        expect![[r#"
            NAME     STATUS  INSTANCES  RUNNING  PENDING  SERVICES
            default  ACTIVE  3          12       1        2
            prod-eu  ACTIVE  10         140      1        2
        "#]]
        .assert_eq(&super::list_table(&sample()));
    }

    #[test]
    fn describe_table() {
        expect![[r#"
            Name:                 default
            ARN:                  arn:berth:ecs:local:000000000000:cluster/default
            Status:               ACTIVE
            Created at:           2024-05-01T12:00:00Z
            Container instances:  3
            Running tasks:        12
            Pending tasks:        1
            Active services:      2

            Name:                 prod-eu
            ARN:                  arn:berth:ecs:local:000000000000:cluster/prod-eu
            Status:               ACTIVE
            Created at:           2024-05-01T12:00:00Z
            Container instances:  10
            Running tasks:        140
            Pending tasks:        1
            Active services:      2
        "#]]
        .assert_eq(&super::describe_table(&sample()));
    }

    #[test]
    fn create_and_delete_results() {
        let v = ClusterResultView::from_proto(Some(cluster("prod", 0, 0))).unwrap();
        expect![[r#"
            {
              "cluster": {
                "clusterArn": "arn:berth:ecs:local:000000000000:cluster/prod",
                "clusterName": "prod",
                "status": "ACTIVE",
                "registeredContainerInstancesCount": 0,
                "runningTasksCount": 0,
                "pendingTasksCount": 1,
                "activeServicesCount": 2,
                "statistics": [],
                "tags": [],
                "settings": [
                  {
                    "name": "containerInsights",
                    "value": "disabled"
                  }
                ],
                "capacityProviders": [],
                "defaultCapacityProviderStrategy": []
              }
            }
        "#]]
        .assert_eq(&json(&v));
        expect![[r#"
            created cluster prod (arn:berth:ecs:local:000000000000:cluster/prod)
        "#]]
        .assert_eq(&result_sentence("created")(&v));
        assert_eq!(ClusterResultView::from_proto(None), None);
    }

    #[test]
    fn tags_show_when_asked_for() {
        let mut c = cluster("prod", 1, 0);
        c.tags = vec![
            pb::Tag {
                key: "team".into(),
                value: "core".into(),
            },
            pb::Tag {
                key: "env".into(),
                value: String::new(),
            },
        ];
        let v: ClustersView = pb::DescribeClustersResponse {
            clusters: vec![c],
            failures: vec![],
        }
        .into();
        let table = super::describe_table(&v);
        assert!(
            table.ends_with("Tags:                 team=core, env=\n"),
            "{table}"
        );
        let json = json(&v);
        assert!(json.contains("\"key\": \"team\""), "{json}");
    }
}
