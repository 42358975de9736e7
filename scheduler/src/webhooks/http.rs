//! One webhook POST: HTTP/1.1 over TCP, or over TLS (rustls) for `https`
//! URLs, trusting the system's CAs plus `[webhooks] ca_file`. A fresh
//! connection per attempt (deliveries are one at a time per subscription),
//! no redirects followed, timeouts on connecting and on the whole request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Uri};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// Why a webhook URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("is not a URL: {0}")]
    Parse(String),
    #[error("must be an http:// or https:// URL")]
    Scheme,
    #[error("has no host")]
    Host,
    #[error("must not hold credentials (user:password@); the signature authenticates Berth")]
    Credentials,
}

/// A checked webhook URL.
#[derive(Debug, Clone)]
pub struct Target {
    uri: Uri,
    tls: bool,
    host: String,
    port: u16,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let uri: Uri = url.parse().map_err(|e| UrlError::Parse(format!("{e}")))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(UrlError::Scheme),
        };
        let auth = uri.authority().ok_or(UrlError::Host)?;
        if auth.as_str().contains('@') {
            return Err(UrlError::Credentials);
        }
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(UrlError::Host);
        }
        Ok(Self {
            host: host.to_owned(),
            port: auth.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            tls,
            uri,
        })
    }
}

/// Why an attempt failed (the text goes to the state and dead letters).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connecting to {addr}: {cause}")]
    Connect { addr: String, cause: String },
    #[error("connecting to {addr} timed out after {after:?}")]
    ConnectTimeout { addr: String, after: Duration },
    #[error("TLS with {host}: {cause}")]
    Tls { host: String, cause: String },
    #[error("HTTP: {0}")]
    Http(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("answered HTTP {0}")]
    Status(u16),
}

/// The client every delivery uses.
#[derive(Clone)]
pub struct Client {
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// A CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("webhooks.ca_file {path}: {cause}")]
pub struct CaError {
    pub path: String,
    pub cause: String,
}

impl Client {
    pub fn new(
        connect_timeout: Duration,
        request_timeout: Duration,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, CaError> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(cause = %e, "reading the system's CA certificates");
        }
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = ca_file {
            let err = |cause: String| CaError {
                path: path.display().to_string(),
                cause,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| err(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(e.to_string()))?;
            if certs.is_empty() {
                return Err(err("holds no certificate".into()));
            }
            for c in certs {
                roots.add(c).map_err(|e| err(e.to_string()))?;
            }
        }
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            connect_timeout,
            request_timeout,
        })
    }

    /// POSTs `body` with `headers` to `target`; Ok for a 2xx answer.
    pub async fn post(
        &self,
        target: &Target,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<u16, SendError> {
        match tokio::time::timeout(self.request_timeout, self.post_inner(target, headers, body))
            .await
        {
            Ok(r) => r,
            Err(_) => Err(SendError::Timeout(self.request_timeout)),
        }
    }

    async fn post_inner(
        &self,
        target: &Target,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<u16, SendError> {
        let addr = format!("{}:{}", target.host, target.port);
        let tcp = match tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((target.host.as_str(), target.port)),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(SendError::Connect {
                    addr,
                    cause: e.to_string(),
                })
            }
            Err(_) => {
                return Err(SendError::ConnectTimeout {
                    addr,
                    after: self.connect_timeout,
                })
            }
        };
        let _ = tcp.set_nodelay(true);
        let path = target
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let host_header = match target.uri.port_u16() {
            Some(p) => format!("{}:{p}", target.uri.host().unwrap_or_default()),
            None => target.uri.host().unwrap_or_default().to_owned(),
        };
        let mut req = Request::post(path)
            .header(http::header::HOST, host_header)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "berth-webhooks/1")
            .body(Full::new(body))
            .map_err(|e| SendError::Http(e.to_string()))?;
        req.headers_mut().extend(headers);
        if target.tls {
            let name = ServerName::try_from(target.host.clone()).map_err(|e| SendError::Tls {
                host: target.host.clone(),
                cause: e.to_string(),
            })?;
            let tls = tokio::time::timeout(self.connect_timeout, self.tls.connect(name, tcp))
                .await
                .map_err(|_| SendError::ConnectTimeout {
                    addr: addr.clone(),
                    after: self.connect_timeout,
                })?
                .map_err(|e| SendError::Tls {
                    host: target.host.clone(),
                    cause: e.to_string(),
                })?;
            send(TokioIo::new(tls), req).await
        } else {
            send(TokioIo::new(tcp), req).await
        }
    }
}

async fn send<T>(io: T, req: Request<Full<Bytes>>) -> Result<u16, SendError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| SendError::Http(e.to_string()))?;
    let conn = tokio::spawn(conn);
    let res = sender.send_request(req).await;
    conn.abort();
    let res = res.map_err(|e| SendError::Http(e.to_string()))?;
    let status = res.status().as_u16();
    if res.status().is_success() {
        Ok(status)
    } else {
        Err(SendError::Status(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_ca_file_is_named() {
        let t = Duration::from_secs(1);
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = Client::new(t, t, Some(&missing)).unwrap_err().to_string();
        assert!(e.starts_with("webhooks.ca_file "), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = Client::new(t, t, Some(&empty)).unwrap_err().to_string();
        assert!(e.contains("holds no certificate"), "{e}");
        let ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.pem()).unwrap();
        assert!(Client::new(t, t, Some(&good)).is_ok());
    }

    #[test]
    fn urls_are_checked() {
        let t = Target::parse("https://hooks.example.com/berth?x=1").unwrap();
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("hooks.example.com", 443));
        let t = Target::parse("http://127.0.0.1:8080/in").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("127.0.0.1", 8080, false));
        let t = Target::parse("http://[::1]:9/").unwrap();
        assert_eq!(t.host, "::1");
        assert!(matches!(Target::parse("ftp://x/"), Err(UrlError::Scheme)));
        assert!(matches!(Target::parse("/relative"), Err(UrlError::Scheme)));
        assert!(matches!(
            Target::parse("https://u:p@x.example/"),
            Err(UrlError::Credentials)
        ));
        assert!(matches!(
            Target::parse("not a url"),
            Err(UrlError::Parse(_))
        ));
    }
}
