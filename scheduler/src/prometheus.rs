//! Prometheus HTTP service discovery: the scrape targets of running tasks,
//! in the JSON of Prometheus's `http_sd_config`
//! (`[{"targets":["ADDR:PORT"],"labels":{...}}]`), served at
//! `GET /prometheus/targets` on the ECS API's HTTPS listener
//! (`ecs_api::server`; `docs/discovery.md`).
//!
//! A container exposes metrics when its definition has a port mapping
//! named `metrics` (ECS's `portMappings[].name`), or the docker label
//! `ECS_PROMETHEUS_EXPORTER_PORT` (a container port: the CloudWatch
//! agent's convention; it wins over the mapping), with the optional label
//! `ECS_PROMETHEUS_METRICS_PATH` (→ `__metrics_path__`). Where it is
//! reached depends on the task's network mode: bridge, the instance's
//! address and the host port the placement reserved for that container
//! port (a port not published is not reachable, so no target); host, the
//! instance's address and the container port; awsvpc, the task's own
//! address and the container port; none, nowhere.
//!
//! One target per container of each RUNNING task, with the labels
//! `cluster`, `service` (empty for tasks no service started), `family`,
//! `revision`, `task_id`, `container`, `container_instance` and
//! `availability_zone`. Each task id makes new series, so the cardinality
//! of a metric is its own times the containers of all the tasks that ever
//! ran; `instance` is left to Prometheus (it sets it to the address).
//!
//! [`build`] is pure; [`read`] reads the store once per request (tasks,
//! their definitions and instances), as Prometheus polls only every
//! `refresh_interval`.

use std::collections::{BTreeMap, HashMap};

use berth_proto::taskdef::{NetworkMode, TaskDefinition};
use serde::Serialize;

use crate::db::{Db, DbError};
use crate::records::{InstanceRecord, TaskRecord, TaskStatus};

/// Where Prometheus asks.
pub const PATH: &str = "/prometheus/targets";
/// The port mapping name that marks a metrics port.
pub const METRICS_PORT_NAME: &str = "metrics";
/// The docker label naming the metrics container port (CloudWatch agent).
pub const EXPORTER_PORT_LABEL: &str = "ECS_PROMETHEUS_EXPORTER_PORT";
/// The docker label naming the metrics path (CloudWatch agent).
pub const METRICS_PATH_LABEL: &str = "ECS_PROMETHEUS_METRICS_PATH";
/// Prometheus's label for the scrape path.
pub const METRICS_PATH_TARGET_LABEL: &str = "__metrics_path__";

/// One entry of `http_sd_config`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetGroup {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// The container port a container's metrics are served on, and their path.
fn metrics_port(c: &berth_proto::taskdef::ContainerDefinition) -> Option<(u16, Option<&str>)> {
    let path = c
        .docker_labels
        .get(METRICS_PATH_LABEL)
        .map(String::as_str)
        .filter(|p| p.starts_with('/'));
    let labelled = c
        .docker_labels
        .get(EXPORTER_PORT_LABEL)
        .and_then(|p| p.trim().parse::<u16>().ok())
        .filter(|p| *p > 0);
    let named = || {
        c.port_mappings
            .iter()
            .find(|m| m.name.as_deref() == Some(METRICS_PORT_NAME))
            .and_then(|m| m.container_port)
            .and_then(|p| u16::try_from(p).ok())
    };
    Some((labelled.or_else(named)?, path))
}

