//! `TargetGroupService` and services' `loadBalancers` through the real
//! gRPC edge of an in-process scheduler (loopback TLS, real sled): ELB's
//! defaults and limits (errors name the field), idempotent creation,
//! describe by name and ARN, modification, deletion refused while a
//! service uses the group, and CreateService/UpdateService checking the
//! ports their load balancers name against the task definition. No agent
//! is needed: the targets' health is the agents' side (`tests/`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use berth_proto::v1 as pb;
use berth_proto::v1::service_service_client::ServiceServiceClient;
use berth_proto::v1::target_group_service_client::TargetGroupServiceClient;
use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_tests::{eventually, AuthedChannel};
use tonic::Code;

mod common;
use common::InProcess as Server;

/// A bridge task definition of `family` whose container `app` maps `ports`.
async fn register(ch: &AuthedChannel, family: &str, ports: &[u32]) {
    let mappings: Vec<String> = ports
        .iter()
        .map(|p| format!(r#"{{"containerPort":{p},"hostPort":0}}"#))
        .collect();
    TaskDefinitionServiceClient::new(ch.clone())
        .register_task_definition(pb::RegisterTaskDefinitionRequest {
            task_definition_json: format!(
                r#"{{"family":"{family}","networkMode":"bridge","containerDefinitions":[{{"name":"app","image":"busybox","memory":16,"portMappings":[{}]}}]}}"#,
                mappings.join(",")
            ),
        })
        .await
        .unwrap();
}

fn groups(s: &Server) -> TargetGroupServiceClient<AuthedChannel> {
    TargetGroupServiceClient::new(s.ops.clone())
}

fn create(name: &str, port: u32) -> pb::CreateTargetGroupRequest {
    pb::CreateTargetGroupRequest {
        name: name.into(),
        port,
        ..Default::default()
    }
}

/// The status of a refused call: its code and message.
fn refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> (Code, String) {
    let e = r.expect_err("the call should be refused");
    (e.code(), e.message().to_owned())
}

fn lb(group: &str, port: u32) -> pb::LoadBalancer {
    pb::LoadBalancer {
        target_group_arn: group.into(),
        container_name: "app".into(),
        container_port: port,
    }
}

#[tokio::test]
async fn target_groups_take_elb_defaults_and_limits_and_are_idempotent() {
    let s = Server::start().await;
    let mut tg = groups(&s);
    let g = tg
        .create_target_group(create("web", 80))
        .await
        .unwrap()
        .into_inner()
        .target_group
        .unwrap();
    assert_eq!(g.target_group_name, "web");
    assert!(
        g.target_group_arn
            .starts_with("arn:berth:elasticloadbalancing:local:000000000000:targetgroup/web/"),
        "{}",
        g.target_group_arn
    );
    assert_eq!((g.protocol.as_str(), g.port), ("HTTP", 80));
    assert_eq!(g.target_type, "instance");
    assert_eq!(g.deregistration_delay_seconds, 300);
    assert_eq!(g.slow_start_seconds, 0);
    let hc = g.health_check.clone().unwrap();
    assert_eq!(
        (
            hc.protocol.as_str(),
            hc.path.as_str(),
            hc.port.as_str(),
            hc.matcher.as_str()
        ),
        ("HTTP", "/", "traffic-port", "200")
    );
    assert_eq!(
        (
            hc.interval_seconds,
            hc.timeout_seconds,
            hc.healthy_threshold,
            hc.unhealthy_threshold
        ),
        (30, 5, 5, 2)
    );

    // The same settings again: the same group (ELB's idempotency).
    let again = tg
        .create_target_group(create("web", 80))
        .await
        .unwrap()
        .into_inner()
        .target_group
        .unwrap();
    assert_eq!(again.target_group_arn, g.target_group_arn);
    // Other settings under the same name: refused.
    let (code, msg) = refused(tg.create_target_group(create("web", 8080)).await);
    assert_eq!(code, Code::AlreadyExists, "{msg}");

    // Limits: each refusal names its field.
    let with_check = |f: fn(&mut pb::HealthCheck)| {
        let mut hc = pb::HealthCheck::default();
        f(&mut hc);
        pb::CreateTargetGroupRequest {
            health_check: Some(hc),
            ..create("lim", 80)
        }
    };
    let cases: Vec<(pb::CreateTargetGroupRequest, &str)> = vec![
        (create("-web", 80), "name:"),
        (create("internal-web", 80), "name:"),
        (create(&"a".repeat(33), 80), "name:"),
        (create("lim", 0), "port:"),
        (
            pb::CreateTargetGroupRequest {
                protocol: "UDP".into(),
                ..create("lim", 80)
            },
            "protocol:",
        ),
        (
            with_check(|h| h.interval_seconds = 4),
            "healthCheck.intervalSeconds:",
        ),
        (
            with_check(|h| {
                h.interval_seconds = 10;
                h.timeout_seconds = 10
            }),
            "healthCheck.timeoutSeconds:",
        ),
        (
            with_check(|h| h.path = "health".into()),
            "healthCheck.path:",
        ),
        (with_check(|h| h.port = "0".into()), "healthCheck.port:"),
        (
            with_check(|h| h.healthy_threshold = 11),
            "healthCheck.healthyThreshold:",
        ),
        (
            with_check(|h| h.matcher = "600".into()),
            "healthCheck.matcher:",
        ),
        (
            pb::CreateTargetGroupRequest {
                deregistration_delay_seconds: Some(3601),
                ..create("lim", 80)
            },
            "deregistrationDelaySeconds:",
        ),
        (
            pb::CreateTargetGroupRequest {
                slow_start_seconds: Some(10),
                ..create("lim", 80)
            },
            "slowStartSeconds:",
        ),
    ];
    for (req, field) in cases {
        let (code, msg) = refused(tg.create_target_group(req).await);
        assert_eq!(code, Code::InvalidArgument, "{field} {msg}");
        assert!(msg.starts_with(field), "{field}: {msg}");
    }

    // A TCP group: TCP checks, no path or matcher, ELB's 10 s timeout.
    let tcp = tg
        .create_target_group(pb::CreateTargetGroupRequest {
            protocol: "tcp".into(),
            ..create("db", 5432)
        })
        .await
        .unwrap()
        .into_inner()
        .target_group
        .unwrap();
    let hc = tcp.health_check.unwrap();
    assert_eq!(
        (
            tcp.protocol.as_str(),
            hc.protocol.as_str(),
            hc.path.as_str(),
            hc.matcher.as_str(),
            hc.timeout_seconds
        ),
        ("TCP", "TCP", "", "", 10)
    );
    s.stop().await;
}

#[tokio::test]
async fn target_groups_are_described_by_name_and_arn_and_modified() {
    let s = Server::start().await;
    let mut tg = groups(&s);
    let web = tg
        .create_target_group(create("web", 80))
        .await
        .unwrap()
        .into_inner()
        .target_group
        .unwrap();
    tg.create_target_group(create("api", 8080)).await.unwrap();
    let all = tg
        .describe_target_groups(pb::DescribeTargetGroupsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .target_groups;
    let mut names: Vec<_> = all.iter().map(|g| g.target_group_name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["api", "web"]);
    for key in ["web", web.target_group_arn.as_str()] {
        let got = tg
            .describe_target_groups(pb::DescribeTargetGroupsRequest {
                target_groups: vec![key.into()],
            })
            .await
            .unwrap()
            .into_inner()
            .target_groups;
        assert_eq!(got.len(), 1, "{key}");
        assert_eq!(got[0].target_group_arn, web.target_group_arn, "{key}");
    }
    let (code, msg) = refused(
        tg.describe_target_groups(pb::DescribeTargetGroupsRequest {
            target_groups: vec!["nope".into()],
        })
        .await,
    );
    assert_eq!(code, Code::NotFound, "{msg}");

    // Modify: what is named changes, the rest stays.
    let m = tg
        .modify_target_group(pb::ModifyTargetGroupRequest {
            target_group: web.target_group_arn.clone(),
            health_check: Some(pb::HealthCheck {
                path: "/ready".into(),
                interval_seconds: 10,
                ..Default::default()
            }),
            deregistration_delay_seconds: Some(30),
            slow_start_seconds: None,
        })
        .await
        .unwrap()
        .into_inner()
        .target_group
        .unwrap();
    let hc = m.health_check.unwrap();
    assert_eq!(
        (
            hc.path.as_str(),
            hc.interval_seconds,
            hc.timeout_seconds,
            hc.matcher.as_str()
        ),
        ("/ready", 10, 5, "200")
    );
    assert_eq!(m.deregistration_delay_seconds, 30);
    let (code, msg) = refused(
        tg.modify_target_group(pb::ModifyTargetGroupRequest {
            target_group: "web".into(),
            health_check: Some(pb::HealthCheck {
                timeout_seconds: 10,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await,
    );
    assert_eq!(code, Code::InvalidArgument, "{msg}");
    assert!(msg.starts_with("healthCheck.timeoutSeconds:"), "{msg}");
    // A group without targets has no health descriptions.
    let health = tg
        .describe_target_health(pb::DescribeTargetHealthRequest {
            target_group: "web".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(health.target_health_descriptions.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn services_name_groups_and_ports_and_keep_their_groups_from_deletion() {
    let s = Server::start().await;
    let mut tg = groups(&s);
    let mut svc = ServiceServiceClient::new(s.ops.clone());
    register(&s.ops, "web", &[80]).await;
    register(&s.ops, "other", &[9090]).await;
    let web = tg
        .create_target_group(create("web", 80))
        .await
        .unwrap()
        .into_inner()
        .target_group
        .unwrap();
    let service = |lbs: Vec<pb::LoadBalancer>| pb::CreateServiceRequest {
        service_name: "web".into(),
        task_definition: "web".into(),
        desired_count: Some(0),
        load_balancers: lbs,
        ..Default::default()
    };

    // A missing group, and a port the definition does not map.
    let (code, msg) = refused(svc.create_service(service(vec![lb("nope", 80)])).await);
    assert_eq!(code, Code::InvalidArgument, "{msg}");
    assert!(msg.starts_with("loadBalancers[0].targetGroupArn:"), "{msg}");
    let (code, msg) = refused(svc.create_service(service(vec![lb("web", 81)])).await);
    assert_eq!(code, Code::InvalidArgument, "{msg}");
    assert!(msg.starts_with("loadBalancers[0].containerPort:"), "{msg}");

    // By name; the service then shows the group's ARN, the group the service.
    let created = svc
        .create_service(service(vec![lb("web", 80)]))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    assert_eq!(
        created.load_balancers,
        [lb(&web.target_group_arn, 80)],
        "stored with the group's ARN"
    );
    let g = tg
        .describe_target_groups(pb::DescribeTargetGroupsRequest {
            target_groups: vec!["web".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .target_groups
        .remove(0);
    assert_eq!(g.service_arns, std::slice::from_ref(&created.service_arn));

    // A new task definition without the port is refused; one with it is not.
    let (code, msg) = refused(
        svc.update_service(pb::UpdateServiceRequest {
            service: "web".into(),
            task_definition: "other".into(),
            ..Default::default()
        })
        .await,
    );
    assert_eq!(code, Code::InvalidArgument, "{msg}");
    assert!(msg.starts_with("loadBalancers[0].containerPort:"), "{msg}");
    register(&s.ops, "web", &[80, 9090]).await;
    svc.update_service(pb::UpdateServiceRequest {
        service: "web".into(),
        task_definition: "web".into(),
        ..Default::default()
    })
    .await
    .unwrap();

    // In use: refused (ELB's ResourceInUse).
    let (code, msg) = refused(
        tg.delete_target_group(pb::DeleteTargetGroupRequest {
            target_group: "web".into(),
        })
        .await,
    );
    assert_eq!(code, Code::FailedPrecondition, "{msg}");
    assert!(msg.contains("web"), "{msg}");

    // Deleting the service frees the group once the service is INACTIVE.
    svc.delete_service(pb::DeleteServiceRequest {
        service: "web".into(),
        force: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut tg2 = tg.clone();
    eventually(
        Duration::from_secs(30),
        "the target group to be deletable once its service is INACTIVE",
        || {
            let mut tg = tg2.clone();
            async move {
                tg.delete_target_group(pb::DeleteTargetGroupRequest {
                    target_group: "web".into(),
                })
                .await
                .map(|_| ())
                .map_err(|e| format!("{:?}: {}", e.code(), e.message()))
            }
        },
    )
    .await;
    let (code, _) = refused(
        tg2.describe_target_groups(pb::DescribeTargetGroupsRequest {
            target_groups: vec!["web".into()],
        })
        .await,
    );
    assert_eq!(code, Code::NotFound);
    s.stop().await;
}

#[tokio::test]
async fn update_service_replaces_and_detaches_load_balancers() {
    let s = Server::start().await;
    let mut tg = groups(&s);
    let mut svc = ServiceServiceClient::new(s.ops.clone());
    register(&s.ops, "web", &[80, 9090]).await;
    tg.create_target_group(create("web", 80)).await.unwrap();
    let admin = tg
        .create_target_group(create("admin", 9090))
        .await
        .unwrap()
        .into_inner()
        .target_group
        .unwrap();
    svc.create_service(pb::CreateServiceRequest {
        service_name: "web".into(),
        task_definition: "web".into(),
        desired_count: Some(0),
        load_balancers: vec![lb("web", 80)],
        ..Default::default()
    })
    .await
    .unwrap();
    let update = |lbs: Vec<pb::LoadBalancer>| pb::UpdateServiceRequest {
        service: "web".into(),
        load_balancers: Some(pb::LoadBalancerUpdate {
            load_balancers: lbs,
        }),
        ..Default::default()
    };
    let (code, msg) = refused(svc.update_service(update(vec![lb("admin", 81)])).await);
    assert_eq!(code, Code::InvalidArgument, "{msg}");
    assert!(msg.starts_with("loadBalancers[0].containerPort:"), "{msg}");
    let replaced = svc
        .update_service(update(vec![lb("admin", 9090)]))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    assert_eq!(replaced.load_balancers, [lb(&admin.target_group_arn, 9090)]);
    let detached = svc
        .update_service(update(vec![]))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    assert!(detached.load_balancers.is_empty(), "{detached:?}");
    s.stop().await;
}
