//! The ECS API's listener: HTTPS (HTTP/1.1, keep-alive) with the
//! scheduler's serving certificate, one request at a time per connection.
//!
//! Every answer carries `x-amzn-RequestId` and the AWS JSON content type.
//! The order of checks is AWS's: the request's shape (`POST /`, the
//! target), the body's size, the signature (which covers the body), then
//! the operation, the role, and the body's JSON.
//!
//! The same listener serves Prometheus's HTTP service discovery at
//! `GET /prometheus/targets` ([`crate::prometheus`]): an operator token of
//! any role as `Authorization: Bearer berth_…`, checked by the gRPC gate's
//! own `api::auth::authenticate` (401 without a valid one), and an optional
//! `?cluster=NAME`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::error::EcsError;
use super::ops::{self, Ctx, Outcome};
use super::{body, sigv4, CONTENT_TYPE, TARGET_PREFIX};
use crate::api::Shared;
use crate::auth::{Principal, Role};
use crate::records::now_millis;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// What the ECS API serves with: the services' shared state and its limits.
#[derive(Debug)]
pub struct EcsApi {
    pub shared: Shared,
    /// The signing region clients must use; None accepts any.
    pub region: Option<String>,
    pub limits: body::Limits,
}

impl EcsApi {
    pub fn new(shared: Shared, region: Option<String>) -> Self {
        Self {
            shared,
            region,
            limits: body::Limits::default(),
        }
    }
}

/// Serves the ECS API on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    api: Arc<EcsApi>,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let addr = listener.local_addr().ok();
    tracing::info!(listen = ?addr, "ECS API serving");
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(cause = %e, "ECS API: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let api = api.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, cause = %e, "ECS API: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "ECS API: TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(handle(&api, peer, req).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => if let Err(e) = res {
                    tracing::debug!(%peer, cause = %e, "ECS API connection ended");
                },
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
    tracing::info!(listen = ?addr, "ECS API stopped");
}

/// One request, answered.
async fn handle(api: &EcsApi, peer: SocketAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() == crate::prometheus::PATH {
        return prometheus_targets(api, peer, &req).await;
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let started = tokio::time::Instant::now();
    let (status, body) = match answer(api, req).await {
        Ok(v) => (StatusCode::OK, v.to_string().into_bytes()),
        Err(e) => {
            tracing::info!(%peer, target = %target, code = e.code, message = %e.message, "ECS API call refused or failed");
            (
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
                e.body(),
            )
        }
    };
    tracing::debug!(%peer, target = %target, status = status.as_u16(), elapsed = ?started.elapsed(), request_id = %request_id, "ECS API call");
    Response::builder()
        .status(status)
        .header("content-type", CONTENT_TYPE)
        .header("x-amzn-requestid", request_id)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// `GET /prometheus/targets[?cluster=NAME]`: Prometheus's `http_sd_config`
/// JSON, for a bearer operator token of any role.
async fn prometheus_targets(
    api: &EcsApi,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: Vec<u8>| {
        let mut b = Response::builder()
            .status(status)
            .header("content-type", content_type);
        if status == StatusCode::UNAUTHORIZED {
            b = b.header("www-authenticate", "Bearer realm=\"berth\"");
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            b = b.header("allow", "GET");
        }
        b.body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    };
    let text = |status: StatusCode, message: String| {
        reply(
            status,
            "text/plain; charset=utf-8",
            format!("{message}\n").into_bytes(),
        )
    };
    if req.method() != hyper::Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} takes GET", crate::prometheus::PATH),
        );
    }
    let principal = match crate::api::auth::authenticate(&api.shared.db, req.headers()) {
        Ok(p) => p,
        Err(status) => {
            tracing::info!(%peer, path = crate::prometheus::PATH, cause = %status.message(), "Prometheus SD request refused");
            let code = match status.code() {
                tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            return text(code, status.message().to_owned());
        }
    };
    let mut cluster = None;
    for (k, v) in req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
    {
        match k {
            "cluster" => cluster = Some(crate::api::cluster_arg(v)),
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("unknown query parameter {k:?} (only cluster=NAME)"),
                )
            }
        }
    }
    let db = api.shared.db.clone();
    let read = tokio::task::spawn_blocking(move || {
        if let Some(c) = &cluster {
            if db.cluster(c)?.is_none() {
                return Ok(Err(format!("cluster {c:?} not found")));
            }
        }
        crate::prometheus::read(&db, cluster.as_deref()).map(Ok)
    })
    .await;
    match read {
        Ok(Ok(Ok(groups))) => {
            tracing::debug!(%peer, token = %principal.token_id, targets = groups.len(), "Prometheus SD answered");
            let body = serde_json::to_vec(&groups).unwrap_or_else(|_| b"[]".to_vec());
            reply(StatusCode::OK, "application/json", body)
        }
        Ok(Ok(Err(not_found))) => text(StatusCode::NOT_FOUND, not_found),
        Ok(Err(e)) => {
            tracing::error!(cause = %e, "Prometheus SD: reading the store failed");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("reading the store: {e}"),
            )
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn answer(api: &EcsApi, req: Request<Incoming>) -> Result<serde_json::Value, EcsError> {
    if req.method() != hyper::Method::POST || req.uri().path() != "/" {
        return Err(EcsError::new(
            "UnknownOperationException",
            400,
            format!(
                "the ECS API takes POST / (AWS JSON 1.1), not {} {}",
                req.method(),
                req.uri().path()
            ),
        ));
    }
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Some(operation) = target.strip_prefix(TARGET_PREFIX) else {
        return Err(EcsError::new(
            "UnknownOperationException",
            400,
            format!("X-Amz-Target {target:?} is not {TARGET_PREFIX}<Operation>"),
        ));
    };
    let operation = operation.to_owned();
    let (parts, incoming) = req.into_parts();
    let bytes = match Limited::new(incoming, api.limits.max_bytes).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return Err(if e.is::<http_body_util::LengthLimitError>() {
                EcsError::new(
                    "SerializationException",
                    413,
                    format!(
                        "the request body is larger than {} bytes",
                        api.limits.max_bytes
                    ),
                )
            } else {
                EcsError::client(format!("reading the request body: {e}"))
            })
        }
    };
    let principal = authenticate(api, &parts, &bytes)?;
    let op = ops::operation(&operation)?;
    let rule = crate::api::auth::rule(op.grpc)
        .ok_or_else(|| EcsError::server(format!("{} is not classified; it is denied", op.grpc)))?;
    let mut ctx = Ctx::new(api, &principal, op);
    if let crate::api::auth::Access::Token(needed) = rule.access {
        if principal.role < needed {
            let e = EcsError::new(
                "AccessDeniedException",
                400,
                format!(
                    "{operation} needs the {needed} role; token {} ({}) has the {} role",
                    principal.token_id, principal.token_name, principal.role
                ),
            );
            if rule.mutates {
                ctx.audit(Outcome::Err(&e)).await;
            }
            return Err(e);
        }
    }
    let input = body::parse(&bytes, &api.limits)
        .map_err(|e| EcsError::new(e.aws_code(), e.http_status(), e.to_string()))?;
    let result = ops::call(&mut ctx, input).await;
    if rule.mutates {
        ctx.audit(match &result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Err(e),
        })
        .await;
    }
    result
}

