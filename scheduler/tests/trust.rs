//! Trust over loopback: a real scheduler (`server::run`, real sled, its own
//! CA) and clients with and without certificates. Activations (expiry,
//! limit, revocation, attributes), what Connect accepts (no certificate,
//! another CA's, a revoked one), deregistration closing the session, and
//! the open GetClusterCa.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use berth_proto::v1::activation_service_client::ActivationServiceClient;
use berth_proto::v1::agent_service_client::AgentServiceClient;
use berth_proto::v1::cluster_ca_service_client::ClusterCaServiceClient;
use berth_proto::v1::container_instance_service_client::ContainerInstanceServiceClient;
use berth_proto::v1::{
    agent_message, scheduler_message, AgentMessage, Attribute, CreateActivationRequest,
    DeregisterContainerInstanceRequest, DescribeContainerInstancesRequest, GetClusterCaRequest,
    Hello, HostResources, ListActivationsRequest, RevokeActivationRequest,
};
use berth_tests::fake_agent::{AgentCert, AgentTarget, FakeAgent, FakeHost};
use tonic::Code;

mod common;
use common::InProcess as Server;

async fn start() -> Server {
    Server::start().await
}

fn hello(attributes: Vec<Attribute>) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Hello(Hello {
            resources: Some(HostResources {
                cpu_units: 1024,
                memory_mib: 1000,
                port_range_start: 20000,
                port_range_end: 32767,
                reserved_tcp_ports: vec![22],
                reserved_udp_ports: vec![],
            }),
            attributes,
            agent_version: "t".into(),
            hostname: "h".into(),
            address: String::new(),
            // An agent of before deltas: every desired state is the whole set.
            desired_deltas: false,
        })),
    }
}

/// Connect with `cert` (or none); the status code of the refusal, or None
/// when the scheduler welcomed it.
async fn connect_code(target: &AgentTarget, cert: Option<&AgentCert>) -> Option<Code> {
    connect_status(target, cert).await.map(|(code, _)| code)
}

