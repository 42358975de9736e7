//! Tasks, as `aws ecs describe-tasks` prints them, and log lines.

use std::ops::Deref;

use berth_proto::arn;
use berth_proto::ecs_json;
use berth_proto::v1 as pb;
use serde::{Serialize, Serializer};

use super::{serialize_cli, table_time, FailureView};
use crate::output::{blocks, or_dash, Table};

/// ECS's Task: the message, printed as `berth_proto::ecs_json::task`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    pub task: pb::Task,
    /// Table cells; not in ECS's JSON.
    pub extra: TaskExtra,
}

impl Serialize for TaskView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_cli(ecs_json::task(&self.task), s)
    }
}

impl Deref for TaskView {
    type Target = pb::Task;
    fn deref(&self) -> &pb::Task {
        &self.task
    }
}

/// Table-formatted timestamps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskExtra {
    pub created_at: String,
    pub started_at: String,
    pub stopped_at: String,
}

impl From<pb::Task> for TaskView {
    fn from(t: pb::Task) -> Self {
        Self {
            extra: TaskExtra {
                created_at: table_time(t.created_at.as_ref()),
                started_at: table_time(t.started_at.as_ref()),
                stopped_at: table_time(t.stopped_at.as_ref()),
            },
            task: t,
        }
    }
}

impl TaskView {
    pub fn id(&self) -> &str {
        arn::short_id(&self.task_arn)
    }

    /// `family:revision`.
    fn taskdef(&self) -> &str {
        let r = arn::resource_part(&self.task_definition_arn);
        r.strip_prefix("task-definition/").unwrap_or(r)
    }

    fn instance(&self) -> &str {
        arn::short_id(&self.container_instance_arn)
    }

    /// `hostPort->containerPort/protocol` of every binding.
    fn ports(&self) -> String {
        let v: Vec<String> = self
            .containers
            .iter()
            .flat_map(|c| &c.network_bindings)
            .map(|b| format!("{}->{}/{}", b.host_port, b.container_port, b.protocol))
            .collect();
        or_dash(&v.join(","))
    }
}

/// `{"tasks": [...], "failures": [...]}`: describe-tasks and start-task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TasksView {
    pub tasks: Vec<TaskView>,
    pub failures: Vec<FailureView>,
}

impl TasksView {
    pub fn new(tasks: Vec<pb::Task>, failures: Vec<pb::Failure>) -> Self {
        Self {
            tasks: tasks.into_iter().map(Into::into).collect(),
            failures: failures.into_iter().map(Into::into).collect(),
        }
    }
}

/// `task ls`: one row per task.
pub fn list_table(v: &TasksView) -> String {
    let mut t = Table::new(&[
        "TASK", "TASKDEF", "INSTANCE", "LAST", "DESIRED", "CPU", "MEMORY", "PORTS", "STARTED",
    ]);
    for task in &v.tasks {
        t.row([
            task.id().to_owned(),
            task.taskdef().to_owned(),
            task.instance().to_owned(),
            task.last_status.clone(),
            task.desired_status.clone(),
            or_dash(&task.cpu),
            or_dash(&task.memory),
            task.ports(),
            task.extra.started_at.clone(),
        ]);
    }
    t.render()
}

/// `task start`: the ids of the tasks started, one per line.
pub fn started_table(v: &TasksView) -> String {
    v.tasks.iter().map(|t| format!("{}\n", t.id())).collect()
}

/// `task stop`: one sentence.
pub fn stop_sentence(v: &TaskView) -> String {
    format!(
        "{}: desired STOPPED (last status {}): {}\n",
        v.id(),
        v.last_status,
        or_dash(&v.stopped_reason)
    )
}

