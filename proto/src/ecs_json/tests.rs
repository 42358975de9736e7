//! Snapshots of every renderer, real ECS outputs (`testdata/README.md`)
//! compared member by member, the timestamp list against everything the
//! renderer emits, and `cli_timestamps` against Python's `isoformat()`.

use std::collections::BTreeSet;

use expect_test::expect;
use prost_types::Timestamp;
use serde_json::{json, Value};

use super::*;

const P: &str = "arn:aws:ecs:local:000000000000";

/// 2024-05-01T12:00:00.250Z
fn t0() -> Option<Timestamp> {
    Some(Timestamp {
        seconds: 1_714_564_800,
        nanos: 250_000_000,
    })
}

/// 2024-05-02T08:30:05Z
fn t1() -> Option<Timestamp> {
    Some(Timestamp {
        seconds: 1_714_638_605,
        nanos: 0,
    })
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A task with every member Berth knows set.
fn full_task(id: &str, network_mode: &str) -> pb::Task {
    let task_arn = format!("{P}:task/default/{id}");
    pb::Task {
        task_arn: task_arn.clone(),
        cluster_arn: format!("{P}:cluster/default"),
        task_definition_arn: format!("{P}:task-definition/web:3"),
        container_instance_arn: format!("{P}:container-instance/default/4f1c9a7e"),
        last_status: "STOPPED".to_owned(),
        desired_status: "STOPPED".to_owned(),
        health_status: "HEALTHY".to_owned(),
        cpu: "256".to_owned(),
        memory: "128".to_owned(),
        containers: vec![
            pb::Container {
                container_arn: format!("{P}:container/default/{id}/web"),
                task_arn: task_arn.clone(),
                name: "web".to_owned(),
                image: "nginx:1.27".to_owned(),
                image_digest:
                    "sha256:10d1f5b58f74683ad34eb29287e07dab1e90f10af243f151bb50aa5dbb4d62ee"
                        .to_owned(),
                runtime_id: format!("{id}-web"),
                last_status: "STOPPED".to_owned(),
                exit_code: Some(137),
                reason: "OutOfMemoryError: container killed due to memory usage".to_owned(),
                network_bindings: vec![pb::NetworkBinding {
                    bind_ip: "0.0.0.0".to_owned(),
                    container_port: 80,
                    host_port: 20417,
                    protocol: "tcp".to_owned(),
                }],
                health_status: "HEALTHY".to_owned(),
                cpu: "128".to_owned(),
                memory: "128".to_owned(),
                memory_reservation: "64".to_owned(),
                health_check_output: "ok".to_owned(),
                restart_count: 2,
            },
            pb::Container {
                container_arn: format!("{P}:container/default/{id}/sidecar"),
                task_arn,
                name: "sidecar".to_owned(),
                image: "busybox".to_owned(),
                ..Default::default()
            },
        ],
        started_by: "ci".to_owned(),
        group: "service:web".to_owned(),
        launch_type: "EXTERNAL".to_owned(),
        version: 7,
        created_at: t0(),
        pull_started_at: t0(),
        pull_stopped_at: t0(),
        started_at: t1(),
        stopping_at: t1(),
        stopped_at: t1(),
        connectivity_at: t0(),
        stop_code: "EssentialContainerExited".to_owned(),
        stopped_reason: "Essential container in task exited".to_owned(),
        overrides: Some(pb::TaskOverride {
            container_overrides: vec![pb::ContainerOverride {
                name: "web".to_owned(),
                command: vec![
                    "nginx".to_owned(),
                    "-g".to_owned(),
                    "daemon off;".to_owned(),
                ],
                environment: vec![pb::KeyValuePair {
                    name: "MODE".to_owned(),
                    value: "blue".to_owned(),
                }],
                cpu: Some(128),
                memory: Some(128),
                memory_reservation: Some(64),
            }],
        }),
        network_mode: network_mode.to_owned(),
        private_ipv4_address: if network_mode == "host" {
            String::new()
        } else {
            "10.217.0.5".to_owned()
        },
        tags: vec![],
        enable_execute_command: false,
    }
}

fn full_service() -> pb::Service {
    pb::Service {
        service_arn: format!("{P}:service/default/web"),
        service_name: "web".into(),
        cluster_arn: format!("{P}:cluster/default"),
        status: "ACTIVE".into(),
        task_definition: format!("{P}:task-definition/web:2"),
        desired_count: 4,
        running_count: 3,
        pending_count: 1,
        scheduling_strategy: "REPLICA".into(),
        placement_constraints: vec![pb::PlacementConstraint {
            r#type: "memberOf".into(),
            expression: "attribute:ecs.os-type == linux".into(),
        }],
        placement_strategy: vec![pb::PlacementStrategy {
            r#type: "spread".into(),
            field: "instanceId".into(),
        }],
        deployment_configuration: Some(pb::DeploymentConfiguration {
            minimum_healthy_percent: Some(50),
            maximum_percent: Some(150),
            deployment_circuit_breaker: Some(pb::DeploymentCircuitBreaker {
                enable: true,
                rollback: true,
            }),
        }),
        health_check_grace_period_seconds: 30,
        tags: vec![pb::Tag {
            key: "team".into(),
            value: "web".into(),
        }],
        created_at: t0(),
        deployments: vec![pb::Deployment {
            id: "ecs-svc/2".into(),
            status: "PRIMARY".into(),
            task_definition: format!("{P}:task-definition/web:2"),
            desired_count: 4,
            pending_count: 1,
            running_count: 3,
            failed_tasks: 1,
            rollout_state: "IN_PROGRESS".into(),
            rollout_state_reason: "ECS deployment ecs-svc/2 in progress.".into(),
            created_at: t0(),
            updated_at: t1(),
        }],
        events: vec![pb::ServiceEvent {
            id: "e1".into(),
            created_at: t1(),
            message: "(service web) has started 1 tasks: (task 0a1b).".into(),
        }],
        load_balancers: vec![],
        service_discovery: None,
    }
}

fn full_cluster() -> pb::Cluster {
    pb::Cluster {
        cluster_arn: format!("{P}:cluster/default"),
        cluster_name: "default".into(),
        status: "ACTIVE".into(),
        registered_container_instances_count: 3,
        running_tasks_count: 12,
        pending_tasks_count: 1,
        active_services_count: 2,
        created_at: t0(),
        tags: vec![],
    }
}

fn full_instance() -> pb::ContainerInstance {
    let int = |name: &str, v: i64| pb::Resource {
        name: name.into(),
        r#type: "INTEGER".into(),
        integer_value: v,
        string_set_value: vec![],
    };
    let set = |name: &str, v: &[&str]| pb::Resource {
        name: name.into(),
        r#type: "STRINGSET".into(),
        integer_value: 0,
        string_set_value: v.iter().map(|s| (*s).to_owned()).collect(),
    };
    pb::ContainerInstance {
        container_instance_arn: format!("{P}:container-instance/default/4f1c9a7e"),
        id: "4f1c9a7e".into(),
        cluster_arn: format!("{P}:cluster/default"),
        ec2_instance_id: "node-a".into(),
        status: "ACTIVE".into(),
        agent_connected: true,
        agent_version: "0.1.0".into(),
        registered_resources: vec![int("CPU", 2048), set("PORTS", &["22"])],
        remaining_resources: vec![int("CPU", 1536), set("PORTS", &["22", "20417"])],
        attributes: vec![
            pb::Attribute {
                name: "ecs.os-type".into(),
                value: "linux".into(),
            },
            pb::Attribute {
                name: "ecs.capability.cni-plugin-version".into(),
                value: String::new(),
            },
        ],
        running_tasks_count: 2,
        pending_tasks_count: 0,
        address: "10.0.0.7".into(),
        registered_at: t0(),
        last_heartbeat_at: t1(),
        hostname: "node-a".into(),
        tags: vec![],
    }
}

fn full_task_definition() -> pb::TaskDefinition {
    use crate::taskdef::{describe_json, parse_registration, ReadOnlyFields};
    let reg = parse_registration(include_str!("../taskdef/testdata/ecs-sleep360.input.json"))
        .expect("registers");
    let ro = ReadOnlyFields {
        task_definition_arn: format!("{P}:task-definition/sleep360:1"),
        revision: 1,
        status: crate::taskdef::TaskDefinitionStatus::Inactive,
        registered_at: time::macros::datetime!(2024-05-01 12:00:00.25 UTC),
        deregistered_at: Some(time::macros::datetime!(2024-05-02 08:30:05 UTC)),
        registered_by: None,
    };
    pb::TaskDefinition {
        task_definition_arn: ro.task_definition_arn.clone(),
        family: "sleep360".into(),
        revision: 1,
        status: "INACTIVE".into(),
        registered_at: t0(),
        deregistered_at: t1(),
        json: describe_json(&reg.definition, &ro).to_string(),
    }
}

/// Every rendered resource, fully populated.
fn everything() -> Vec<Value> {
    vec![
        cluster(&full_cluster()),
        task(&full_task("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "awsvpc")),
        task(&full_task("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "bridge")),
        service(&full_service()),
        container_instance(&full_instance()),
        failure(&pb::Failure {
            arn: "a".into(),
            reason: "MISSING".into(),
            detail: "d".into(),
        }),
        task_definition(&full_task_definition()).expect("renders"),
        service_deployment_brief(&pb::ServiceDeploymentBrief {
            service_deployment_arn: "arn:berth:ecs:local:0:service-deployment/c/s/1".into(),
            service_arn: "arn:berth:ecs:local:0:service/c/s".into(),
            cluster_arn: "arn:berth:ecs:local:0:cluster/c".into(),
            started_at: t0(),
            created_at: t0(),
            finished_at: t1(),
            target_service_revision_arn: "r".into(),
            status: "SUCCESSFUL".into(),
            status_reason: "done".into(),
        }),
        service_deployment(&full_service_deployment()),
    ]
}

fn full_service_deployment() -> pb::ServiceDeployment {
    let rev = |arn: &str| pb::ServiceRevisionSummary {
        arn: arn.into(),
        requested_task_count: 2,
        running_task_count: 1,
        pending_task_count: 1,
        task_definition: "arn:berth:ecs:local:0:task-definition/web:2".into(),
    };
    pb::ServiceDeployment {
        service_deployment_arn: "arn:berth:ecs:local:0:service-deployment/c/s/2".into(),
        service_arn: "arn:berth:ecs:local:0:service/c/s".into(),
        cluster_arn: "arn:berth:ecs:local:0:cluster/c".into(),
        created_at: t0(),
        started_at: t0(),
        finished_at: t1(),
        stopped_at: t1(),
        updated_at: t1(),
        source_service_revisions: vec![rev("old")],
        target_service_revision: Some(rev("new")),
        status: "ROLLBACK_SUCCESSFUL".into(),
        status_reason: "circuit breaker".into(),
        deployment_configuration: Some(pb::DeploymentConfiguration {
            minimum_healthy_percent: Some(50),
            maximum_percent: Some(150),
            deployment_circuit_breaker: Some(pb::DeploymentCircuitBreaker {
                enable: true,
                rollback: true,
            }),
        }),
        rollback: Some(pb::ServiceDeploymentRollback {
            reason: "failed tasks".into(),
            started_at: t1(),
            service_revision_arn: "old".into(),
        }),
        deployment_circuit_breaker: Some(pb::ServiceDeploymentCircuitBreaker {
            status: "TRIGGERED".into(),
            failure_count: 3,
            threshold: 3,
        }),
    }
}

#[test]
fn service_deployment_snapshot() {
    expect_test::expect![[r#"
        {
          "serviceDeploymentArn": "arn:berth:ecs:local:0:service-deployment/c/s/2",
          "serviceArn": "arn:berth:ecs:local:0:service/c/s",
          "clusterArn": "arn:berth:ecs:local:0:cluster/c",
          "createdAt": 1714564800.25,
          "startedAt": 1714564800.25,
          "finishedAt": 1714638605.0,
          "stoppedAt": 1714638605.0,
          "updatedAt": 1714638605.0,
          "sourceServiceRevisions": [
            {
              "arn": "old",
              "requestedTaskCount": 2,
              "runningTaskCount": 1,
              "pendingTaskCount": 1
            }
          ],
          "targetServiceRevision": {
            "arn": "new",
            "requestedTaskCount": 2,
            "runningTaskCount": 1,
            "pendingTaskCount": 1
          },
          "status": "ROLLBACK_SUCCESSFUL",
          "statusReason": "circuit breaker",
          "deploymentConfiguration": {
            "deploymentCircuitBreaker": {
              "enable": true,
              "rollback": true
            },
            "maximumPercent": 150,
            "minimumHealthyPercent": 50
          },
          "rollback": {
            "reason": "failed tasks",
            "startedAt": 1714638605.0,
            "serviceRevisionArn": "old"
          },
          "deploymentCircuitBreaker": {
            "status": "TRIGGERED",
            "failureCount": 3,
            "threshold": 3
          }
        }
    "#]]
    .assert_eq(&pretty(&service_deployment(&full_service_deployment())));
}

/// Every (member name, value) pair anywhere in `v`.
fn members<'a>(v: &'a Value, out: &mut Vec<(&'a str, &'a Value)>) {
    match v {
        Value::Object(m) => {
            for (k, member) in m {
                out.push((k.as_str(), member));
                members(member, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| members(i, out)),
        _ => {}
    }
}

#[test]
fn every_timestamp_the_renderer_emits_is_listed() {
    let stamps = [
        epoch(t0().as_ref()).expect("t0"),
        epoch(t1().as_ref()).expect("t1"),
    ];
    let mut seen = BTreeSet::new();
    for v in everything() {
        let mut all = Vec::new();
        members(&v, &mut all);
        for (name, value) in all {
            let is_stamp = value.as_f64().is_some_and(|f| stamps.contains(&f));
            if is_stamp || name.ends_with("At") {
                assert!(
                    TIMESTAMP_MEMBERS.contains(&name),
                    "{name} is a timestamp missing from TIMESTAMP_MEMBERS"
                );
                assert!(value.is_f64(), "{name} is not epoch seconds: {value}");
                seen.insert(name.to_owned());
            }
        }
    }
    // The fixtures really do populate every timestamp the pb messages have.
    assert_eq!(
        seen,
        names(&[
            "connectivityAt",
            "createdAt",
            "deregisteredAt",
            "finishedAt",
            "pullStartedAt",
            "pullStoppedAt",
            "registeredAt",
            "startedAt",
            "stoppedAt",
            "stoppingAt",
            "updatedAt",
        ])
    );
    // After cli_timestamps no number is left in a timestamp member.
    for mut v in everything() {
        cli_timestamps(&mut v);
        let mut all = Vec::new();
        members(&v, &mut all);
        for (name, value) in all {
            if TIMESTAMP_MEMBERS.contains(&name) {
                assert!(value.is_string(), "{name} still {value}");
            }
        }
    }
}

#[test]
fn cli_timestamps_print_as_the_aws_cli_does() {
    // Expected values from Python: datetime.fromtimestamp(t, timezone.utc).isoformat(),
    // which is what botocore's parse_timestamp(t).isoformat() prints with TZ=UTC.
    let mut v = json!({
        "createdAt": 1_714_564_800.25,
        "startedAt": 1_714_638_605.0,
        "stoppedAt": 1_709_242_525.051,
        "connectivityAt": 1_557_134_016.971,
        "nested": [{"updatedAt": 1_466_801_808.595}],
        "registeredAt": "2024-05-01T12:00:00Z",
        "version": 1_714_564_800.25,
        "dockerLabels": {"createdAt": "kept"}
    });
    cli_timestamps(&mut v);
    assert_eq!(
        v,
        json!({
            "createdAt": "2024-05-01T12:00:00.250000+00:00",
            "startedAt": "2024-05-02T08:30:05+00:00",
            "stoppedAt": "2024-02-29T21:35:25.051000+00:00",
            "connectivityAt": "2019-05-06T09:13:36.971000+00:00",
            "nested": [{"updatedAt": "2016-06-24T20:56:48.595000+00:00"}],
            "registeredAt": "2024-05-01T12:00:00Z",
            "version": 1_714_564_800.25,
            "dockerLabels": {"createdAt": "kept"}
        })
    );
}

#[test]
fn task_snapshot() {
    let mut t = full_task("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "awsvpc");
    t.containers.truncate(1);
    expect![[r#"
        {
          "attachments": [
            {
              "id": "eni-attachment-0a1b2c3d4e5f60718293a4b5c6d7e8f9",
              "type": "ElasticNetworkInterface",
              "status": "ATTACHED",
              "details": [
                {
                  "name": "privateIPv4Address",
                  "value": "10.217.0.5"
                }
              ]
            }
          ],
          "attributes": [],
          "clusterArn": "arn:aws:ecs:local:000000000000:cluster/default",
          "connectivity": "CONNECTED",
          "connectivityAt": 1714564800.25,
          "containerInstanceArn": "arn:aws:ecs:local:000000000000:container-instance/default/4f1c9a7e",
          "containers": [
            {
              "containerArn": "arn:aws:ecs:local:000000000000:container/default/0a1b2c3d4e5f60718293a4b5c6d7e8f9/web",
              "taskArn": "arn:aws:ecs:local:000000000000:task/default/0a1b2c3d4e5f60718293a4b5c6d7e8f9",
              "name": "web",
              "image": "nginx:1.27",
              "imageDigest": "sha256:10d1f5b58f74683ad34eb29287e07dab1e90f10af243f151bb50aa5dbb4d62ee",
              "runtimeId": "0a1b2c3d4e5f60718293a4b5c6d7e8f9-web",
              "lastStatus": "STOPPED",
              "exitCode": 137,
              "reason": "OutOfMemoryError: container killed due to memory usage",
              "networkBindings": [
                {
                  "bindIP": "0.0.0.0",
                  "containerPort": 80,
                  "hostPort": 20417,
                  "protocol": "tcp"
                }
              ],
              "networkInterfaces": [
                {
                  "attachmentId": "eni-attachment-0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                  "privateIpv4Address": "10.217.0.5"
                }
              ],
              "healthStatus": "HEALTHY",
              "cpu": "128",
              "memory": "128",
              "memoryReservation": "64",
              "healthCheckOutput": "ok",
              "restartCount": 2
            }
          ],
          "cpu": "256",
          "createdAt": 1714564800.25,
          "desiredStatus": "STOPPED",
          "enableExecuteCommand": false,
          "group": "service:web",
          "healthStatus": "HEALTHY",
          "lastStatus": "STOPPED",
          "launchType": "EXTERNAL",
          "memory": "128",
          "overrides": {
            "containerOverrides": [
              {
                "name": "web",
                "command": [
                  "nginx",
                  "-g",
                  "daemon off;"
                ],
                "environment": [
                  {
                    "name": "MODE",
                    "value": "blue"
                  }
                ],
                "cpu": 128,
                "memory": 128,
                "memoryReservation": 64
              }
            ],
            "inferenceAcceleratorOverrides": []
          },
          "pullStartedAt": 1714564800.25,
          "pullStoppedAt": 1714564800.25,
          "startedAt": 1714638605.0,
          "startedBy": "ci",
          "stopCode": "EssentialContainerExited",
          "stoppedAt": 1714638605.0,
          "stoppedReason": "Essential container in task exited",
          "stoppingAt": 1714638605.0,
          "taskArn": "arn:aws:ecs:local:000000000000:task/default/0a1b2c3d4e5f60718293a4b5c6d7e8f9",
          "taskDefinitionArn": "arn:aws:ecs:local:000000000000:task-definition/web:3",
          "version": 7
        }
    "#]].assert_eq(&pretty(&task(&t)));
}

#[test]
fn running_bridge_task_snapshot() {
    let mut t = full_task("ffffffffffffffffffffffffffffffff", "bridge");
    t.last_status = "RUNNING".into();
    t.desired_status = "RUNNING".into();
    t.health_status.clear();
    t.stop_code.clear();
    t.stopped_reason.clear();
    t.stopping_at = None;
    t.stopped_at = None;
    t.connectivity_at = None;
    t.overrides = None;
    t.containers.remove(0);
    expect![[r#"
        {
          "attachments": [],
          "attributes": [],
          "clusterArn": "arn:aws:ecs:local:000000000000:cluster/default",
          "connectivity": "CONNECTED",
          "containerInstanceArn": "arn:aws:ecs:local:000000000000:container-instance/default/4f1c9a7e",
          "containers": [
            {
              "containerArn": "arn:aws:ecs:local:000000000000:container/default/ffffffffffffffffffffffffffffffff/sidecar",
              "taskArn": "arn:aws:ecs:local:000000000000:task/default/ffffffffffffffffffffffffffffffff",
              "name": "sidecar",
              "image": "busybox",
              "lastStatus": "PENDING",
              "networkBindings": [],
              "networkInterfaces": [],
              "healthStatus": "UNKNOWN",
              "cpu": "0"
            }
          ],
          "cpu": "256",
          "createdAt": 1714564800.25,
          "desiredStatus": "RUNNING",
          "enableExecuteCommand": false,
          "group": "service:web",
          "healthStatus": "UNKNOWN",
          "lastStatus": "RUNNING",
          "launchType": "EXTERNAL",
          "memory": "128",
          "overrides": {
            "containerOverrides": [
              {
                "name": "sidecar"
              }
            ],
            "inferenceAcceleratorOverrides": []
          },
          "pullStartedAt": 1714564800.25,
          "pullStoppedAt": 1714564800.25,
          "startedAt": 1714638605.0,
          "startedBy": "ci",
          "taskArn": "arn:aws:ecs:local:000000000000:task/default/ffffffffffffffffffffffffffffffff",
          "taskDefinitionArn": "arn:aws:ecs:local:000000000000:task-definition/web:3",
          "version": 7
        }
    "#]].assert_eq(&pretty(&task(&t)));
}

#[test]
fn service_snapshot() {
    expect![[r#"
        {
          "serviceArn": "arn:aws:ecs:local:000000000000:service/default/web",
          "serviceName": "web",
          "clusterArn": "arn:aws:ecs:local:000000000000:cluster/default",
          "loadBalancers": [],
          "serviceRegistries": [],
          "status": "ACTIVE",
          "desiredCount": 4,
          "runningCount": 3,
          "pendingCount": 1,
          "launchType": "EXTERNAL",
          "taskDefinition": "arn:aws:ecs:local:000000000000:task-definition/web:2",
          "deploymentConfiguration": {
            "deploymentCircuitBreaker": {
              "enable": true,
              "rollback": true
            },
            "maximumPercent": 150,
            "minimumHealthyPercent": 50
          },
          "deployments": [
            {
              "id": "ecs-svc/2",
              "status": "PRIMARY",
              "taskDefinition": "arn:aws:ecs:local:000000000000:task-definition/web:2",
              "desiredCount": 4,
              "pendingCount": 1,
              "runningCount": 3,
              "failedTasks": 1,
              "createdAt": 1714564800.25,
              "updatedAt": 1714638605.0,
              "launchType": "EXTERNAL",
              "rolloutState": "IN_PROGRESS",
              "rolloutStateReason": "ECS deployment ecs-svc/2 in progress."
            }
          ],
          "events": [
            {
              "id": "e1",
              "createdAt": 1714638605.0,
              "message": "(service web) has started 1 tasks: (task 0a1b)."
            }
          ],
          "createdAt": 1714564800.25,
          "placementConstraints": [
            {
              "type": "memberOf",
              "expression": "attribute:ecs.os-type == linux"
            }
          ],
          "placementStrategy": [
            {
              "type": "spread",
              "field": "instanceId"
            }
          ],
          "healthCheckGracePeriodSeconds": 30,
          "schedulingStrategy": "REPLICA",
          "deploymentController": {
            "type": "ECS"
          },
          "tags": [
            {
              "key": "team",
              "value": "web"
            }
          ],
          "enableECSManagedTags": false,
          "propagateTags": "NONE",
          "enableExecuteCommand": false
        }
    "#]]
    .assert_eq(&pretty(&service(&full_service())));
}

#[test]
fn cluster_snapshot() {
    expect![[r#"
        {
          "clusterArn": "arn:aws:ecs:local:000000000000:cluster/default",
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
        }
    "#]]
    .assert_eq(&pretty(&cluster(&full_cluster())));
}

#[test]
fn container_instance_snapshot() {
    expect![[r#"
        {
          "containerInstanceArn": "arn:aws:ecs:local:000000000000:container-instance/default/4f1c9a7e",
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
              "name": "PORTS",
              "type": "STRINGSET",
              "doubleValue": 0.0,
              "longValue": 0,
              "integerValue": 0,
              "stringSetValue": [
                "22",
                "20417"
              ]
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
              "name": "PORTS",
              "type": "STRINGSET",
              "doubleValue": 0.0,
              "longValue": 0,
              "integerValue": 0,
              "stringSetValue": [
                "22"
              ]
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
          "registeredAt": 1714564800.25,
          "attachments": []
        }
    "#]].assert_eq(&pretty(&container_instance(&full_instance())));
}

#[test]
fn failure_and_container() {
    let f = |detail: &str| {
        failure(&pb::Failure {
            arn: "arn:x".into(),
            reason: "MISSING".into(),
            detail: detail.into(),
        })
    };
    assert_eq!(f(""), json!({"arn": "arn:x", "reason": "MISSING"}));
    assert_eq!(
        f("gone"),
        json!({"arn": "arn:x", "reason": "MISSING", "detail": "gone"})
    );
    let c = full_task("0a1b", "bridge").containers.remove(1);
    expect![[r#"
        {
          "containerArn": "arn:aws:ecs:local:000000000000:container/default/0a1b/sidecar",
          "taskArn": "arn:aws:ecs:local:000000000000:task/default/0a1b",
          "name": "sidecar",
          "image": "busybox",
          "lastStatus": "PENDING",
          "networkBindings": [],
          "networkInterfaces": [],
          "healthStatus": "UNKNOWN",
          "cpu": "0"
        }
    "#]]
    .assert_eq(&pretty(&container(&c)));
}

#[test]
fn task_definition_converts_old_rfc3339_timestamps() {
    let td = pb::TaskDefinition {
        task_definition_arn: "arn:td".into(),
        json: r#"{"family":"f","registeredAt":"2024-05-01T12:00:00.25Z","deregisteredAt":"2024-05-02T10:30:05+02:00"}"#.into(),
        ..Default::default()
    };
    let v = task_definition(&td).expect("renders");
    assert_eq!(v["registeredAt"], json!(1_714_564_800.25));
    assert_eq!(v["deregisteredAt"], json!(1_714_638_605.0));
    let mut cli = v.clone();
    cli_timestamps(&mut cli);
    assert_eq!(cli["registeredAt"], "2024-05-01T12:00:00.250000+00:00");

    let bad = |json: &str| {
        task_definition(&pb::TaskDefinition {
            task_definition_arn: "arn:td".into(),
            json: json.into(),
            ..Default::default()
        })
        .map_err(|e| e.to_string())
    };
    assert!(bad("{")
        .unwrap_err()
        .starts_with("the JSON of task definition arn:td is unreadable"));
    assert_eq!(
        bad("[]").unwrap_err(),
        "the JSON of task definition arn:td is not an object"
    );
}

/// ECS's members of a real output that Berth's rendering of a comparable
/// resource lacks, and Berth's members ECS's output lacks.
fn compare(berth: &Value, ecs: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let (b, e) = (keys(berth), keys(ecs));
    (
        e.difference(&b).cloned().collect(),
        b.difference(&e).cloned().collect(),
    )
}

#[test]
fn a_task_has_the_members_of_ecs_describe_tasks() {
    let real: Value =
        serde_json::from_str(include_str!("testdata/describe-tasks.json")).expect("JSON");
    let ecs = &real["tasks"][0];
    let mut t = full_task("1234567890123456789", "awsvpc");
    t.last_status = "RUNNING".into();
    t.stop_code.clear();
    t.stopped_reason.clear();
    t.stopping_at = None;
    t.stopped_at = None;
    t.containers.truncate(1);
    let berth = task(&t);
    let (missing, extra) = compare(&berth, ecs);
    // Fargate's platform; tags come with include TAGS (not yet in pb::Task).
    assert_eq!(missing, names(&["platformVersion", "tags"]));
    // Fargate tasks have no instance; this (2019) output predates ECS's
    // `attributes` (ecs.cpu-architecture) and `enableExecuteCommand` (2021),
    // which the newer describe-task-definition.rst task example shows.
    assert_eq!(
        extra,
        names(&["attributes", "containerInstanceArn", "enableExecuteCommand"])
    );
    // The waiters' members: tasks-running reads tasks[].lastStatus.
    assert_eq!(berth["lastStatus"], "RUNNING");
    // Traefik's and Prometheus's address of an awsvpc task.
    assert_eq!(berth["attachments"][0]["type"], "ElasticNetworkInterface");
    assert_eq!(
        berth["attachments"][0]["details"][0],
        json!({"name": "privateIPv4Address", "value": "10.217.0.5"})
    );
    assert_eq!(
        berth["containers"][0]["networkInterfaces"][0]["privateIpv4Address"],
        "10.217.0.5"
    );
    assert_eq!(
        berth["containers"][0]["networkInterfaces"][0]["attachmentId"],
        berth["attachments"][0]["id"]
    );
    let (missing, extra) = compare(&berth["containers"][0], &ecs["containers"][0]);
    assert_eq!(missing, names(&[]));
    assert_eq!(
        extra,
        names(&[
            "exitCode",
            "healthCheckOutput",
            "image",
            "imageDigest",
            "memory",
            "memoryReservation",
            "reason",
            "restartCount",
            "runtimeId",
        ])
    );
    let (missing, _) = compare(&berth["overrides"], &ecs["overrides"]);
    assert_eq!(missing, names(&[]));
}

#[test]
fn a_service_has_the_members_of_ecs_create_service() {
    let real: Value =
        serde_json::from_str(include_str!("testdata/create-service.json")).expect("JSON");
    let ecs = &real["service"];
    let berth = service(&full_service());
    let (missing, extra) = compare(&berth, ecs);
    // AWS networking and IAM, Fargate's platform.
    assert_eq!(
        missing,
        names(&[
            "createdBy",
            "networkConfiguration",
            "platformFamily",
            "platformVersion",
            "roleArn",
        ])
    );
    assert_eq!(extra, names(&["deploymentController", "tags"]));
    let (missing, extra) = compare(&berth["deployments"][0], &ecs["deployments"][0]);
    assert_eq!(
        missing,
        names(&["networkConfiguration", "platformFamily", "platformVersion"])
    );
    assert_eq!(extra, names(&[]));
    assert_eq!(
        keys(&berth["deploymentConfiguration"]),
        keys(&ecs["deploymentConfiguration"])
    );
    // services-stable reads deployments' length, runningCount, desiredCount, status.
    for member in ["deployments", "runningCount", "desiredCount", "status"] {
        assert!(berth.get(member).is_some(), "{member}");
    }
}

#[test]
fn a_cluster_has_the_members_of_ecs_create_cluster() {
    let real: Value =
        serde_json::from_str(include_str!("testdata/create-cluster.json")).expect("JSON");
    let mut c = full_cluster();
    c.cluster_arn = "arn:aws:ecs:ap-south-1:936766936551:cluster/dev-fargate".into();
    c.cluster_name = "dev-fargate".into();
    c.registered_container_instances_count = 0;
    c.running_tasks_count = 0;
    c.pending_tasks_count = 0;
    c.active_services_count = 0;
    assert_eq!(cluster(&c), real["cluster"]);
    // In ECS's order too.
    let order = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(order(&cluster(&c)), order(&real["cluster"]));
}