/// [`connect_code`] with the refusal's message (with its source chain: a
/// TLS failure names itself there). A failure to build the channel counts
/// as `Unavailable`.
async fn connect_status(target: &AgentTarget, cert: Option<&AgentCert>) -> Option<(Code, String)> {
    let channel = match target.channel(cert).await {
        Ok(c) => c,
        // Refused in the TLS handshake.
        Err(e) => return Some((Code::Unavailable, e)),
    };
    let refusal = |s: tonic::Status| {
        let chain = std::error::Error::source(&s)
            .map(berth_proto::errors::error_chain)
            .unwrap_or_default();
        Some((s.code(), format!("{}: {chain}", s.message())))
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<AgentMessage>(4);
    tx.send(hello(vec![])).await.unwrap();
    match AgentServiceClient::new(channel)
        .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    {
        Ok(mut down) => match down.get_mut().message().await {
            Ok(Some(m)) if matches!(m.msg, Some(scheduler_message::Msg::Welcome(_))) => None,
            Ok(other) => panic!("{other:?}"),
            Err(s) => refusal(s),
        },
        Err(s) => refusal(s),
    }
}

#[tokio::test]
async fn the_ca_is_open_and_its_fingerprint_pins_it() {
    let s = start().await;
    let r = ClusterCaServiceClient::new(s.target.channel(None).await.unwrap())
        .get_cluster_ca(GetClusterCaRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.ca_pem, s.target.ca_pem);
    assert_eq!(
        r.fingerprint,
        berth_proto::trust::fingerprint_pem(&s.target.ca_pem).unwrap()
    );
    // Trust on first use, checked against the fingerprint.
    let fetched = berth_proto::trust::fetch_cluster_ca(&s.target.endpoint, &r.fingerprint)
        .await
        .unwrap();
    assert_eq!(fetched, s.target.ca_pem);
    let wrong = format!("sha256:{}", "00".repeat(32));
    let err = berth_proto::trust::fetch_cluster_ca(&s.target.endpoint, &wrong)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refusing to trust it"), "{err}");
}

#[tokio::test]
async fn connect_needs_a_certificate_of_this_cluster_that_is_not_revoked() {
    let s = start().await;
    let (act, code) = s.target.activation("default", 1, 0).await;
    let (reg, cert) = s.target.register(&act, &code).await.unwrap();

    assert_eq!(
        connect_code(&s.target, None).await,
        Some(Code::Unauthenticated)
    );
    assert_eq!(connect_code(&s.target, Some(&cert)).await, None);

    // A certificate of another cluster's CA: the TLS handshake refuses it
    // (with TLS 1.3 the client learns of it on its first request, which
    // fails as a transport error, Unavailable or Unknown, carrying the
    // server's fatal alert).
    let other = start().await;
    let (oact, ocode) = other.target.activation("default", 1, 0).await;
    let (_, foreign) = other.target.register(&oact, &ocode).await.unwrap();
    // The failure must be the server's TLS alert (rustls: the chain does not
    // verify against this cluster's CA), not any failure to connect.
    let refused = connect_status(&s.target, Some(&foreign)).await;
    assert!(
        matches!(
            &refused,
            Some((Code::Unavailable | Code::Unknown, m))
                if ["DecryptError", "BadCertificate", "UnknownCA", "CertificateUnknown"]
                    .iter()
                    .any(|alert| m.contains(&format!("received fatal alert: {alert}")))
        ),
        "{refused:?}"
    );

    // Deregistration revokes the certificate and closes the open session.
    let agent = FakeAgent::reconnect(
        &s.target,
        reg.container_instance_id.clone(),
        reg.container_instance_arn.clone(),
        cert.clone(),
        FakeHost::default(),
    )
    .await;
    agent.desired_where(|_| true).await;
    let mut ci = ContainerInstanceServiceClient::new(s.target.operator.clone());
    let r = ci
        .deregister_container_instance(DeregisterContainerInstanceRequest {
            cluster: String::new(),
            container_instance: reg.container_instance_arn.clone(),
            force: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.container_instance.unwrap().status, "INACTIVE");
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let d = ci
                .describe_container_instances(DescribeContainerInstancesRequest {
                    cluster: String::new(),
                    container_instances: vec![reg.container_instance_id.clone()],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            if !d.container_instances[0].agent_connected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "the session was closed");
    assert_eq!(
        connect_code(&s.target, Some(&cert)).await,
        Some(Code::PermissionDenied)
    );
}

#[tokio::test]
async fn activations_expire_run_out_and_can_be_revoked_with_clear_messages() {
    let s = start().await;
    let mut acts = ActivationServiceClient::new(s.target.operator.clone());

    // Registration limit 2: two hosts, then a clear refusal.
    let (act, code) = s.target.activation("default", 2, 0).await;
    s.target.register(&act, &code).await.unwrap();
    s.target.register(&act, &code).await.unwrap();
    let e = s.target.register(&act, &code).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains("registration limit") && e.message().contains("2 of 2"),
        "{}",
        e.message()
    );
    // ... and again: a second register after the limit fails too.
    let e = s.target.register(&act, &code).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);

    // A wrong code reveals nothing.
    let e = s.target.register(&act, "nope").await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("does not exist or its code is wrong"));

    // Expired.
    let (short, short_code) = s.target.activation("default", 5, 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let e = s.target.register(&short, &short_code).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("expired at"), "{}", e.message());

    // Revoked.
    let (rev, rev_code) = s.target.activation("default", 5, 0).await;
    acts.revoke_activation(RevokeActivationRequest {
        activation_id: rev.clone(),
    })
    .await
    .unwrap();
    let e = s.target.register(&rev, &rev_code).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("was revoked"), "{}", e.message());

    // The list shows each one's state; the code is never shown again.
    let list = acts
        .list_activations(ListActivationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .activations;
    let status = |id: &str| {
        list.iter()
            .find(|a| a.activation_id == id)
            .map(|a| (a.status.clone(), a.registrations_count))
            .unwrap()
    };
    assert_eq!(status(&act), ("EXHAUSTED".into(), 2));
    assert_eq!(status(&short).0, "EXPIRED");
    assert_eq!(status(&rev).0, "REVOKED");

    // Unknown cluster, too long, reserved attribute names.
    for req in [
        CreateActivationRequest {
            cluster: "ghost".into(),
            ..Default::default()
        },
        CreateActivationRequest {
            expires_in_seconds: 31 * 86400,
            ..Default::default()
        },
        CreateActivationRequest {
            attributes: vec![Attribute {
                name: "ecs.os-type".into(),
                value: "x".into(),
            }],
            ..Default::default()
        },
    ] {
        assert!(acts.create_activation(req).await.is_err());
    }
}

#[tokio::test]
async fn activation_attributes_are_the_instances_and_hello_cannot_override_them() {
    let s = start().await;
    let created = ActivationServiceClient::new(s.target.operator.clone())
        .create_activation(CreateActivationRequest {
            cluster: "default".into(),
            attributes: vec![Attribute {
                name: "rack".into(),
                value: "r1".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        created.ca_fingerprint,
        berth_proto::trust::fingerprint_pem(&s.target.ca_pem).unwrap()
    );
    let act = created.activation.unwrap().activation_id;
    let (reg, cert) = s
        .target
        .register(&act, &created.activation_code)
        .await
        .unwrap();
    let channel = s.target.channel(Some(&cert)).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<AgentMessage>(4);
    tx.send(hello(vec![
        Attribute {
            name: "rack".into(),
            value: "spoofed".into(),
        },
        Attribute {
            name: "ecs.os-type".into(),
            value: "linux".into(),
        },
    ]))
    .await
    .unwrap();
    let mut down = AgentServiceClient::new(channel)
        .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    down.message().await.unwrap();
    let d = ContainerInstanceServiceClient::new(s.target.operator.clone())
        .describe_container_instances(DescribeContainerInstancesRequest {
            cluster: String::new(),
            container_instances: vec![reg.container_instance_id],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let attrs: Vec<(String, String)> = d.container_instances[0]
        .attributes
        .iter()
        .map(|a| (a.name.clone(), a.value.clone()))
        .collect();
    assert_eq!(
        attrs,
        [
            ("ecs.os-type".to_owned(), "linux".to_owned()),
            ("rack".to_owned(), "r1".to_owned())
        ]
    );
    drop(tx);
}
