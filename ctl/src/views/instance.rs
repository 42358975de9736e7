//! Container instances, as `aws ecs describe-container-instances` prints them.

use berth_proto::arn;
use berth_proto::v1 as pb;
use serde::Serialize;

use super::{rfc3339, table_time, FailureView};
use crate::output::{blocks, or_dash, Table};

/// One container instance, ECS-shaped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInstanceView {
    pub container_instance_arn: String,
    pub ec2_instance_id: String,
    pub status: String,
    pub agent_connected: bool,
    pub version_info: VersionInfo,
    pub registered_resources: Vec<ResourceView>,
    pub remaining_resources: Vec<ResourceView>,
    pub attributes: Vec<AttributeView>,
    pub running_tasks_count: i32,
    pub pending_tasks_count: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<String>,
    /// Not in ECS's JSON; tables show these.
    #[serde(skip)]
    pub extra: InstanceExtra,
}

/// Berth's fields that ECS's JSON does not have.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceExtra {
    pub id: String,
    pub hostname: String,
    pub cluster: String,
    /// Table-formatted, `-` when absent.
    pub last_heartbeat_at: String,
    pub registered_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub agent_version: String,
}

/// ECS's `Resource`: `integerValue` for INTEGER, `stringSetValue` for STRINGSET.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integer_value: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string_set_value: Option<Vec<String>>,
}

impl From<pb::Resource> for ResourceView {
    fn from(r: pb::Resource) -> Self {
        let set = r.r#type == "STRINGSET";
        Self {
            name: r.name,
            integer_value: (!set).then_some(r.integer_value),
            string_set_value: set.then_some(r.string_set_value),
            kind: r.r#type,
        }
    }
}

impl ResourceView {
    fn cell(&self) -> String {
        match (&self.integer_value, &self.string_set_value) {
            (Some(i), _) => i.to_string(),
            (None, Some(set)) => or_dash(&set.join(",")),
            (None, None) => "-".to_owned(),
        }
    }
}

/// ECS's `Attribute`; `value` is left out for presence-only attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeView {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
}

impl From<pb::ContainerInstance> for ContainerInstanceView {
    fn from(ci: pb::ContainerInstance) -> Self {
        let id = if ci.id.is_empty() {
            arn::short_id(&ci.container_instance_arn).to_owned()
        } else {
            ci.id
        };
        Self {
            extra: InstanceExtra {
                id,
                hostname: ci.hostname,
                cluster: arn::cluster_name(&ci.cluster_arn).to_owned(),
                last_heartbeat_at: table_time(ci.last_heartbeat_at.as_ref()),
                registered_at: table_time(ci.registered_at.as_ref()),
            },
            registered_at: rfc3339(ci.registered_at.as_ref()),
            container_instance_arn: ci.container_instance_arn,
            ec2_instance_id: ci.ec2_instance_id,
            status: ci.status,
            agent_connected: ci.agent_connected,
            version_info: VersionInfo {
                agent_version: ci.agent_version,
            },
            registered_resources: ci
                .registered_resources
                .into_iter()
                .map(Into::into)
                .collect(),
            remaining_resources: ci.remaining_resources.into_iter().map(Into::into).collect(),
            attributes: ci
                .attributes
                .into_iter()
                .map(|a| AttributeView {
                    name: a.name,
                    value: a.value,
                })
                .collect(),
            running_tasks_count: ci.running_tasks_count,
            pending_tasks_count: ci.pending_tasks_count,
        }
    }
}

impl ContainerInstanceView {
    fn host(&self) -> &str {
        if self.extra.hostname.is_empty() {
            &self.ec2_instance_id
        } else {
            &self.extra.hostname
        }
    }

    fn integer(resources: &[ResourceView], name: &str) -> String {
        resources
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| r.integer_value)
            .map_or_else(|| "-".to_owned(), |v| v.to_string())
    }

    /// `remaining/registered` of an INTEGER resource.
    fn usage(&self, name: &str) -> String {
        format!(
            "{}/{}",
            Self::integer(&self.remaining_resources, name),
            Self::integer(&self.registered_resources, name)
        )
    }

    fn tasks(&self) -> String {
        match self.pending_tasks_count {
            0 => self.running_tasks_count.to_string(),
            p => format!("{} (+{p} pending)", self.running_tasks_count),
        }
    }

    fn connected(&self) -> &'static str {
        if self.agent_connected {
            "yes"
        } else {
            "no"
        }
    }
}

/// `{"containerInstances": [...], "failures": [...]}`, for `instance ls` and
/// `instance describe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInstancesView {
    pub container_instances: Vec<ContainerInstanceView>,
    pub failures: Vec<FailureView>,
}

impl From<pb::DescribeContainerInstancesResponse> for ContainerInstancesView {
    fn from(r: pb::DescribeContainerInstancesResponse) -> Self {
        Self {
            container_instances: r.container_instances.into_iter().map(Into::into).collect(),
            failures: r.failures.into_iter().map(Into::into).collect(),
        }
    }
}

