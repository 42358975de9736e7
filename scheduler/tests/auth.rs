//! The operator API's gate over loopback: every method of the role table
//! (which a unit test proves is every operator method of the `.proto`
//! files) called without a token, with a wrong one, with a read-only one and
//! with an operator one; tokens' lifecycle; and the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use berth_proto::v1::audit_service_client::AuditServiceClient;
use berth_proto::v1::cluster_service_client::ClusterServiceClient;
use berth_proto::v1::token_service_client::TokenServiceClient;
use berth_proto::v1::{
    CreateClusterRequest, CreateTokenRequest, ListAuditEventsRequest, ListClustersRequest,
    ListTokensRequest, RevokeTokenRequest,
};
use berth_scheduler::api::auth::{Access, METHODS};
use berth_tests::authed;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

mod common;
use common::InProcess as Server;

async fn start() -> Server {
    Server::start().await
}

/// Calls `path` with an empty request (every field at its default) and
/// `authorization` set to `header`; the status it ends with.
async fn call(ch: &Channel, path: &'static str, header: Option<&str>) -> Status {
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready().await.unwrap();
    let mut req = Request::new(());
    if let Some(h) = header {
        req.metadata_mut()
            .insert("authorization", h.parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    // A streaming method the gate let through may keep its stream open
    // (WatchTargets does, by design): still going after 2 s is a pass, as
    // a refusal comes at once.
    match tokio::time::timeout(
        std::time::Duration::from_secs(2),
        grpc.unary(req, http::uri::PathAndQuery::from_static(path), codec),
    )
    .await
    {
        Err(_) => Status::ok("still streaming"),
        Ok(Ok(_)) => Status::ok(""),
        Ok(Err(s)) => s,
    }
}

async fn create_token(s: &Server, name: &str, role: &str, expires: Option<i64>) -> String {
    TokenServiceClient::new(authed(s.channel.clone(), &s.admin))
        .create_token(CreateTokenRequest {
            name: name.into(),
            role: role.into(),
            expires_in: expires.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
        })
        .await
        .unwrap()
        .into_inner()
        .secret
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[tokio::test]
async fn every_operator_method_requires_a_token_of_the_right_role() {
    let s = start().await;
    let read_only = create_token(&s, "ro", "read-only", None).await;
    let operator = create_token(&s, "ops", "operator", None).await;
    let unknown = berth_tests::generate_token();
    // How often each branch below ran: every one must, or part of this test
    // checks nothing. (That the table covers every method of every service
    // is `api::auth`'s unit test.)
    let (mut open, mut refused_read_only, mut read_allowed, mut admin_methods) = (0, 0, 0, 0);
    for m in METHODS {
        let p = m.path;
        // (a) no token, (b) malformed, unknown or wrong-secret tokens.
        let wrong_secret = format!("{}x", &s.admin[..s.admin.len() - 1]);
        for header in [
            None,
            Some("Basic YWRtaW46YWRtaW4=".to_owned()),
            Some(bearer("berth_nope")),
            Some(bearer(&unknown)),
            Some(bearer(&wrong_secret)),
        ] {
            let st = call(&s.channel, p, header.as_deref()).await;
            if m.access == Access::Open {
                open += 1;
                assert_eq!(st.code(), Code::Ok, "{p} is open: {st:?}");
            } else {
                assert_eq!(
                    st.code(),
                    Code::Unauthenticated,
                    "{p} with {header:?}: {st:?}"
                );
            }
        }
        // (c) read-only: every mutation refused, naming the role needed;
        // every read let through.
        let st = call(&s.channel, p, Some(&bearer(&read_only))).await;
        match m.access {
            Access::Token(role) if m.mutates || role > berth_scheduler::auth::Role::ReadOnly => {
                refused_read_only += 1;
                assert_eq!(st.code(), Code::PermissionDenied, "{p}: {st:?}");
                assert!(
                    st.message().contains(&format!("needs the {role} role")),
                    "{st:?}"
                );
            }
            _ => {
                read_allowed += 1;
                assert!(
                    !matches!(st.code(), Code::PermissionDenied | Code::Unauthenticated),
                    "{p} read with a read-only token: {st:?}"
                )
            }
        }
        // (d) operator: denied exactly the admin methods (tokens, activations).
        let st = call(&s.channel, p, Some(&bearer(&operator))).await;
        let admin_only = m.access == Access::Token(berth_scheduler::auth::Role::Admin);
        admin_methods += usize::from(admin_only);
        assert_eq!(
            st.code() == Code::PermissionDenied,
            admin_only,
            "{p} with an operator token: {st:?}"
        );
        if p.starts_with("/berth.v1.TokenService/") || p.starts_with("/berth.v1.ActivationService/")
        {
            assert!(admin_only, "{p}");
        }
    }
    assert!(
        open > 0 && refused_read_only > 0 && read_allowed > 0 && admin_methods > 0,
        "every kind of method checked: {open} header checks on open methods, \
         {refused_read_only} refused to read-only, {read_allowed} read by it, \
         {admin_methods} admin-only"
    );
    // A path that is not in the table is denied, even to an admin.
    let st = call(
        &s.channel,
        "/berth.v1.ClusterService/Nope",
        Some(&bearer(&s.admin)),
    )
    .await;
    assert_eq!(st.code(), Code::PermissionDenied, "{st:?}");
    // The agent API is not behind the gate: Register answers without a token
    // (InvalidArgument for the empty hostname).
    let st = call(&s.channel, "/berth.v1.AgentService/Register", None).await;
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
}

#[tokio::test]
async fn revoked_and_expired_tokens_stop_working() {
    let s = start().await;
    let short = create_token(&s, "short", "read-only", Some(1)).await;
    let ro = create_token(&s, "ro", "read-only", None).await;
    let list = |t: String| {
        let ch = s.channel.clone();
        async move {
            ClusterServiceClient::new(authed(ch, &t))
                .list_clusters(ListClustersRequest::default())
                .await
        }
    };
    list(ro.clone()).await.unwrap();
    list(short.clone()).await.unwrap();
    let mut tokens = TokenServiceClient::new(authed(s.channel.clone(), &s.admin));
    let all = tokens
        .list_tokens(ListTokensRequest {})
        .await
        .unwrap()
        .into_inner()
        .tokens;
    let names: Vec<_> = all.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["bootstrap", "short", "ro"]);
    let ro_id = &all[2].id;
    assert!(ro.starts_with(&format!("berth_{ro_id}_")));
    tokens
        .revoke_token(RevokeTokenRequest { id: ro_id.clone() })
        .await
        .unwrap();
    let err = list(ro).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("revoked"), "{err:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let err = list(short).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("expired"), "{err:?}");
    // The last admin token cannot be revoked.
    let err = tokens
        .revoke_token(RevokeTokenRequest {
            id: all[0].id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    // A bad role or name is refused.
    let err = tokens
        .create_token(CreateTokenRequest {
            name: "x".into(),
            role: "root".into(),
            expires_in: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn mutations_are_audited_with_who_what_when_and_reads_are_not() {
    let s = start().await;
    let ro = create_token(&s, "ro", "read-only", None).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut admin = ClusterServiceClient::new(authed(s.channel.clone(), &s.admin));
    admin
        .create_cluster(CreateClusterRequest {
            cluster_name: "audited".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .list_clusters(ListClustersRequest::default())
        .await
        .unwrap();
    let err = admin
        .create_cluster(CreateClusterRequest {
            cluster_name: "bad name".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = ClusterServiceClient::new(authed(s.channel.clone(), &ro))
        .delete_cluster(berth_proto::v1::DeleteClusterRequest {
            cluster: "audited".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let events = AuditServiceClient::new(authed(s.channel.clone(), &ro))
        .list_audit_events(ListAuditEventsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .events;
    let lines: Vec<String> = events
        .iter()
        .map(|e| format!("{} {} {} {}", e.token_name, e.method, e.resource, e.outcome))
        .collect();
    assert_eq!(
        lines,
        [
            "bootstrap /berth.v1.TokenService/CreateToken token/ro role/read-only OK",
            "bootstrap /berth.v1.ClusterService/CreateCluster cluster/audited OK",
            "bootstrap /berth.v1.ClusterService/CreateCluster cluster/bad name InvalidArgument",
            "ro /berth.v1.ClusterService/DeleteCluster  PermissionDenied",
        ],
        "{events:#?}"
    );
    let e = &events[1];
    let t = e.time.as_ref().unwrap().seconds;
    assert!(t >= before - 1 && t <= before + 30, "{e:?}");
    assert!(!e.token_id.is_empty());
    // No token's secret is in the log.
    assert!(!format!("{events:?}").contains(&ro[ro.len() - 20..]));
    // Filters.
    let mut audit = AuditServiceClient::new(authed(s.channel.clone(), &s.admin));
    let by_ro = audit
        .list_audit_events(ListAuditEventsRequest {
            who: "ro".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(by_ro.len(), 1);
    let last = audit
        .list_audit_events(ListAuditEventsRequest {
            limit: 1,
            method: "CreateCluster".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].outcome, "InvalidArgument");
}