/// The operator token that signed the request.
fn authenticate(
    api: &EcsApi,
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<Principal, EcsError> {
    let request = sigv4::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        headers: &parts.headers,
        body,
    };
    // Berth issues no session credentials: a request that carries a
    // session token was meant for another issuer.
    if parts.headers.contains_key("x-amz-security-token") {
        return Err(EcsError::new(
            "UnrecognizedClientException",
            403,
            "The security token included in the request is invalid: Berth issues no session \
             credentials; sign with an operator token's id and secret",
        ));
    }
    let policy = sigv4::Policy::ecs(api.region.clone());
    let mut found: Option<(String, String, Role)> = None;
    let mut refused: Option<EcsError> = None;
    let verified = sigv4::verify(&request, SystemTime::now(), &policy, |key_id| {
        let rec = match api.shared.db.token(key_id) {
            Ok(Some(rec)) => rec,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(cause = %e, "reading tokens");
                refused = Some(EcsError::new(
                    "ServiceUnavailableException",
                    503,
                    format!("cannot check the credentials: {e}"),
                ));
                return None;
            }
        };
        if !rec.is_usable(now_millis()) {
            refused = Some(EcsError::new(
                "InvalidClientTokenId",
                403,
                format!(
                    "The security token included in the request is invalid: operator token {} ({}) is {}",
                    rec.id,
                    rec.name,
                    if rec.revoked_at.is_some() { "revoked" } else { "expired" }
                ),
            ));
            return None;
        }
        let Some(secret) = api.shared.secrets.token_secret(&rec) else {
            refused = Some(EcsError::new(
                "InvalidClientTokenId",
                403,
                format!(
                    "operator token {} ({}) was created before the ECS API and has no SigV4 secret; \
                     create a new token with `berthctl token create`",
                    rec.id, rec.name
                ),
            ));
            return None;
        };
        found = Some((rec.id, rec.name, rec.role));
        Some(sigv4::SecretKey::new(secret.as_bytes().to_vec()))
    });
    match verified {
        Ok(_) => {}
        Err(e) => {
            if let Some(r) = refused {
                return Err(r);
            }
            return Err(EcsError::new(e.aws_code(), e.http_status(), e.to_string()));
        }
    }
    let (token_id, token_name, role) =
        found.ok_or_else(|| EcsError::server("the signature verified without a token"))?;
    Ok(Principal {
        token_id,
        token_name,
        role,
    })
}