/// `instance ls`: one row per instance.
pub fn list_table(v: &ContainerInstancesView) -> String {
    let mut t = Table::new(&[
        "ID",
        "HOST",
        "STATUS",
        "CONNECTED",
        "CPU",
        "MEMORY (MiB)",
        "TASKS",
        "AGENT VERSION",
    ]);
    for ci in &v.container_instances {
        t.row([
            ci.extra.id.clone(),
            or_dash(ci.host()),
            ci.status.clone(),
            ci.connected().to_owned(),
            ci.usage("CPU"),
            ci.usage("MEMORY"),
            ci.tasks(),
            or_dash(&ci.version_info.agent_version),
        ]);
    }
    t.render()
}

fn detail_block(ci: &ContainerInstanceView) -> String {
    let mut summary = Table::plain();
    summary
        .row(["ID:", ci.extra.id.as_str()])
        .row(["ARN:", ci.container_instance_arn.as_str()])
        .row(["Cluster:".to_owned(), or_dash(&ci.extra.cluster)])
        .row(["Host:".to_owned(), or_dash(ci.host())])
        .row(["Instance id:".to_owned(), or_dash(&ci.ec2_instance_id)])
        .row(["Status:", ci.status.as_str()])
        .row(["Agent connected:", ci.connected()])
        .row([
            "Agent version:".to_owned(),
            or_dash(&ci.version_info.agent_version),
        ])
        .row(["Registered at:", ci.extra.registered_at.as_str()])
        .row(["Last heartbeat:", ci.extra.last_heartbeat_at.as_str()])
        .row([
            "Running tasks:".to_owned(),
            ci.running_tasks_count.to_string(),
        ])
        .row([
            "Pending tasks:".to_owned(),
            ci.pending_tasks_count.to_string(),
        ]);

    let mut resources = Table::new(&["RESOURCE", "REMAINING", "REGISTERED"]);
    for reg in &ci.registered_resources {
        let remaining = ci
            .remaining_resources
            .iter()
            .find(|r| r.name == reg.name)
            .map_or_else(|| "-".to_owned(), ResourceView::cell);
        resources.row([reg.name.clone(), remaining, reg.cell()]);
    }
    // Resources the agent reports as remaining but not as registered.
    for rem in &ci.remaining_resources {
        if !ci.registered_resources.iter().any(|r| r.name == rem.name) {
            resources.row([rem.name.clone(), rem.cell(), "-".to_owned()]);
        }
    }

    let mut attributes = Table::new(&["ATTRIBUTE", "VALUE"]);
    for a in &ci.attributes {
        attributes.row([a.name.as_str(), a.value.as_str()]);
    }
    let attributes = if ci.attributes.is_empty() {
        String::new()
    } else {
        attributes.render()
    };
    blocks([summary.render(), resources.render(), attributes])
}

