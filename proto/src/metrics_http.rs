//! The `/metrics` endpoint both daemons serve: plain HTTP/1.1 (hyper 1),
//! `GET /metrics` (and `HEAD`) answered with what the daemon's scrape
//! function renders, 404 for any other path, 405 for other methods. It
//! knows nothing of Prometheus: the scheduler's and the agent's own
//! `metrics` modules render the text (OpenMetrics, through
//! `prometheus-client`) and hand it here.
//!
//! The caller binds the listener (`127.0.0.1:0` in tests); [`serve`] runs
//! until `shutdown` completes, then stops accepting and ends the
//! connections in flight.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The content type of OpenMetrics' text format, which Prometheus asks for
/// first and `prometheus-client` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders one scrape; `Err` is answered 500 with the message.
pub type Scrape =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

/// The answer to one request, before hyper: status, content type, body.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
}

/// What `method path` gets, given a scrape's result (asked only for
/// `GET /metrics` and `HEAD /metrics`). Pure.
pub async fn route<F>(method: &Method, path: &str, scrape: F) -> Reply
where
    F: Future<Output = Result<String, String>>,
{
    let text = |status, body: &str| Reply {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.to_owned(),
    };
    if path != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "not found: only /metrics is served\n",
        );
    }
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET /metrics\n");
    }
    match scrape.await {
        Ok(body) => Reply {
            status: StatusCode::OK,
            content_type: CONTENT_TYPE,
            body,
        },
        Err(cause) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{cause}\n")),
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, scrape: Scrape, shutdown: impl Future<Output = ()>) {
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, "metrics endpoint listening (GET /metrics)");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(cause = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let scrape = scrape.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let scrape = scrape.clone();
                async move {
                    let reply = route(req.method(), req.uri().path(), scrape()).await;
                    let body = if req.method() == Method::HEAD {
                        Bytes::new()
                    } else {
                        Bytes::from(reply.body)
                    };
                    let response = Response::builder()
                        .status(reply.status)
                        .header("content-type", reply.content_type)
                        .body(Full::new(body))
                        .unwrap_or_else(|_| {
                            let mut r = Response::new(Full::new(Bytes::new()));
                            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                            r
                        });
                    Ok::<_, Infallible>(response)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                res = conn => if let Err(e) = res {
                    tracing::debug!(%peer, cause = %e, "metrics connection ended");
                },
            }
        });
    }
    let _ = stop_tx.send(true);
    tracing::info!(?addr, "metrics endpoint stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ok() -> Result<String, String> {
        Ok("# EOF\n".to_owned())
    }

    #[tokio::test]
    async fn only_get_metrics_is_served() {
        let r = route(&Method::GET, "/metrics", ok()).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.content_type, CONTENT_TYPE);
        assert_eq!(r.body, "# EOF\n");
        assert_eq!(
            route(&Method::GET, "/", ok()).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&Method::GET, "/metrics/x", ok()).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&Method::POST, "/metrics", ok()).await.status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        let failed = route(&Method::GET, "/metrics", async { Err("store".to_owned()) }).await;
        assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn serves_over_loopback_and_stops() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scrape: Scrape = Arc::new(|| Box::pin(async { Ok("berth_up 1\n# EOF\n".to_owned()) }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, scrape, async {
            let _ = rx.await;
        }));
        for (path, want) in [("/metrics", "200"), ("/other", "404")] {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut text = String::new();
            tokio::time::timeout(
                std::time::Duration::from_secs(5),
                s.read_to_string(&mut text),
            )
            .await
            .unwrap()
            .unwrap();
            assert!(text.starts_with(&format!("HTTP/1.0 {want}")), "{text}");
            if want == "200" {
                assert!(
                    text.contains("openmetrics-text") && text.ends_with("berth_up 1\n# EOF\n"),
                    "{text}"
                );
            }
        }
        tx.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }
}