/// The targets of `tasks` (RUNNING ones only), with each task's definition
/// looked up in `definitions` by (family, revision) and its instance in
/// `instances` by id. Sorted by task id, then container order.
pub fn build(
    tasks: &[TaskRecord],
    definitions: &HashMap<(String, u32), TaskDefinition>,
    instances: &HashMap<String, InstanceRecord>,
) -> Vec<TargetGroup> {
    let mut running: Vec<&TaskRecord> = tasks
        .iter()
        .filter(|t| t.last_status == TaskStatus::Running)
        .collect();
    running.sort_by(|a, b| a.id.cmp(&b.id));
    let mut out = Vec::new();
    for t in running {
        let Some(def) = definitions.get(&(t.family.clone(), t.revision)) else {
            continue;
        };
        let instance = instances.get(&t.instance_id);
        let mode = t
            .network_mode
            .or(def.network_mode)
            .unwrap_or(NetworkMode::Bridge);
        for c in &def.container_definitions {
            let Some((port, path)) = metrics_port(c) else {
                continue;
            };
            let address = match mode {
                NetworkMode::Bridge => instance.and_then(|i| i.address).and_then(|a| {
                    t.reservation
                        .ports
                        .iter()
                        .find(|p| p.container_name == c.name && p.container_port == port)
                        .map(|p| format!("{a}:{}", p.host_port))
                }),
                NetworkMode::Host => instance
                    .and_then(|i| i.address)
                    .map(|a| format!("{a}:{port}")),
                NetworkMode::Awsvpc => t.private_ipv4.map(|a| format!("{a}:{port}")),
                NetworkMode::None => None,
            };
            let Some(address) = address else {
                continue;
            };
            let zone = instance
                .and_then(|i| {
                    i.attributes
                        .iter()
                        .find(|(k, _)| k == crate::services::ZONE_ATTRIBUTE)
                })
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let mut labels: BTreeMap<String, String> = [
                ("cluster", t.cluster.clone()),
                (
                    "service",
                    t.group.strip_prefix("service:").unwrap_or("").to_owned(),
                ),
                ("family", t.family.clone()),
                ("revision", t.revision.to_string()),
                ("task_id", t.id.clone()),
                ("container", c.name.clone()),
                ("container_instance", t.instance_id.clone()),
                ("availability_zone", zone),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            if let Some(p) = path {
                labels.insert(METRICS_PATH_TARGET_LABEL.to_owned(), p.to_owned());
            }
            out.push(TargetGroup {
                targets: vec![address],
                labels,
            });
        }
    }
    out
}

/// Reads the running tasks (of `cluster`, or all), their definitions and
/// instances, and builds their targets.
pub fn read(db: &Db, cluster: Option<&str>) -> Result<Vec<TargetGroup>, DbError> {
    let tasks: Vec<TaskRecord> = db
        .all_tasks()?
        .into_iter()
        .filter(|t| t.last_status == TaskStatus::Running)
        .filter(|t| cluster.is_none_or(|c| t.cluster == c))
        .collect();
    let mut definitions = HashMap::new();
    for t in &tasks {
        if let std::collections::hash_map::Entry::Vacant(e) =
            definitions.entry((t.family.clone(), t.revision))
        {
            e.insert(db.task_definition(&t.family, Some(t.revision))?.definition);
        }
    }
    let instances = db
        .instances()?
        .into_iter()
        .map(|i| (i.id.clone(), i))
        .collect();
    Ok(build(&tasks, &definitions, &instances))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{PortAssignment, Protocol, Reservation};
    use expect_test::expect;

    const DEF: &str = r#"{"family":"app","containerDefinitions":[
        {"name":"web","image":"busybox","memory":32,
         "portMappings":[{"containerPort":80},{"containerPort":9100,"name":"metrics"}]},
        {"name":"exporter","image":"busybox","memory":32,
         "dockerLabels":{"ECS_PROMETHEUS_EXPORTER_PORT":"9200","ECS_PROMETHEUS_METRICS_PATH":"/stats"},
         "portMappings":[{"containerPort":9200}]},
        {"name":"quiet","image":"busybox","memory":32,"portMappings":[{"containerPort":81}]}]}"#;

    fn def(json: &str) -> TaskDefinition {
        berth_proto::taskdef::parse_registration(json)
            .unwrap()
            .definition
    }

    fn task(id: &str, mode: Option<NetworkMode>, status: TaskStatus) -> TaskRecord {
        let text = r#"{"id":"","cluster":"prod","instance_id":"i-1","family":"app","revision":3,"desired_status":"RUNNING","last_status":"RUNNING","started_by":"","group":"service:shop","created_at":1,"containers":[],"reservation":{"cpu_units":0,"memory_mib":0,"ports":[]},"version":1}"#;
        let mut t: TaskRecord = serde_json::from_str(text).unwrap();
        t.id = id.to_owned();
        t.network_mode = mode;
        t.last_status = status;
        t.reservation = Reservation {
            cpu_units: 0,
            memory_mib: 0,
            ports: [
                ("web", 80, 32080),
                ("web", 9100, 32100),
                ("exporter", 9200, 32200),
            ]
            .into_iter()
            .map(|(c, p, h)| PortAssignment {
                container_name: c.to_owned(),
                container_port: p,
                protocol: Protocol::Tcp,
                host_port: h,
            })
            .collect(),
        };
        t
    }

    fn instance() -> InstanceRecord {
        let text = r#"{"id":"i-1","cluster":"prod","hostname":"h1","status":"ACTIVE","registered_at":1,"agent_version":"x","resources":{"cpu_units":1,"memory_mib":1,"port_range":[1,2],"reserved_tcp_ports":[],"reserved_udp_ports":[]},"attributes":[["ecs.availability-zone","zone-a"]],"address":"10.0.0.7"}"#;
        serde_json::from_str(text).unwrap()
    }

    fn run(tasks: &[TaskRecord]) -> String {
        let defs = HashMap::from([(("app".to_owned(), 3), def(DEF))]);
        let insts = HashMap::from([("i-1".to_owned(), instance())]);
        serde_json::to_string_pretty(&build(tasks, &defs, &insts)).unwrap()
    }

    #[test]
    fn bridge_tasks_are_scraped_on_the_host_port_with_their_labels() {
        let got = run(&[task("t1", Some(NetworkMode::Bridge), TaskStatus::Running)]);
        expect![[r#"
            [
              {
                "targets": [
                  "10.0.0.7:32100"
                ],
                "labels": {
                  "availability_zone": "zone-a",
                  "cluster": "prod",
                  "container": "web",
                  "container_instance": "i-1",
                  "family": "app",
                  "revision": "3",
                  "service": "shop",
                  "task_id": "t1"
                }
              },
              {
                "targets": [
                  "10.0.0.7:32200"
                ],
                "labels": {
                  "__metrics_path__": "/stats",
                  "availability_zone": "zone-a",
                  "cluster": "prod",
                  "container": "exporter",
                  "container_instance": "i-1",
                  "family": "app",
                  "revision": "3",
                  "service": "shop",
                  "task_id": "t1"
                }
              }
            ]"#]]
        .assert_eq(&got);
    }

    #[test]
    fn host_and_awsvpc_tasks_are_scraped_on_the_container_port() {
        let host = task("t1", Some(NetworkMode::Host), TaskStatus::Running);
        let mut vpc = task("t2", Some(NetworkMode::Awsvpc), TaskStatus::Running);
        vpc.private_ipv4 = Some([10, 9, 0, 5].into());
        let none = task("t3", Some(NetworkMode::None), TaskStatus::Running);
        let v: serde_json::Value = serde_json::from_str(&run(&[host, vpc, none])).unwrap();
        let targets: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["targets"][0].as_str().unwrap())
            .collect();
        assert_eq!(
            targets,
            [
                "10.0.0.7:9100",
                "10.0.0.7:9200",
                "10.9.0.5:9100",
                "10.9.0.5:9200"
            ]
        );
    }

    #[test]
    fn only_running_tasks_with_a_reachable_metrics_port_are_targets() {
        let pending = task("t1", None, TaskStatus::Pending);
        let stopped = task("t2", None, TaskStatus::Stopped);
        // Not published: nothing to scrape from outside the task.
        let mut unpublished = task("t3", None, TaskStatus::Running);
        unpublished
            .reservation
            .ports
            .retain(|p| p.container_port == 80);
        // An instance that never said hello has no address.
        let mut nowhere = task("t4", None, TaskStatus::Running);
        nowhere.instance_id = "i-unknown".into();
        assert_eq!(run(&[pending, stopped, unpublished, nowhere]), "[]");
        // Tasks no service started have an empty service label.
        let mut solo = task("t5", None, TaskStatus::Running);
        solo.group = "family:app".into();
        let v: serde_json::Value = serde_json::from_str(&run(&[solo])).unwrap();
        assert_eq!(v[0]["labels"]["service"], "");
        assert!(v[0]["labels"].get("instance").is_none());
    }
}
