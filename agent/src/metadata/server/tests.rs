//! The endpoint's decisions without HTTP: the v4 JSON (snapshots), who may
//! read which id, and the rate limit.

use std::time::{Duration, SystemTime};

use super::*;
use crate::desired::{DesiredTask, PortAssignment};
use crate::metadata::registry::{ContainerEvent, NetworkFacts};
use crate::runtime::plan::TaskPlan;
use crate::runtime::report::{Binding, ContainerStatus, Protocol, TaskReport, TaskStatus};

const DEF: &str = r#"{"family":"web","cpu":"512","memory":"256","containerDefinitions":[
  {"name":"web","image":"registry.local/web:1","cpu":256,"memory":128,
   "portMappings":[{"containerPort":80,"name":"http"},{"containerPort":53,"protocol":"udp"}],
   "dockerLabels":{"team":"core"},
   "healthCheck":{"command":["CMD-SHELL","true"]},
   "logConfiguration":{"logDriver":"json-file","options":{"max-size":"1m"}}},
  {"name":"sidecar","image":"registry.local/side:1","memoryReservation":32,"essential":false}]}"#;

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn plan(id: &str, json: &str, ports: Vec<PortAssignment>) -> TaskPlan {
    let d = DesiredTask {
        task_arn: format!("arn:berth:ecs:local:000000000000:task/default/{id}"),
        task_definition_json: json.into(),
        cluster: "default".into(),
        family: "web".into(),
        revision: 7,
        ports,
        ..Default::default()
    };
    let mut p = TaskPlan::from_desired(&d, Duration::from_secs(30)).unwrap();
    for (i, c) in p.containers.iter_mut().enumerate() {
        c.metadata_id = format!("{id}-m{i}");
    }
    p
}

struct Fixture {
    endpoint: Endpoint,
    web: TaskPlan,
}

fn fixture() -> Fixture {
    let registry = Registry::default();
    let reporter = Reporter::default();
    let web = plan(
        "aaaa",
        DEF,
        vec![
            PortAssignment {
                container_name: "web".into(),
                container_port: 80,
                protocol: Protocol::Tcp,
                host_port: 20080,
            },
            PortAssignment {
                container_name: "web".into(),
                container_port: 53,
                protocol: Protocol::Udp,
                host_port: 20053,
            },
        ],
    );
    registry.register(TaskEntry::new(
        &web,
        NetworkFacts {
            ip: Some("10.9.0.2".parse().unwrap()),
            prefix_len: Some(24),
            gateway: Some("10.9.0.1".parse().unwrap()),
            host_veth: None,
        },
    ));
    for c in ["web", "sidecar"] {
        registry.container_event(&web.arn, c, ContainerEvent::Created, t(10));
        registry.container_event(&web.arn, c, ContainerEvent::Started, t(11));
    }
    registry.container_event(&web.arn, "sidecar", ContainerEvent::Finished, t(20));
    let mut report = TaskReport::new(
        &web.arn,
        web.containers
            .iter()
            .map(|c| (c.name.clone(), c.runtime_id.clone())),
    );
    report.status = TaskStatus::Running;
    report.pull_started_at = Some(t(1));
    report.pull_stopped_at = Some(t(5));
    report.started_at = Some(t(12));
    report.containers[0].status = ContainerStatus::Running;
    report.containers[0].image_digest = "sha256:1111".into();
    report.containers[0].bindings = vec![Binding {
        bind_ip: "0.0.0.0".into(),
        container_port: 80,
        host_port: 20080,
        protocol: Protocol::Tcp,
    }];
    report.containers[1].status = ContainerStatus::Stopped;
    report.containers[1].exit_code = Some(0);
    reporter.publish(report);

    let other = plan(
        "bbbb",
        r#"{"family":"other","networkMode":"awsvpc","containerDefinitions":[
            {"name":"app","image":"busybox","memory":16}]}"#,
        vec![],
    );
    registry.register(TaskEntry::new(
        &other,
        NetworkFacts {
            ip: Some("10.9.0.3".parse().unwrap()),
            prefix_len: Some(24),
            gateway: Some("10.9.0.1".parse().unwrap()),
            host_veth: None,
        },
    ));
    let host = plan(
        "cccc",
        r#"{"family":"h","networkMode":"host","containerDefinitions":[
            {"name":"app","image":"busybox","memory":16}]}"#,
        vec![],
    );
    registry.register(TaskEntry::new(&host, NetworkFacts::default()));

    let (_tx, desired) = watch::channel(None);
    Fixture {
        endpoint: Endpoint::new(registry, reporter, desired, None, Some("rack-1".into())),
        web,
    }
}