fn detail_block(t: &TaskView) -> String {
    let mut summary = Table::plain();
    summary
        .row(["Task:", t.id()])
        .row(["ARN:", t.task_arn.as_str()])
        .row(["Task definition:", t.taskdef()])
        .row(["Instance:", t.instance()])
        .row(["Last status:", t.last_status.as_str()])
        .row(["Desired status:", t.desired_status.as_str()])
        .row([
            "CPU / memory:".to_owned(),
            format!("{} / {} MiB", or_dash(&t.cpu), or_dash(&t.memory)),
        ])
        .row(["Group:".to_owned(), or_dash(&t.group)])
        .row(["Started by:".to_owned(), or_dash(&t.started_by)])
        .row(["Created at:", t.extra.created_at.as_str()])
        .row(["Started at:", t.extra.started_at.as_str()])
        .row(["Stopped at:", t.extra.stopped_at.as_str()]);
    if !t.stop_code.is_empty() {
        summary.row(["Stop code:", t.stop_code.as_str()]);
    }
    if !t.stopped_reason.is_empty() {
        summary.row(["Stopped reason:", t.stopped_reason.as_str()]);
    }
    let mut containers = Table::new(&[
        "CONTAINER",
        "STATUS",
        "EXIT",
        "PORTS",
        "RUNTIME ID",
        "REASON",
    ]);
    for c in &t.containers {
        let ports: Vec<String> = c
            .network_bindings
            .iter()
            .map(|b| format!("{}->{}/{}", b.host_port, b.container_port, b.protocol))
            .collect();
        containers.row([
            c.name.clone(),
            c.last_status.clone(),
            c.exit_code
                .map_or_else(|| "-".to_owned(), |e| e.to_string()),
            or_dash(&ports.join(",")),
            or_dash(&c.runtime_id),
            or_dash(&c.reason),
        ]);
    }
    blocks([summary.render(), containers.render()])
}

/// `task describe`: per task a summary and its containers.
pub fn describe_table(v: &TasksView) -> String {
    blocks(v.tasks.iter().map(detail_block))
}

