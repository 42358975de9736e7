//! A webhook receiver on loopback for the webhook tests: a plain HTTP/1.1
//! server (one request per connection, handled in order) that records every
//! POST with its `Berth-Webhook-*` headers, checks the signature against
//! the subscription's secret (HMAC-SHA256 over `timestamp.body`, as
//! `docs/webhooks.md` tells receivers to), and answers 200 or the status the
//! test sets. [`Receiver::down`] closes the port (connections are refused)
//! and [`Receiver::up`] opens the same port again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One POST as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub cursor: u64,
    pub attempt: u32,
    pub subscription: String,
    pub timestamp: i64,
    /// The `v1=` signature matched the secret over `timestamp.body`.
    pub signature_ok: bool,
    pub body: serde_json::Value,
    /// What the receiver answered.
    pub status: u16,
}

#[derive(Default)]
struct State {
    /// The status to answer (200 unless set).
    status: u16,
    log: Vec<Delivery>,
}

/// See the module doc.
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    secret: Vec<u8>,
    state: Arc<Mutex<State>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    /// A receiver on a free loopback port, answering 200.
    pub async fn start(secret: &[u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut r = Self {
            addr: listener.local_addr().unwrap(),
            secret: secret.to_vec(),
            state: Arc::new(Mutex::new(State {
                status: 200,
                log: Vec::new(),
            })),
            task: None,
        };
        r.serve(listener);
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/berth", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let state = self.state.clone();
        let secret = self.secret.clone();
        self.task = Some(tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let _ = handle(conn, &state, &secret).await;
            }
        }));
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.state.lock().unwrap().status = status;
    }

    /// Closes the port: deliveries are refused until [`Receiver::up`].
    pub async fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    /// Listens on the same port again.
    pub async fn up(&mut self) {
        for _ in 0..100 {
            if let Ok(l) = TcpListener::bind(self.addr).await {
                self.serve(l);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cannot listen on {} again", self.addr);
    }

    /// Every request received, in order.
    pub fn all(&self) -> Vec<Delivery> {
        self.state.lock().unwrap().log.clone()
    }

    /// The requests answered 2xx, in order.
    pub fn accepted(&self) -> Vec<Delivery> {
        self.all()
            .into_iter()
            .filter(|d| (200..300).contains(&d.status))
            .collect()
    }

    /// The accepted deliveries with repeats (same event id) dropped, as a
    /// receiver that deduplicates by `Berth-Webhook-Id` keeps them.
    pub fn deduplicated(&self) -> Vec<Delivery> {
        let mut seen = std::collections::HashSet::new();
        self.accepted()
            .into_iter()
            .filter(|d| seen.insert(d.id.clone()))
            .collect()
    }

    /// Waits (bounded by `limit`) until `done` holds of the deduplicated
    /// deliveries; returns them.
    pub async fn until(
        &self,
        limit: Duration,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let end = tokio::time::Instant::now() + limit;
        loop {
            let d = self.deduplicated();
            if done(&d) {
                return d;
            }
            if tokio::time::Instant::now() > end {
                panic!(
                    "the receiver did not get what was expected within {limit:?}; it has {} deliveries: {:#?}",
                    d.len(),
                    d.iter().map(|d| (d.cursor, d.body["detail-type"].clone())).collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

fn verify(secret: &[u8], ts: &str, body: &[u8], sig: &str) -> bool {
    let Some(hex_sig) = sig.strip_prefix("v1=") else {
        return false;
    };
    let Ok(want) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return false;
    };
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&want).is_ok()
}

async fn handle(mut conn: TcpStream, state: &Mutex<State>, secret: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let header = |name: &str| -> String {
        head.lines()
            .skip(1)
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let len: usize = header("content-length").parse().unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[head_end..(head_end + len).min(buf.len())];
    let ts = header("berth-webhook-timestamp");
    let status = {
        let mut st = state.lock().unwrap();
        let status = st.status;
        st.log.push(Delivery {
            id: header("berth-webhook-id"),
            cursor: header("berth-webhook-cursor").parse().unwrap_or(0),
            attempt: header("berth-webhook-attempt").parse().unwrap_or(0),
            subscription: header("berth-webhook-subscription"),
            timestamp: ts.parse().unwrap_or(0),
            signature_ok: verify(secret, &ts, body, &header("berth-webhook-signature")),
            body: serde_json::from_slice(body).unwrap_or(serde_json::Value::Null),
            status,
        });
        status
    };
    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    conn.write_all(reply.as_bytes()).await?;
    conn.shutdown().await
}
