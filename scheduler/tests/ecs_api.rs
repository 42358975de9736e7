//! The ECS API's edge over real HTTPS: a real scheduler (`server::run_with`
//! on loopback, real sled) called by curl, which signs with its own SigV4
//! implementation (`--aws-sigv4`), so the verifier is checked against a
//! signer that is not ours. The aws CLI and boto3 flows on real containerd
//! are in `tests/tests/ecs_api.rs`; these are the edge's refusals, limits,
//! roles and audit, which need no agent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::process::{Command, Stdio};

use berth_proto::v1::audit_service_client::AuditServiceClient;
use berth_proto::v1::token_service_client::TokenServiceClient;
use berth_proto::v1::{CreateTokenRequest, ListAuditEventsRequest, RevokeTokenRequest};
use serde_json::{json, Value};

const TARGET: &str = "AmazonEC2ContainerServiceV20141113.";

mod common;
use common::InProcess as Server;

async fn start() -> Server {
    Server::start().await
}

/// AWS credentials of a token: (access key id, secret access key).
fn creds(token: &str) -> (String, String) {
    let mut parts = token.trim().splitn(3, '_').skip(1);
    (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
    )
}

struct Call<'a> {
    method: &'a str,
    target: Option<String>,
    creds: Option<(String, String)>,
    body: Vec<u8>,
}

impl<'a> Call<'a> {
    fn op(op: &str, body: Value) -> Self {
        Self {
            method: "POST",
            target: Some(format!("{TARGET}{op}")),
            creds: None,
            body: body.to_string().into_bytes(),
        }
    }

    fn signed(mut self, token: &str) -> Self {
        self.creds = Some(creds(token));
        self
    }

    /// The status, the `x-amzn-requestid` header and the JSON body.
    fn send(&self, s: &Server) -> (u16, String, Value) {
        let body_file = s.data_dir.join("body");
        std::fs::write(&body_file, &self.body).unwrap();
        let headers = s.data_dir.join("headers");
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "-X", self.method])
            .arg("--cacert")
            .arg(s.ca_path())
            .args(["-H", "Content-Type: application/x-amz-json-1.1"])
            .arg("-D")
            .arg(&headers)
            .args(["-w", "\n%{http_code}"]);
        if self.method == "POST" {
            cmd.arg("--data-binary")
                .arg(format!("@{}", body_file.display()));
        }
        if let Some(t) = &self.target {
            cmd.args(["-H", &format!("X-Amz-Target: {t}")]);
        }
        if let Some((id, secret)) = &self.creds {
            cmd.args(["--aws-sigv4", "aws:amz:us-east-1:ecs", "--user"])
                .arg(format!("{id}:{secret}"));
        }
        let out = cmd
            .arg(&s.ecs_url)
            .stdin(Stdio::null())
            .output()
            .expect("curl is needed (scripts/install-deps installs it)");
        assert!(
            out.status.success(),
            "curl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        let headers = std::fs::read_to_string(&headers)
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            headers.contains("content-type: application/x-amz-json-1.1"),
            "{headers}"
        );
        let request_id = headers
            .lines()
            .find_map(|l| l.strip_prefix("x-amzn-requestid: "))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let v = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
        (code.parse().unwrap(), request_id, v)
    }
}

fn error_type(v: &Value) -> &str {
    v["__type"].as_str().unwrap_or_default()
}