/// One log line as printed: `container | line`, or the bare line when the
/// task has one container (or one was chosen).
pub fn log_line(e: &pb::LogEntry, prefix: bool) -> String {
    if prefix {
        format!("{} | {}\n", e.container, e.log.trim_end_matches('\n'))
    } else {
        format!("{}\n", e.log.trim_end_matches('\n'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::json;
    use crate::views::fixtures::{t0, t1};
    use expect_test::expect;

    const P: &str = "arn:berth:ecs:local:000000000000";

    fn task(id: &str, last: &str, exit: Option<i32>) -> pb::Task {
        let task_arn = format!("{P}:task/default/{id}");
        pb::Task {
            task_arn: task_arn.clone(),
            cluster_arn: format!("{P}:cluster/default"),
            task_definition_arn: format!("{P}:task-definition/web:3"),
            container_instance_arn: format!("{P}:container-instance/default/4f1c9a7e"),
            last_status: last.to_owned(),
            desired_status: if last == "STOPPED" {
                "STOPPED"
            } else {
                "RUNNING"
            }
            .to_owned(),
            cpu: "256".to_owned(),
            memory: "128".to_owned(),
            containers: vec![pb::Container {
                container_arn: format!("{P}:container/default/{id}/web"),
                task_arn,
                name: "web".to_owned(),
                image: "nginx:1.27".to_owned(),
                runtime_id: format!("{id}-web"),
                last_status: last.to_owned(),
                exit_code: exit,
                network_bindings: vec![pb::NetworkBinding {
                    bind_ip: "0.0.0.0".to_owned(),
                    container_port: 80,
                    host_port: 20417,
                    protocol: "tcp".to_owned(),
                }],
                memory: "128".to_owned(),
                ..Default::default()
            }],
            started_by: "ci".to_owned(),
            group: "family:web".to_owned(),
            launch_type: "EXTERNAL".to_owned(),
            version: 3,
            created_at: t0(),
            started_at: t1(),
            stopped_at: if last == "STOPPED" { t1() } else { None },
            stop_code: if last == "STOPPED" {
                "UserInitiated"
            } else {
                ""
            }
            .to_owned(),
            stopped_reason: if last == "STOPPED" {
                "Task stopped by user"
            } else {
                ""
            }
            .to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn describe_json_is_ecs_shaped() {
        let v = TasksView::new(
            vec![task("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "STOPPED", Some(0))],
            vec![pb::Failure {
                arn: format!("{P}:task/default/gone"),
                reason: "MISSING".to_owned(),
                detail: String::new(),
            }],
        );
        expect![[r#"
            {
              "tasks": [
                {
                  "attachments": [],
                  "attributes": [],
                  "clusterArn": "arn:berth:ecs:local:000000000000:cluster/default",
                  "connectivity": "CONNECTED",
                  "containerInstanceArn": "arn:berth:ecs:local:000000000000:container-instance/default/4f1c9a7e",
                  "containers": [
                    {
                      "containerArn": "arn:berth:ecs:local:000000000000:container/default/0a1b2c3d4e5f60718293a4b5c6d7e8f9/web",
                      "taskArn": "arn:berth:ecs:local:000000000000:task/default/0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                      "name": "web",
                      "image": "nginx:1.27",
                      "runtimeId": "0a1b2c3d4e5f60718293a4b5c6d7e8f9-web",
                      "lastStatus": "STOPPED",
                      "exitCode": 0,
                      "networkBindings": [
                        {
                          "bindIP": "0.0.0.0",
                          "containerPort": 80,
                          "hostPort": 20417,
                          "protocol": "tcp"
                        }
                      ],
                      "networkInterfaces": [],
                      "healthStatus": "UNKNOWN",
                      "cpu": "0",
                      "memory": "128"
                    }
                  ],
                  "cpu": "256",
                  "createdAt": "2024-05-01T12:00:00.250000+00:00",
                  "desiredStatus": "STOPPED",
                  "enableExecuteCommand": false,
                  "group": "family:web",
                  "healthStatus": "UNKNOWN",
                  "lastStatus": "STOPPED",
                  "launchType": "EXTERNAL",
                  "memory": "128",
                  "overrides": {
                    "containerOverrides": [
                      {
                        "name": "web"
                      }
                    ],
                    "inferenceAcceleratorOverrides": []
                  },
                  "startedAt": "2024-05-02T08:30:05+00:00",
                  "startedBy": "ci",
                  "stopCode": "UserInitiated",
                  "stoppedAt": "2024-05-02T08:30:05+00:00",
                  "stoppedReason": "Task stopped by user",
                  "taskArn": "arn:berth:ecs:local:000000000000:task/default/0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                  "taskDefinitionArn": "arn:berth:ecs:local:000000000000:task-definition/web:3",
                  "version": 3
                }
              ],
              "failures": [
                {
                  "arn": "arn:berth:ecs:local:000000000000:task/default/gone",
                  "reason": "MISSING"
                }
              ]
            }
        "#]]
        .assert_eq(&json(&v));
    }

    #[test]
    fn list_table() {
        let mut pending = task("ffffffffffffffffffffffffffffffff", "PROVISIONING", None);
        pending.containers[0].network_bindings.clear();
        pending.started_at = None;
        let v = TasksView::new(
            vec![
                task("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "RUNNING", None),
                pending,
            ],
            vec![],
        );
        expect![[r#"
            TASK                              TASKDEF  INSTANCE  LAST          DESIRED  CPU  MEMORY  PORTS          STARTED
            0a1b2c3d4e5f60718293a4b5c6d7e8f9  web:3    4f1c9a7e  RUNNING       RUNNING  256  128     20417->80/tcp  2024-05-02T08:30:05Z
            ffffffffffffffffffffffffffffffff  web:3    4f1c9a7e  PROVISIONING  RUNNING  256  128     -              -
        "#]]
        .assert_eq(&super::list_table(&v));
    }

    #[test]
    fn describe_table_start_and_stop_text() {
        let v = TasksView::new(
            vec![task(
                "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                "STOPPED",
                Some(137),
            )],
            vec![],
        );
        expect![[r#"
            Task:             0a1b2c3d4e5f60718293a4b5c6d7e8f9
            ARN:              arn:berth:ecs:local:000000000000:task/default/0a1b2c3d4e5f60718293a4b5c6d7e8f9
            Task definition:  web:3
            Instance:         4f1c9a7e
            Last status:      STOPPED
            Desired status:   STOPPED
            CPU / memory:     256 / 128 MiB
            Group:            family:web
            Started by:       ci
            Created at:       2024-05-01T12:00:00Z
            Started at:       2024-05-02T08:30:05Z
            Stopped at:       2024-05-02T08:30:05Z
            Stop code:        UserInitiated
            Stopped reason:   Task stopped by user

            CONTAINER  STATUS   EXIT  PORTS          RUNTIME ID                            REASON
            web        STOPPED  137   20417->80/tcp  0a1b2c3d4e5f60718293a4b5c6d7e8f9-web  -
        "#]]
        .assert_eq(&describe_table(&v));
        expect![[r#"
            0a1b2c3d4e5f60718293a4b5c6d7e8f9
        "#]]
        .assert_eq(&started_table(&v));
        expect![[r#"
            0a1b2c3d4e5f60718293a4b5c6d7e8f9: desired STOPPED (last status STOPPED): Task stopped by user
        "#]]
        .assert_eq(&stop_sentence(&v.tasks[0]));
    }

    #[test]
    fn log_lines() {
        let e = pb::LogEntry {
            time: None,
            container: "web".to_owned(),
            stream: "stdout".to_owned(),
            log: "GET / 200\n".to_owned(),
        };
        assert_eq!(log_line(&e, true), "web | GET / 200\n");
        assert_eq!(log_line(&e, false), "GET / 200\n");
    }
}
