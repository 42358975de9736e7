//! Task definitions, as `aws ecs describe-task-definition`,
//! `list-task-definitions` and `list-task-definition-families` print them.
//!
//! The definition itself travels as ECS JSON; it is printed as
//! `berth_proto::ecs_json::task_definition` renders it, timestamps as the
//! aws CLI prints them. Only the table summary looks inside it.

use berth_proto::arn::TaskDefRef;
use berth_proto::v1 as pb;
use serde::Serialize;
use serde_json::Value;

use super::table_time;
use crate::error::CtlError;
use crate::output::{blocks, or_dash, Table};

/// `{"taskDefinition": {...}}`, exactly as `aws ecs describe-task-definition`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskDefinitionView {
    #[serde(rename = "taskDefinition")]
    pub definition: Value,
    /// The protobuf envelope, for tables.
    #[serde(skip)]
    pub meta: TaskDefMeta,
}

/// What the scheduler reports next to the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskDefMeta {
    pub arn: String,
    pub family: String,
    pub revision: i32,
    pub status: String,
    /// Table-formatted, `-` when absent.
    pub registered_at: String,
    pub deregistered_at: Option<String>,
}

impl TaskDefMeta {
    /// `family:revision`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.family, self.revision)
    }
}

impl TryFrom<pb::TaskDefinition> for TaskDefinitionView {
    type Error = CtlError;

    fn try_from(td: pb::TaskDefinition) -> Result<Self, CtlError> {
        let meta = TaskDefMeta {
            registered_at: table_time(td.registered_at.as_ref()),
            deregistered_at: td.deregistered_at.as_ref().map(|t| table_time(Some(t))),
            arn: td.task_definition_arn.clone(),
            family: td.family.clone(),
            revision: td.revision,
            status: td.status.clone(),
        };
        let definition = berth_proto::ecs_json::task_definition(&td)
            .map(super::cli)
            .map_err(|e| CtlError::BadResponse {
                what: e.to_string(),
            })?;
        Ok(Self { definition, meta })
    }
}

/// A JSON scalar as a table cell: strings bare, absent or null as `-`.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => or_dash(s),
        Some(other) => other.to_string(),
    }
}

/// `host->container/protocol`; `*` is a dynamic host port. In `host` and
/// `awsvpc` modes host and container port are the same, so only one shows.
fn port_mapping(pm: &Value, network_mode: &str) -> String {
    let container = match (pm.get("containerPort"), pm.get("containerPortRange")) {
        (Some(p), _) if !p.is_null() => cell(Some(p)),
        (_, Some(r)) => cell(Some(r)),
        _ => "-".to_owned(),
    };
    let protocol = pm.get("protocol").and_then(Value::as_str).unwrap_or("tcp");
    if matches!(network_mode, "host" | "awsvpc") {
        return format!("{container}/{protocol}");
    }
    let host = match pm.get("hostPort").and_then(Value::as_u64) {
        Some(p) if p > 0 => p.to_string(),
        _ => pm
            .get("hostPortRange")
            .and_then(Value::as_str)
            .unwrap_or("*")
            .to_owned(),
    };
    format!("{host}->{container}/{protocol}")
}

fn container_row(c: &Value, network_mode: &str) -> Vec<String> {
    let memory = match (c.get("memory"), c.get("memoryReservation")) {
        (None, None) => "-".to_owned(),
        (m, r) => format!("{}/{}", cell(m), cell(r)),
    };
    let ports = c
        .get("portMappings")
        .and_then(Value::as_array)
        .map(|pms| {
            pms.iter()
                .map(|pm| port_mapping(pm, network_mode))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    // ECS treats an absent `essential` as true.
    let essential = c.get("essential").and_then(Value::as_bool).unwrap_or(true);
    vec![
        cell(c.get("name")),
        cell(c.get("image")),
        cell(c.get("cpu")),
        memory,
        or_dash(&ports),
        essential.to_string(),
    ]
}

/// `taskdef describe`: a summary block and one row per container.
pub fn describe_table(v: &TaskDefinitionView) -> String {
    let d = &v.definition;
    let network_mode = d.get("networkMode").and_then(Value::as_str).unwrap_or("");
    let mut summary = Table::plain();
    summary
        .row(["Task definition:".to_owned(), v.meta.reference()])
        .row(["ARN:", v.meta.arn.as_str()])
        .row(["Status:", v.meta.status.as_str()])
        .row(["Registered at:", v.meta.registered_at.as_str()]);
    if let Some(at) = &v.meta.deregistered_at {
        summary.row(["Deregistered at:", at.as_str()]);
    }
    summary
        .row(["Network mode:".to_owned(), or_dash(network_mode)])
        .row(["Task CPU:".to_owned(), cell(d.get("cpu"))])
        .row(["Task memory:".to_owned(), cell(d.get("memory"))]);
    let mut containers = Table::new(&[
        "CONTAINER",
        "IMAGE",
        "CPU",
        "MEMORY/RESERVATION",
        "PORTS",
        "ESSENTIAL",
    ]);
    for c in d
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        containers.row(container_row(c, network_mode));
    }
    blocks([summary.render(), containers.render()])
}

/// `taskdef register`: `family:revision` alone on the first line, then the
/// ARN, so scripts can take the first line.
pub fn register_table(v: &TaskDefinitionView) -> String {
    format!("{}\n{}\n", v.meta.reference(), v.meta.arn)
}

/// `taskdef deregister`: one sentence.
pub fn deregister_sentence(v: &TaskDefinitionView) -> String {
    format!(
        "deregistered {} (now {})\n",
        v.meta.reference(),
        v.meta.status
    )
}

/// The warnings of a registration, one `warning: <path>: <message>` line each.
pub fn warning_lines(warnings: &[pb::FieldMessage]) -> Vec<String> {
    warnings
        .iter()
        .map(|w| {
            if w.path.is_empty() {
                format!("warning: {}", w.message)
            } else {
                format!("warning: {}: {}", w.path, w.message)
            }
        })
        .collect()
}

/// `{"taskDefinitionArns": [...]}`, as `aws ecs list-task-definitions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinitionArnsView {
    pub task_definition_arns: Vec<String>,
}

