//! Container instances, as `aws ecs describe-container-instances` prints them.

use std::ops::Deref;

use berth_proto::arn;
use berth_proto::ecs_json;
use berth_proto::v1 as pb;
use serde::{Serialize, Serializer};

use super::{serialize_cli, table_time, FailureView};
use crate::output::{blocks, or_dash, Table};

/// One container instance: the message, printed as
/// `berth_proto::ecs_json::container_instance`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInstanceView {
    pub instance: pb::ContainerInstance,
    /// Not in ECS's JSON; tables show these.
    pub extra: InstanceExtra,
}

impl Serialize for ContainerInstanceView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_cli(ecs_json::container_instance(&self.instance), s)
    }
}

impl Deref for ContainerInstanceView {
    type Target = pb::ContainerInstance;
    fn deref(&self) -> &pb::ContainerInstance {
        &self.instance
    }
}

/// Berth's fields that ECS's JSON does not have.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceExtra {
    pub id: String,
    pub cluster: String,
    /// Table-formatted, `-` when absent.
    pub last_heartbeat_at: String,
    pub registered_at: String,
}

/// A resource's value as a table cell.
fn cell(r: &pb::Resource) -> String {
    if r.r#type == "STRINGSET" {
        or_dash(&r.string_set_value.join(","))
    } else {
        r.integer_value.to_string()
    }
}

impl From<pb::ContainerInstance> for ContainerInstanceView {
    fn from(ci: pb::ContainerInstance) -> Self {
        let id = if ci.id.is_empty() {
            arn::short_id(&ci.container_instance_arn).to_owned()
        } else {
            ci.id.clone()
        };
        Self {
            extra: InstanceExtra {
                id,
                cluster: arn::cluster_name(&ci.cluster_arn).to_owned(),
                last_heartbeat_at: table_time(ci.last_heartbeat_at.as_ref()),
                registered_at: table_time(ci.registered_at.as_ref()),
            },
            instance: ci,
        }
    }
}

impl ContainerInstanceView {
    fn host(&self) -> &str {
        if self.hostname.is_empty() {
            &self.ec2_instance_id
        } else {
            &self.hostname
        }
    }

    fn integer(resources: &[pb::Resource], name: &str) -> String {
        resources
            .iter()
            .find(|r| r.name == name && r.r#type != "STRINGSET")
            .map_or_else(|| "-".to_owned(), |r| r.integer_value.to_string())
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
        "ADDRESS",
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
            or_dash(&ci.address),
            ci.status.clone(),
            ci.connected().to_owned(),
            ci.usage("CPU"),
            ci.usage("MEMORY"),
            ci.tasks(),
            or_dash(&ci.agent_version),
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
        .row(["Address:".to_owned(), or_dash(&ci.address)])
        .row(["Instance id:".to_owned(), or_dash(&ci.ec2_instance_id)])
        .row(["Status:", ci.status.as_str()])
        .row(["Agent connected:", ci.connected()])
        .row(["Agent version:".to_owned(), or_dash(&ci.agent_version)])
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
            .map_or_else(|| "-".to_owned(), cell);
        resources.row([reg.name.clone(), remaining, cell(reg)]);
    }
    // Resources the agent reports as remaining but not as registered.
    for rem in &ci.remaining_resources {
        if !ci.registered_resources.iter().any(|r| r.name == rem.name) {
            resources.row([rem.name.clone(), cell(rem), "-".to_owned()]);
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
            address: if connected { "10.0.0.7" } else { "" }.to_owned(),
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
                  "versionInfo": {
                    "agentVersion": "0.1.0"
                  },
                  "remainingResources": [
                    {
                      "name": "CPU",
                      "type": "INTEGER",
                      "doubleValue": 0.0,
                      "longValue": 0,
                      "integerValue": 1536
                    },
                    {
                      "name": "MEMORY",
                      "type": "INTEGER",
                      "doubleValue": 0.0,
                      "longValue": 0,
                      "integerValue": 3416
                    },
                    {
                      "name": "PORTS",
                      "type": "STRINGSET",
                      "doubleValue": 0.0,
                      "longValue": 0,
                      "integerValue": 0,
                      "stringSetValue": [
                        "22",
                        "7401",
                        "20001"
                      ]
                    },
                    {
                      "name": "PORTS_UDP",
                      "type": "STRINGSET",
                      "doubleValue": 0.0,
                      "longValue": 0,
                      "integerValue": 0,
                      "stringSetValue": []
                    }
                  ],
                  "registeredResources": [
                    {
                      "name": "CPU",
                      "type": "INTEGER",
                      "doubleValue": 0.0,
                      "longValue": 0,
                      "integerValue": 2048
                    },
                    {
                      "name": "MEMORY",
                      "type": "INTEGER",
                      "doubleValue": 0.0,
                      "longValue": 0,
                      "integerValue": 3928
                    },
                    {
                      "name": "PORTS",
                      "type": "STRINGSET",
                      "doubleValue": 0.0,
                      "longValue": 0,
                      "integerValue": 0,
                      "stringSetValue": [
                        "22",
                        "7401"
                      ]
                    },
                    {
                      "name": "PORTS_UDP",
                      "type": "STRINGSET",
                      "doubleValue": 0.0,
                      "longValue": 0,
                      "integerValue": 0,
                      "stringSetValue": []
                    }
                  ],
                  "status": "ACTIVE",
                  "agentConnected": true,
                  "runningTasksCount": 2,
                  "pendingTasksCount": 0,
                  "attributes": [
                    {
                      "name": "ecs.os-type",
                      "value": "linux"
                    },
                    {
                      "name": "ecs.capability.cni-plugin-version"
                    }
                  ],
                  "registeredAt": "2024-05-01T12:00:00.250000+00:00",
                  "attachments": []
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
            ID        HOST                ADDRESS   STATUS  CONNECTED  CPU        MEMORY (MiB)  TASKS           AGENT VERSION
            4f1c9a7e  node-a              10.0.0.7  ACTIVE  yes        1536/2048  3416/3928     2               0.1.0
            b7730e21  node-b.example.org  -         ACTIVE  no         1536/2048  3416/3928     2 (+1 pending)  0.1.0
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
            ID      HOST  ADDRESS  STATUS  CONNECTED  CPU  MEMORY (MiB)  TASKS  AGENT VERSION
            c0ffee  -     -        ACTIVE  no         -/-  -/-           2      -
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
            Address:          10.0.0.7
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