/// `instance describe`: per instance a summary, its resources and attributes.
pub fn describe_table(v: &ContainerInstancesView) -> String {
    blocks(v.container_instances.iter().map(detail_block))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::json;
    use crate::views::fixtures::{t0, t1};
    use expect_test::expect;

    fn int(name: &str, v: i64) -> pb::Resource {
        pb::Resource {
            name: name.to_owned(),
            r#type: "INTEGER".to_owned(),
            integer_value: v,
            string_set_value: vec![],
        }
    }

    fn set(name: &str, v: &[&str]) -> pb::Resource {
        pb::Resource {
            name: name.to_owned(),
            r#type: "STRINGSET".to_owned(),
            integer_value: 0,
            string_set_value: v.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn instance(id: &str, host: &str, connected: bool, pending: i32) -> pb::ContainerInstance {
        pb::ContainerInstance {
            container_instance_arn: format!(
                "arn:berth:ecs:local:000000000000:container-instance/default/{id}"
            ),
            id: id.to_owned(),
            cluster_arn: "arn:berth:ecs:local:000000000000:cluster/default".to_owned(),
            ec2_instance_id: host.to_owned(),
            status: "ACTIVE".to_owned(),
            agent_connected: connected,
            agent_version: "0.1.0".to_owned(),
            registered_resources: vec![
                int("CPU", 2048),
                int("MEMORY", 3928),
                set("PORTS", &["22", "7401"]),
                set("PORTS_UDP", &[]),
            ],
            remaining_resources: vec![
                int("CPU", 1536),
                int("MEMORY", 3416),
                set("PORTS", &["22", "7401", "20001"]),
                set("PORTS_UDP", &[]),
            ],
            attributes: vec![
                pb::Attribute {
                    name: "ecs.os-type".to_owned(),
                    value: "linux".to_owned(),
                },
                pb::Attribute {
                    name: "ecs.capability.cni-plugin-version".to_owned(),
                    value: String::new(),
                },
            ],
            running_tasks_count: 2,
            pending_tasks_count: pending,
            registered_at: t0(),
            last_heartbeat_at: t1(),
            hostname: host.to_owned(),
            ..Default::default()
        }
    }

    fn sample() -> ContainerInstancesView {
        pb::DescribeContainerInstancesResponse {
            container_instances: vec![
                instance("4f1c9a7e", "node-a", true, 0),
                instance("b7730e21", "node-b.example.org", false, 1),
            ],
            failures: vec![],
        }
        .into()
    }

    #[test]
    fn describe_json_is_ecs_shaped() {
        let v: ContainerInstancesView = pb::DescribeContainerInstancesResponse {
            container_instances: vec![instance("4f1c9a7e", "node-a", true, 0)],
            failures: vec![pb::Failure {
                arn: "arn:berth:ecs:local:000000000000:container-instance/default/gone".to_owned(),
                reason: "MISSING".to_owned(),
                detail: String::new(),
            }],
        }
        .into();
        expect![[r#"
            {
              "containerInstances": [
                {
                  "containerInstanceArn": "arn:berth:ecs:local:000000000000:container-instance/default/4f1c9a7e",
                  "ec2InstanceId": "node-a",
                  "status": "ACTIVE",
                  "agentConnected": true,
                  "versionInfo": {
                    "agentVersion": "0.1.0"
                  },
                  "registeredResources": [
                    {
                      "name": "CPU",
                      "type": "INTEGER",
                      "integerValue": 2048
                    },
                    {
                      "name": "MEMORY",
                      "type": "INTEGER",
                      "integerValue": 3928
                    },
                    {
                      "name": "PORTS",
                      "type": "STRINGSET",
                      "stringSetValue": [
                        "22",
                        "7401"
                      ]
                    },
                    {
                      "name": "PORTS_UDP",
                      "type": "STRINGSET",
                      "stringSetValue": []
                    }
                  ],
                  "remainingResources": [
                    {
                      "name": "CPU",
                      "type": "INTEGER",
                      "integerValue": 1536
                    },
                    {
                      "name": "MEMORY",
                      "type": "INTEGER",
                      "integerValue": 3416
                    },
                    {
                      "name": "PORTS",
                      "type": "STRINGSET",
                      "stringSetValue": [
                        "22",
                        "7401",
                        "20001"
                      ]
                    },
                    {
                      "name": "PORTS_UDP",
                      "type": "STRINGSET",
                      "stringSetValue": []
                    }
                  ],
                  "attributes": [
                    {
                      "name": "ecs.os-type",
                      "value": "linux"
                    },
                    {
                      "name": "ecs.capability.cni-plugin-version"
                    }
                  ],
                  "runningTasksCount": 2,
                  "pendingTasksCount": 0,
                  "registeredAt": "2024-05-01T12:00:00.25Z"
                }
              ],
              "failures": [
                {
                  "arn": "arn:berth:ecs:local:000000000000:container-instance/default/gone",
                  "reason": "MISSING"
                }
              ]
            }
        "#]]
        .assert_eq(&json(&v));
    }

    #[test]
    fn list_table() {
        expect![[r#"
            ID        HOST                STATUS  CONNECTED  CPU        MEMORY (MiB)  TASKS           AGENT VERSION
            4f1c9a7e  node-a              ACTIVE  yes        1536/2048  3416/3928     2               0.1.0
            b7730e21  node-b.example.org  ACTIVE  no         1536/2048  3416/3928     2 (+1 pending)  0.1.0
        "#]]
        .assert_eq(&super::list_table(&sample()));
    }

    #[test]
    fn list_table_of_a_bare_instance() {
        let mut ci = instance("", "", false, 0);
        ci.container_instance_arn =
            "arn:berth:ecs:local:000000000000:container-instance/default/c0ffee".to_owned();
        ci.registered_resources.clear();
        ci.remaining_resources.clear();
        ci.agent_version.clear();
        let v = ContainerInstancesView {
            container_instances: vec![ci.into()],
            failures: vec![],
        };
        expect![[r#"
            ID      HOST  STATUS  CONNECTED  CPU  MEMORY (MiB)  TASKS  AGENT VERSION
            c0ffee  -     ACTIVE  no         -/-  -/-           2      -
        "#]]
        .assert_eq(&super::list_table(&v));
    }

    #[test]
    fn describe_table() {
        let mut v = sample();
        v.container_instances.truncate(1);
        expect![[r#"
            ID:               4f1c9a7e
            ARN:              arn:berth:ecs:local:000000000000:container-instance/default/4f1c9a7e
            Cluster:          default
            Host:             node-a
            Instance id:      node-a
            Status:           ACTIVE
            Agent connected:  yes
            Agent version:    0.1.0
            Registered at:    2024-05-01T12:00:00Z
            Last heartbeat:   2024-05-02T08:30:05Z
            Running tasks:    2
            Pending tasks:    0

            RESOURCE   REMAINING      REGISTERED
            CPU        1536           2048
            MEMORY     3416           3928
            PORTS      22,7401,20001  22,7401
            PORTS_UDP  -              -

            ATTRIBUTE                          VALUE
            ecs.os-type                        linux
            ecs.capability.cni-plugin-version
        "#]]
        .assert_eq(&super::describe_table(&v));
    }
}