/// A new token of `role`; its secret.
async fn token(s: &Server, name: &str, role: &str) -> String {
    TokenServiceClient::new(s.ops.clone())
        .create_token(CreateTokenRequest {
            name: name.into(),
            role: role.into(),
            expires_in: None,
        })
        .await
        .unwrap()
        .into_inner()
        .secret
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)] // curl blocks a thread
async fn a_signed_call_is_answered_in_aws_json() {
    let s = start().await;
    let (code, id, v) = Call::op("ListClusters", json!({}))
        .signed(&s.admin)
        .send(&s);
    assert_eq!(code, 200, "{v}");
    assert_eq!(id.len(), 36, "a request id on every answer: {id:?}");
    assert_eq!(
        v,
        json!({"clusterArns": ["arn:berth:ecs:local:000000000000:cluster/default"]}),
        "no nextToken member after the last page"
    );
    // An empty body is `{}`, as the protocol requires servers to accept.
    let mut empty = Call::op("ListClusters", json!({})).signed(&s.admin);
    empty.body.clear();
    let (code, _, v) = empty.send(&s);
    assert_eq!(code, 200, "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)] // curl blocks a thread
async fn malformed_requests_get_4xx_with_aws_error_shapes() {
    let s = start().await;
    let admin = &s.admin;
    let cases: Vec<(&str, Call<'_>, u16, &str)> = vec![
        (
            "GET",
            Call {
                method: "GET",
                ..Call::op("ListClusters", json!({})).signed(admin)
            },
            400,
            "UnknownOperationException",
        ),
        (
            "no target",
            Call {
                target: None,
                ..Call::op("ListClusters", json!({})).signed(admin)
            },
            400,
            "UnknownOperationException",
        ),
        (
            "not an ECS operation",
            Call::op("MakeCoffee", json!({})).signed(admin),
            400,
            "UnknownOperationException",
        ),
        (
            "an ECS operation Berth does not serve",
            Call::op("CreateTaskSet", json!({})).signed(admin),
            400,
            "UnsupportedFeatureException",
        ),
        (
            "unsigned",
            Call::op("ListClusters", json!({})),
            403,
            "MissingAuthenticationToken",
        ),
        (
            "not JSON",
            Call {
                body: b"{\"clusters\": [".to_vec(),
                ..Call::op("DescribeClusters", json!({})).signed(admin)
            },
            400,
            "SerializationException",
        ),
        (
            "a member of the wrong type",
            Call::op("DescribeClusters", json!({"clusters": "default"})).signed(admin),
            400,
            "SerializationException",
        ),
        (
            "too deep",
            Call {
                body: format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100)).into_bytes(),
                ..Call::op("ListClusters", json!({})).signed(admin)
            },
            400,
            "SerializationException",
        ),
        (
            "too large",
            Call {
                body: format!("{{\"a\":\"{}\"}}", "x".repeat(1024 * 1024 + 1)).into_bytes(),
                ..Call::op("ListClusters", json!({})).signed(admin)
            },
            413,
            "SerializationException",
        ),
        (
            "maxResults out of range",
            Call::op("ListClusters", json!({"maxResults": 101})).signed(admin),
            400,
            "InvalidParameterException",
        ),
        (
            "a bad nextToken",
            Call::op("ListClusters", json!({"nextToken": "!!"})).signed(admin),
            400,
            "InvalidParameterException",
        ),
        (
            "too many services",
            Call::op(
                "DescribeServices",
                json!({"services": (0..11).map(|i| format!("s{i}")).collect::<Vec<_>>()}),
            )
            .signed(admin),
            400,
            "InvalidParameterException",
        ),
        (
            "an unknown cluster",
            Call::op("ListTasks", json!({"cluster": "nope"})).signed(admin),
            400,
            "ClusterNotFoundException",
        ),
    ];
    for (what, call, code, shape) in cases {
        let (got, _, v) = call.send(&s);
        assert_eq!((got, error_type(&v)), (code, shape), "{what}: {v}");
        assert!(
            !v["message"].as_str().unwrap_or_default().is_empty(),
            "{what}: a message says why: {v}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)] // curl blocks a thread
async fn credentials_are_checked_and_roles_and_audit_apply() {
    let s = start().await;
    let (id, secret) = creds(&s.admin);

    let wrong = Call {
        creds: Some((id.clone(), format!("{secret}x"))),
        ..Call::op("ListClusters", json!({}))
    };
    let (code, _, v) = wrong.send(&s);
    assert_eq!(
        (code, error_type(&v)),
        (403, "SignatureDoesNotMatch"),
        "{v}"
    );
    let unknown = Call {
        creds: Some(("0123456789ab".into(), secret.clone())),
        ..Call::op("ListClusters", json!({}))
    };
    let (code, _, v) = unknown.send(&s);
    assert_eq!((code, error_type(&v)), (403, "InvalidClientTokenId"), "{v}");

    // A read-only token reads and may not change anything; the refusal
    // and the admin's change are both in the audit log.
    let reader = token(&s, "reader", "read-only").await;
    let (code, _, v) = Call::op("DescribeClusters", json!({}))
        .signed(&reader)
        .send(&s);
    assert_eq!(code, 200, "{v}");
    let (code, _, v) = Call::op("CreateCluster", json!({"clusterName": "ro"}))
        .signed(&reader)
        .send(&s);
    assert_eq!(
        (code, error_type(&v)),
        (400, "AccessDeniedException"),
        "{v}"
    );
    let (code, _, v) = Call::op("CreateCluster", json!({"clusterName": "prod"}))
        .signed(&s.admin)
        .send(&s);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["cluster"]["clusterName"], "prod");
    let events = AuditServiceClient::new(s.ops.clone())
        .list_audit_events(ListAuditEventsRequest {
            method: "CreateCluster".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let seen: Vec<(String, String, String)> = events
        .into_iter()
        .map(|e| (e.token_name, e.resource, e.outcome))
        .collect();
    assert!(
        seen.contains(&(
            "reader".into(),
            String::new(),
            "AccessDeniedException".into()
        )),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("bootstrap".into(), "cluster/prod".into(), "OK".into())),
        "{seen:?}"
    );

    // A revoked token stops working at once.
    let reader_id = creds(&reader).0;
    TokenServiceClient::new(s.ops.clone())
        .revoke_token(RevokeTokenRequest { id: reader_id })
        .await
        .unwrap();
    let (code, _, v) = Call::op("ListClusters", json!({})).signed(&reader).send(&s);
    assert_eq!((code, error_type(&v)), (403, "InvalidClientTokenId"), "{v}");

    // An expired token too: it worked while it lived.
    let short = TokenServiceClient::new(s.ops.clone())
        .create_token(CreateTokenRequest {
            name: "short".into(),
            role: "read-only".into(),
            expires_in: Some(prost_types::Duration {
                seconds: 2,
                nanos: 0,
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let (code, _, v) = Call::op("ListClusters", json!({})).signed(&short).send(&s);
    assert_eq!(code, 200, "{v}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (code, _, v) = Call::op("ListClusters", json!({})).signed(&short).send(&s);
        if code == 403 {
            assert_eq!(error_type(&v), "InvalidClientTokenId", "{v}");
            assert!(
                v["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("expired"),
                "{v}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "an expired token still works: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)] // curl blocks a thread
async fn lists_page_with_next_token_and_clusters_in_use_are_kept() {
    let s = start().await;
    for name in ["a", "b", "c"] {
        let (code, _, v) = Call::op("CreateCluster", json!({"clusterName": name}))
            .signed(&s.admin)
            .send(&s);
        assert_eq!(code, 200, "{v}");
    }
    // Four clusters (with default), pages of three: two pages, all of them.
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut req = json!({"maxResults": 3});
        if let Some(t) = &token {
            req["nextToken"] = json!(t);
        }
        let (code, _, v) = Call::op("ListClusters", req).signed(&s.admin).send(&s);
        assert_eq!(code, 200, "{v}");
        pages += 1;
        all.extend(
            v["clusterArns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().rsplit('/').next().unwrap().to_owned()),
        );
        match v["nextToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
        assert!(pages < 5, "paging does not end: {v}");
    }
    all.sort();
    assert_eq!(all, ["a", "b", "c", "default"]);
    assert_eq!(pages, 2);

    // A cluster with an active service is not deleted (ECS's exception).
    let td = json!({"family": "web", "containerDefinitions": [
        {"name": "web", "image": "busybox", "memory": 32}]});
    let (code, _, v) = Call::op("RegisterTaskDefinition", td)
        .signed(&s.admin)
        .send(&s);
    assert_eq!(code, 200, "{v}");
    let (code, _, v) = Call::op(
        "CreateService",
        json!({"cluster": "a", "serviceName": "web", "taskDefinition": "web", "desiredCount": 0}),
    )
    .signed(&s.admin)
    .send(&s);
    assert_eq!(code, 200, "{v}");
    let (code, _, v) = Call::op("DeleteCluster", json!({"cluster": "a"}))
        .signed(&s.admin)
        .send(&s);
    assert_eq!(
        (code, error_type(&v)),
        (400, "ClusterContainsServicesException"),
        "{v}"
    );
    let (code, _, v) = Call::op("DeleteCluster", json!({"cluster": "b"}))
        .signed(&s.admin)
        .send(&s);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["cluster"]["status"], "INACTIVE");
    // A service update on a deleted (INACTIVE) service is ServiceNotActive.
    let (code, _, v) = Call::op(
        "DeleteService",
        json!({"cluster": "a", "service": "web", "force": true}),
    )
    .signed(&s.admin)
    .send(&s);
    assert_eq!(code, 200, "{v}");
    let (code, _, v) = Call::op(
        "UpdateService",
        json!({"cluster": "a", "service": "web", "desiredCount": 1}),
    )
    .signed(&s.admin)
    .send(&s);
    assert_eq!(
        (code, error_type(&v)),
        (400, "ServiceNotActiveException"),
        "{v}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)] // curl blocks a thread
async fn tags_attributes_and_task_definition_deletion_over_the_ecs_api() {
    let s = start().await;
    let call = |op: &str, body: Value| Call::op(op, body).signed(&s.admin).send(&s);
    let arn = "arn:berth:ecs:local:000000000000:cluster/default";
    let (code, _, v) = call(
        "TagResource",
        json!({"resourceArn": arn, "tags": [{"key": "team", "value": "core"}, {"key": "env"}]}),
    );
    assert_eq!((code, v.clone()), (200, json!({})), "{v}");
    let (code, _, v) = call(
        "UntagResource",
        json!({"resourceArn": arn, "tagKeys": ["env"]}),
    );
    assert_eq!(code, 200, "{v}");
    let (code, _, v) = call("ListTagsForResource", json!({"resourceArn": arn}));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v, json!({"tags": [{"key": "team", "value": "core"}]}));
    let (code, _, v) = call(
        "ListTagsForResource",
        json!({"resourceArn": "arn:berth:ecs:local:000000000000:cluster/nope"}),
    );
    assert_eq!(
        (code, error_type(&v)),
        (400, "ResourceNotFoundException"),
        "{v}"
    );
    let (code, _, v) = call(
        "TagResource",
        json!({"resourceArn": arn, "tags": [{"key": "aws:owner", "value": "x"}]}),
    );
    assert_eq!(
        (code, error_type(&v)),
        (400, "InvalidParameterException"),
        "{v}"
    );

    // CreateCluster's tags; DescribeClusters shows them with include TAGS only.
    let (code, _, v) = call(
        "CreateCluster",
        json!({"clusterName": "prod", "tags": [{"key": "env", "value": "prod"}]}),
    );
    assert_eq!(code, 200, "{v}");
    let (_, _, v) = call("DescribeClusters", json!({"clusters": ["prod"]}));
    assert_eq!(v["clusters"][0]["tags"], json!([]), "{v}");
    let (_, _, v) = call(
        "DescribeClusters",
        json!({"clusters": ["prod"], "include": ["TAGS"]}),
    );
    assert_eq!(
        v["clusters"][0]["tags"],
        json!([{"key": "env", "value": "prod"}]),
        "{v}"
    );

    // Attributes: an unknown target is ECS's TargetNotFoundException.
    let (code, _, v) = call(
        "PutAttributes",
        json!({"attributes": [{"name": "tier", "value": "gold", "targetId": "nope"}]}),
    );
    assert_eq!(
        (code, error_type(&v)),
        (400, "TargetNotFoundException"),
        "{v}"
    );
    let (code, _, v) = call(
        "ListAttributes",
        json!({"targetType": "container-instance"}),
    );
    assert_eq!((code, v.clone()), (200, json!({"attributes": []})), "{v}");

    // DeleteTaskDefinitions: ACTIVE is a failure, INACTIVE is deleted.
    let (code, _, v) = call(
        "RegisterTaskDefinition",
        json!({"family": "web", "containerDefinitions": [{"name": "c", "image": "busybox", "memory": 32}]}),
    );
    assert_eq!(code, 200, "{v}");
    let (code, _, v) = call(
        "DeleteTaskDefinitions",
        json!({"taskDefinitions": ["web:1"]}),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["taskDefinitions"], json!([]));
    assert!(
        v["failures"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("ACTIVE"),
        "{v}"
    );
    let (code, _, v) = call(
        "DeregisterTaskDefinition",
        json!({"taskDefinition": "web:1"}),
    );
    assert_eq!(code, 200, "{v}");
    let (code, _, v) = call(
        "DeleteTaskDefinitions",
        json!({"taskDefinitions": ["web:1"]}),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["taskDefinitions"][0]["status"], "DELETE_IN_PROGRESS",
        "{v}"
    );
    assert_eq!(v["failures"], json!([]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)] // curl blocks a thread
async fn services_attach_to_target_groups_over_the_ecs_api() {
    use berth_proto::v1::target_group_service_client::TargetGroupServiceClient;
    use berth_proto::v1::CreateTargetGroupRequest;

    let s = start().await;
    let admin = &s.admin;
    let group = TargetGroupServiceClient::new(s.ops.clone())
        .create_target_group(CreateTargetGroupRequest {
            name: "web".into(),
            port: 80,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .target_group
        .unwrap();
    let (code, _, v) = Call::op(
        "RegisterTaskDefinition",
        json!({"family": "web", "networkMode": "bridge", "containerDefinitions": [
            {"name": "app", "image": "busybox", "memory": 16,
             "portMappings": [{"containerPort": 80, "hostPort": 0}]}]}),
    )
    .signed(admin)
    .send(&s);
    assert_eq!(code, 200, "{v}");
    let create = |lbs: Value| {
        Call::op(
            "CreateService",
            json!({"serviceName": "web", "taskDefinition": "web", "desiredCount": 0,
                   "loadBalancers": lbs}),
        )
        .signed(admin)
    };

    // A classic load balancer is refused by name.
    let (code, _, v) = create(json!([{"loadBalancerName": "classic-web",
        "containerName": "app", "containerPort": 80}]))
    .send(&s);
    assert_eq!(
        (code, error_type(&v)),
        (400, "InvalidParameterException"),
        "{v}"
    );
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("loadBalancers[0].loadBalancerName") && msg.contains("classic-web"),
        "{msg}"
    );
    // A port the task definition does not map: the path of the member.
    let (code, _, v) = create(json!([{"targetGroupArn": group.target_group_arn,
        "containerName": "app", "containerPort": 81}]))
    .send(&s);
    assert_eq!(
        (code, error_type(&v)),
        (400, "InvalidParameterException"),
        "{v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("loadBalancers[0].containerPort"),
        "{v}"
    );
    // Cloud Map registries stay refused, saying where DNS names are set.
    let (code, _, v) = Call::op(
        "CreateService",
        json!({"serviceName": "web", "taskDefinition": "web", "desiredCount": 0,
               "serviceRegistries": [{"registryArn": "arn:aws:servicediscovery:x"}]}),
    )
    .signed(admin)
    .send(&s);
    assert_eq!(
        (code, error_type(&v)),
        (400, "UnsupportedFeatureException"),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("berthctl"), "{v}");

    // Target groups are honoured, and rendered as ECS renders them.
    let (code, _, v) = create(json!([{"targetGroupArn": group.target_group_arn,
        "containerName": "app", "containerPort": 80}]))
    .send(&s);
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["service"]["loadBalancers"],
        json!([{"targetGroupArn": group.target_group_arn, "containerName": "app",
                "containerPort": 80}])
    );
    assert_eq!(v["service"]["serviceRegistries"], json!([]));
    // UpdateService: an empty list detaches, as in ECS.
    let (code, _, v) = Call::op(
        "UpdateService",
        json!({"service": "web", "loadBalancers": []}),
    )
    .signed(admin)
    .send(&s);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["service"]["loadBalancers"], json!([]));
    s.stop().await;
}

/// `curl -X method` of the ECS listener's `path` with `headers`: the
/// status, the lower-cased response headers and the body.
fn http(s: &Server, method: &str, path: &str, headers: &[String]) -> (u16, String, String) {
    let head = s.data_dir.join("sd-headers");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-X", method])
        .arg("--cacert")
        .arg(s.ca_path())
        .arg("-D")
        .arg(&head)
        .args(["-w", "\n%{http_code}"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let url = format!("{}{}", s.ecs_url.trim_end_matches('/'), path);
    let out = cmd.arg(url).stdin(Stdio::null()).output().expect("curl");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let head = std::fs::read_to_string(&head).unwrap().to_ascii_lowercase();
    (code.parse().unwrap(), head, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)] // curl blocks a thread
async fn prometheus_targets_take_a_bearer_token_of_any_role() {
    let s = start().await;
    let path = "/prometheus/targets";
    let bearer = |t: &str| vec![format!("Authorization: Bearer {t}")];

    let (code, head, body) = http(&s, "GET", path, &[]);
    assert_eq!(code, 401, "{body}");
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    assert!(body.contains("no operator token"), "{body}");
    let (code, _, body) = http(&s, "GET", path, &bearer("berth_nope"));
    assert_eq!(code, 401, "{body}");
    let fake =
        "berth_000000000000_0000000000000000000000000000000000000000000000000000000000000000";
    let (code, _, body) = http(&s, "GET", path, &bearer(fake));
    assert_eq!((code, body.trim()), (401, "unknown operator token"));

    let reader = token(&s, "prom", "read-only").await;
    let (code, head, body) = http(&s, "GET", path, &bearer(&reader));
    assert_eq!((code, body.as_str()), (200, "[]"));
    assert!(head.contains("content-type: application/json"), "{head}");
    let (code, _, body) = http(
        &s,
        "GET",
        &format!("{path}?cluster=default"),
        &bearer(&reader),
    );
    assert_eq!((code, body.as_str()), (200, "[]"));
    let (code, _, body) = http(
        &s,
        "GET",
        &format!("{path}?cluster=nosuch"),
        &bearer(&reader),
    );
    assert_eq!(code, 404, "{body}");
    let (code, _, body) = http(&s, "GET", &format!("{path}?job=x"), &bearer(&reader));
    assert_eq!(code, 400, "{body}");
    let (code, head, _) = http(&s, "POST", path, &bearer(&reader));
    assert_eq!(code, 405);
    assert!(head.contains("allow: get"), "{head}");

    let id = reader.split('_').nth(1).unwrap().to_owned();
    TokenServiceClient::new(s.ops.clone())
        .revoke_token(RevokeTokenRequest { id })
        .await
        .unwrap();
    let (code, _, body) = http(&s, "GET", path, &bearer(&reader));
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("revoked"), "{body}");
}