/// `taskdef ls`: family, revision and ARN per line.
pub fn list_table(v: &TaskDefinitionArnsView) -> String {
    let mut t = Table::new(&["FAMILY", "REVISION", "ARN"]);
    for arn in &v.task_definition_arns {
        let (family, revision) = match TaskDefRef::parse(arn) {
            Ok(r) => (
                r.family,
                r.revision.map(|r| r.to_string()).unwrap_or_default(),
            ),
            Err(_) => (String::new(), String::new()),
        };
        t.row([or_dash(&family), or_dash(&revision), arn.clone()]);
    }
    t.render()
}

/// `{"families": [...]}`, as `aws ecs list-task-definition-families`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FamiliesView {
    pub families: Vec<String>,
}

/// `taskdef families`: one family per line under a header.
pub fn families_table(v: &FamiliesView) -> String {
    let mut t = Table::new(&["FAMILY"]);
    for f in &v.families {
        t.row([f.as_str()]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::json;
    use crate::views::fixtures::{t0, t1};
    use expect_test::expect;

    const WEB_JSON: &str = r#"{
        "taskDefinitionArn": "arn:berth:ecs:local:000000000000:task-definition/web:3",
        "family": "web",
        "revision": 3,
        "status": "ACTIVE",
        "networkMode": "bridge",
        "cpu": "512",
        "memory": "1024",
        "containerDefinitions": [
            {"name": "app", "image": "ghcr.io/acme/web:1.4", "cpu": 256, "memory": 512,
             "memoryReservation": 256, "essential": true,
             "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"},
                              {"containerPort": 8443, "hostPort": 443}]},
            {"name": "log-router", "image": "fluent/fluent-bit:3.0", "memoryReservation": 64,
             "essential": false,
             "portMappings": [{"containerPortRange": "24224-24225", "protocol": "udp"}]},
            {"name": "sidecar", "image": "busybox"}
        ],
        "registeredAt": "2024-05-01T12:00:00.25Z"
    }"#;

    fn web(json: &str) -> pb::TaskDefinition {
        pb::TaskDefinition {
            task_definition_arn: "arn:berth:ecs:local:000000000000:task-definition/web:3"
                .to_owned(),
            family: "web".to_owned(),
            revision: 3,
            status: "ACTIVE".to_owned(),
            registered_at: t0(),
            deregistered_at: None,
            json: json.to_owned(),
        }
    }

    #[test]
    fn describe_json_wraps_the_definition_as_the_aws_cli_does() {
        let v = TaskDefinitionView::try_from(web(
            r#"{"family":"web","revision":3,"containerDefinitions":[{"name":"app","image":"nginx"}],"status":"ACTIVE"}"#,
        ))
        .unwrap();
        // Key order is the scheduler's, not alphabetical.
        expect![[r#"
            {
              "taskDefinition": {
                "family": "web",
                "revision": 3,
                "containerDefinitions": [
                  {
                    "name": "app",
                    "image": "nginx"
                  }
                ],
                "status": "ACTIVE"
              }
            }
        "#]]
        .assert_eq(&json(&v));
    }

    #[test]
    fn describe_table_summarises_task_and_containers() {
        let v = TaskDefinitionView::try_from(web(WEB_JSON)).unwrap();
        expect![[r#"
            Task definition:  web:3
            ARN:              arn:berth:ecs:local:000000000000:task-definition/web:3
            Status:           ACTIVE
            Registered at:    2024-05-01T12:00:00Z
            Network mode:     bridge
            Task CPU:         512
            Task memory:      1024

            CONTAINER   IMAGE                  CPU  MEMORY/RESERVATION  PORTS                      ESSENTIAL
            app         ghcr.io/acme/web:1.4   256  512/256             *->8080/tcp,443->8443/tcp  true
            log-router  fluent/fluent-bit:3.0  -    -/64                *->24224-24225/udp         false
            sidecar     busybox                -    -                   -                          true
        "#]]
        .assert_eq(&describe_table(&v));
    }

    #[test]
    fn describe_table_of_a_deregistered_host_mode_definition() {
        let mut td = web(
            r#"{"family":"web","networkMode":"host","containerDefinitions":[
                {"name":"app","image":"nginx","memory":128,
                 "portMappings":[{"containerPort":80}]}]}"#,
        );
        td.status = "INACTIVE".to_owned();
        td.deregistered_at = t1();
        expect![[r#"
            Task definition:  web:3
            ARN:              arn:berth:ecs:local:000000000000:task-definition/web:3
            Status:           INACTIVE
            Registered at:    2024-05-01T12:00:00Z
            Deregistered at:  2024-05-02T08:30:05Z
            Network mode:     host
            Task CPU:         -
            Task memory:      -

            CONTAINER  IMAGE  CPU  MEMORY/RESERVATION  PORTS   ESSENTIAL
            app        nginx  -    128/-               80/tcp  true
        "#]]
        .assert_eq(&describe_table(&TaskDefinitionView::try_from(td).unwrap()));
    }

    #[test]
    fn unreadable_json_is_a_bad_response() {
        let err = TaskDefinitionView::try_from(web("[1]")).unwrap_err();
        expect!["error: unexpected answer from the Berth scheduler: the JSON of task definition arn:berth:ecs:local:000000000000:task-definition/web:3 is not an object"]
        .assert_eq(&err.render());
        assert!(TaskDefinitionView::try_from(web("")).is_err());
    }

    #[test]
    fn register_prints_reference_first_and_warnings_with_paths() {
        let v = TaskDefinitionView::try_from(web(WEB_JSON)).unwrap();
        expect![[r#"
            web:3
            arn:berth:ecs:local:000000000000:task-definition/web:3
        "#]]
        .assert_eq(&register_table(&v));
        let warnings = [
            pb::FieldMessage {
                path: "taskRoleArn".to_owned(),
                message: "accepted and stored, but IAM roles have no effect off AWS".to_owned(),
            },
            pb::FieldMessage {
                path: "containerDefinitions[0].logConfiguration.options.awslogs-group".to_owned(),
                message: "awslogs options have no effect".to_owned(),
            },
            pb::FieldMessage {
                path: String::new(),
                message: "no path".to_owned(),
            },
        ];
        expect![[r#"
            warning: taskRoleArn: accepted and stored, but IAM roles have no effect off AWS
            warning: containerDefinitions[0].logConfiguration.options.awslogs-group: awslogs options have no effect
            warning: no path"#]]
        .assert_eq(&warning_lines(&warnings).join("\n"));
        expect![[r#"
            deregistered web:3 (now ACTIVE)
        "#]]
        .assert_eq(&deregister_sentence(&v));
    }

    #[test]
    fn lists_of_arns_and_families() {
        let v = TaskDefinitionArnsView {
            task_definition_arns: vec![
                "arn:berth:ecs:local:000000000000:task-definition/web:1".to_owned(),
                "arn:berth:ecs:local:000000000000:task-definition/web:2".to_owned(),
                "arn:berth:ecs:local:000000000000:task-definition/batch-nightly:14".to_owned(),
            ],
        };
        expect![[r#"
            {
              "taskDefinitionArns": [
                "arn:berth:ecs:local:000000000000:task-definition/web:1",
                "arn:berth:ecs:local:000000000000:task-definition/web:2",
                "arn:berth:ecs:local:000000000000:task-definition/batch-nightly:14"
              ]
            }
        "#]]
        .assert_eq(&json(&v));
        expect![[r#"
            FAMILY         REVISION  ARN
            web            1         arn:berth:ecs:local:000000000000:task-definition/web:1
            web            2         arn:berth:ecs:local:000000000000:task-definition/web:2
            batch-nightly  14        arn:berth:ecs:local:000000000000:task-definition/batch-nightly:14
        "#]]
        .assert_eq(&list_table(&v));
        let f = FamiliesView {
            families: vec!["batch-nightly".to_owned(), "web".to_owned()],
        };
        expect![[r#"
            {
              "families": [
                "batch-nightly",
                "web"
              ]
            }
        "#]]
        .assert_eq(&json(&f));
        expect![[r#"
            FAMILY
            batch-nightly
            web
        "#]]
        .assert_eq(&families_table(&f));
    }
}