fn get(e: &Endpoint, peer: &str, path: &str) -> Reply {
    e.respond(peer.parse().unwrap(), &Method::GET, path, Instant::now())
}

#[test]
fn task_response_in_ecs_names() {
    let f = fixture();
    let r = get(&f.endpoint, "10.9.0.2", "/v4/aaaa-m0/task");
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    expect_test::expect![[r#"
        {
          "Cluster": "default",
          "TaskARN": "arn:berth:ecs:local:000000000000:task/default/aaaa",
          "Family": "web",
          "Revision": "7",
          "DesiredStatus": "RUNNING",
          "KnownStatus": "RUNNING",
          "Limits": {
            "CPU": 0.5,
            "Memory": 256
          },
          "PullStartedAt": "2023-11-14T22:13:21Z",
          "PullStoppedAt": "2023-11-14T22:13:25Z",
          "AvailabilityZone": "rack-1",
          "LaunchType": "EC2",
          "Containers": [
            {
              "DockerId": "aaaa-0-web",
              "Name": "web",
              "DockerName": "aaaa-0-web",
              "Image": "registry.local/web:1",
              "ImageID": "sha256:1111",
              "Ports": [
                {
                  "ContainerPort": 80,
                  "Protocol": "tcp",
                  "HostPort": 20080,
                  "HostIp": "0.0.0.0"
                },
                {
                  "ContainerPort": 53,
                  "Protocol": "udp",
                  "HostPort": 20053,
                  "HostIp": "0.0.0.0"
                }
              ],
              "Labels": {
                "com.amazonaws.ecs.cluster": "default",
                "com.amazonaws.ecs.container-name": "web",
                "com.amazonaws.ecs.task-arn": "arn:berth:ecs:local:000000000000:task/default/aaaa",
                "com.amazonaws.ecs.task-definition-family": "web",
                "com.amazonaws.ecs.task-definition-version": "7",
                "team": "core"
              },
              "DesiredStatus": "RUNNING",
              "KnownStatus": "RUNNING",
              "Limits": {
                "CPU": 256,
                "Memory": 128
              },
              "CreatedAt": "2023-11-14T22:13:30Z",
              "StartedAt": "2023-11-14T22:13:31Z",
              "Type": "NORMAL",
              "Health": {
                "status": "UNKNOWN"
              },
              "LogDriver": "json-file",
              "LogOptions": {
                "max-size": "1m"
              },
              "ContainerARN": "arn:berth:ecs:local:000000000000:container/default/aaaa/web",
              "Networks": [
                {
                  "NetworkMode": "bridge",
                  "IPv4Addresses": [
                    "10.9.0.2"
                  ]
                }
              ]
            },
            {
              "DockerId": "aaaa-1-sidecar",
              "Name": "sidecar",
              "DockerName": "aaaa-1-sidecar",
              "Image": "registry.local/side:1",
              "ImageID": "",
              "Labels": {
                "com.amazonaws.ecs.cluster": "default",
                "com.amazonaws.ecs.container-name": "sidecar",
                "com.amazonaws.ecs.task-arn": "arn:berth:ecs:local:000000000000:task/default/aaaa",
                "com.amazonaws.ecs.task-definition-family": "web",
                "com.amazonaws.ecs.task-definition-version": "7"
              },
              "DesiredStatus": "STOPPED",
              "KnownStatus": "STOPPED",
              "ExitCode": 0,
              "Limits": {
                "CPU": 0,
                "Memory": 32
              },
              "CreatedAt": "2023-11-14T22:13:30Z",
              "StartedAt": "2023-11-14T22:13:31Z",
              "FinishedAt": "2023-11-14T22:13:40Z",
              "Type": "NORMAL",
              "LogDriver": "json-file",
              "ContainerARN": "arn:berth:ecs:local:000000000000:container/default/aaaa/sidecar",
              "Networks": [
                {
                  "NetworkMode": "bridge",
                  "IPv4Addresses": [
                    "10.9.0.2"
                  ]
                }
              ]
            }
          ]
        }"#]]
    .assert_eq(&r.body);
    // The container path is that container's entry alone.
    let c = get(&f.endpoint, "10.9.0.2", "/v4/aaaa-m1");
    let v: serde_json::Value = serde_json::from_str(&c.body).unwrap();
    assert_eq!(v["Name"], "sidecar");
    assert_eq!(v["DockerId"], f.web.containers[1].runtime_id);
    // v3 paths (ECS_CONTAINER_METADATA_URI) answer the same.
    assert_eq!(
        get(&f.endpoint, "10.9.0.2", "/v3/aaaa-m0/task/").body,
        r.body
    );
}

#[test]
fn awsvpc_networks_name_subnet_and_gateway() {
    let f = fixture();
    let r = get(&f.endpoint, "10.9.0.3", "/v4/bbbb-m0");
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    expect_test::expect![[r#"
        [
          {
            "NetworkMode": "awsvpc",
            "IPv4Addresses": [
              "10.9.0.3"
            ],
            "IPv4SubnetCIDRBlock": "10.9.0.0/24",
            "SubnetGatewayIpv4Address": "10.9.0.1/24"
          }
        ]"#]]
    .assert_eq(&serde_json::to_string_pretty(&v["Networks"]).unwrap());
    assert!(v.get("Ports").is_none() && v.get("Health").is_none());
}

#[test]
fn a_task_reads_only_its_own_metadata() {
    let f = fixture();
    let e = &f.endpoint;
    // Another task's address, with a valid id: refused.
    let r = get(e, "10.9.0.3", "/v4/aaaa-m0/task");
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.starts_with('"'), "a JSON string: {}", r.body);
    assert_eq!(
        get(e, "10.9.0.2", "/v4/bbbb-m0").status,
        StatusCode::FORBIDDEN
    );
    // The host itself, or anyone else, is not the task either.
    assert_eq!(
        get(e, "10.9.0.1", "/v4/aaaa-m0").status,
        StatusCode::FORBIDDEN
    );
    // Unknown ids and paths.
    assert_eq!(
        get(e, "10.9.0.2", "/v4/nope/task").status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(e, "10.9.0.2", "/v4/aaaa-m0/nope").status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(e, "10.9.0.2", "/v2/metadata").status,
        StatusCode::NOT_FOUND
    );
    // Host-mode tasks share the host's addresses: the id is the check, and a
    // bridge task's address is still refused.
    assert_eq!(get(e, "192.0.2.7", "/v4/cccc-m0").status, StatusCode::OK);
    assert_eq!(
        get(e, "10.9.0.2", "/v4/cccc-m0").status,
        StatusCode::FORBIDDEN
    );
    let post = e.respond(
        "10.9.0.2".parse().unwrap(),
        &Method::POST,
        "/v4/aaaa-m0",
        Instant::now(),
    );
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    // Forgotten at teardown: the id no longer answers.
    e.registry.forget(&f.web.arn);
    assert_eq!(
        get(e, "10.9.0.2", "/v4/aaaa-m0").status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn rate_limited_past_the_burst() {
    let f = fixture();
    let now = Instant::now();
    let peer: IpAddr = "10.9.0.2".parse().unwrap();
    let codes: Vec<_> = (0..61)
        .map(|_| {
            f.endpoint
                .respond(peer, &Method::GET, "/v4/aaaa-m0", now)
                .status
        })
        .collect();
    assert!(codes[..60].iter().all(|c| *c == StatusCode::OK));
    assert_eq!(codes[60], StatusCode::TOO_MANY_REQUESTS);
    // Another task is not slowed down by this one.
    assert_eq!(
        f.endpoint
            .respond(
                "10.9.0.3".parse().unwrap(),
                &Method::GET,
                "/v4/bbbb-m0",
                now
            )
            .status,
        StatusCode::OK
    );
    let later = now + Duration::from_millis(50);
    assert_eq!(
        f.endpoint
            .respond(peer, &Method::GET, "/v4/aaaa-m0", later)
            .status,
        StatusCode::OK
    );
}

#[test]
fn stats_without_a_cgroup_are_null() {
    let f = fixture();
    let r = get(&f.endpoint, "10.9.0.2", "/v4/aaaa-m0/stats");
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "null"));
    let r = get(&f.endpoint, "10.9.0.2", "/v4/aaaa-m0/task/stats");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["aaaa-0-web"], serde_json::Value::Null);
    assert_eq!(v.as_object().unwrap().len(), 2);
}
