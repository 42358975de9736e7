//! Service discovery by DNS, the analogue of ECS service discovery with
//! Cloud Map: an authoritative-only DNS server over UDP and TCP for the
//! namespaces of services' DNS names (`docs/discovery.md`).
//!
//! The records come from the traffic [`Watcher`](crate::traffic::Watcher)'s
//! latest view: a task rebuilds the [`Zone`] each time the view changes, and
//! queries read the latest zone, never the store. Answers are pure
//! ([`Zone::answer`], in `zone.rs`); this module only moves bytes:
//!
//! - UDP: one datagram in, one out; an answer larger than the client's EDNS
//!   payload (512 bytes without EDNS, at most 1232) is sent truncated (TC),
//!   so the client asks again over TCP.
//! - TCP: length-prefixed messages, several per connection, at most
//!   [`MAX_TCP_CONNECTIONS`] connections at once, each closed after
//!   [`TCP_IDLE`] without a query.
//!
//! Both sockets are bound by [`Sockets::bind`] before the scheduler serves
//! anything, so a taken port is a start-up error.

mod zone;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

pub use zone::{encode, Zone, MAX_UDP_PAYLOAD};

use crate::traffic::View;

/// TCP connections served at once; more wait in the kernel's backlog.
pub const MAX_TCP_CONNECTIONS: usize = 128;
/// A TCP connection without a complete query for this long is closed
/// (RFC 7766 suggests seconds).
pub const TCP_IDLE: Duration = Duration::from_secs(10);

/// Why the DNS server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot bind DNS ({proto}) on {addr}: {source}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The server's UDP socket and TCP listener, on the same address.
#[derive(Debug)]
pub struct Sockets {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

impl Sockets {
    /// Binds UDP and TCP on `addr`. With port 0 the TCP listener takes the
    /// port the UDP socket got; when that port is taken for TCP, another
    /// is tried (a few times).
    pub async fn bind(addr: SocketAddr) -> Result<Self, DnsError> {
        const ATTEMPTS: usize = 16;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let udp = UdpSocket::bind(addr)
                .await
                .map_err(|source| DnsError::Bind {
                    proto: "udp",
                    addr,
                    source,
                })?;
            let tcp_addr = udp.local_addr().unwrap_or(addr);
            match TcpListener::bind(tcp_addr).await {
                Ok(tcp) => return Ok(Self { udp, tcp }),
                Err(e)
                    if addr.port() == 0
                        && e.kind() == std::io::ErrorKind::AddrInUse
                        && attempt < ATTEMPTS =>
                {
                    tracing::debug!(
                        port = tcp_addr.port(),
                        "the UDP port is taken for TCP; trying another"
                    );
                }
                Err(source) => {
                    return Err(DnsError::Bind {
                        proto: "tcp",
                        addr: tcp_addr,
                        source,
                    })
                }
            }
        }
    }

    /// The address both are bound to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.udp.local_addr().ok()
    }
}

/// Serves DNS on `sockets` from the views `views` publishes, with records
/// of `ttl`, until `shutdown`.
pub async fn serve(
    sockets: Sockets,
    mut views: watch::Receiver<Arc<View>>,
    ttl: Duration,
    shutdown: CancellationToken,
) {
    let ttl = u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX);
    let first = Zone::build(&views.borrow_and_update().discovered, ttl);
    let (zone_tx, zones) = watch::channel(Arc::new(first));
    let addr = sockets.local_addr();
    tracing::info!(listen = ?addr, ttl, "DNS serving");
    let rebuild = {
        let shutdown = shutdown.clone();
        async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    r = views.changed() => if r.is_err() { return },
                }
                let zone = Zone::build(&views.borrow_and_update().discovered, ttl);
                tracing::debug!(namespaces = zone.namespaces().len(), "DNS zone rebuilt");
                zone_tx.send_replace(Arc::new(zone));
            }
        }
    };
    let udp = serve_udp(sockets.udp, zones.clone(), shutdown.clone());
    let tcp = serve_tcp(sockets.tcp, zones, shutdown.clone());
    tokio::join!(rebuild, udp, tcp);
    tracing::info!(listen = ?addr, "DNS stopped");
}

/// The answer to the bytes of one request, encoded in at most `limit`
/// bytes (`None`: nothing worth sending, e.g. not even a header).
fn respond(zone: &Zone, request: &[u8], udp: bool) -> Option<Vec<u8>> {
    let (resp, limit) = match Message::from_vec(request) {
        Ok(query) => {
            let resp = zone.answer(&query);
            let limit = if udp {
                usize::from(query.max_payload().min(MAX_UDP_PAYLOAD))
            } else {
                usize::from(u16::MAX)
            };
            (resp, limit)
        }
        // A request too short for its id gets nothing; one with an id but
        // no valid body gets FORMERR.
        Err(_) if request.len() < 12 => return None,
        Err(_) => (
            Zone::form_error(u16::from_be_bytes([request[0], request[1]])),
            512,
        ),
    };
    encode(&resp, limit)
}

async fn serve_udp(
    socket: UdpSocket,
    zones: watch::Receiver<Arc<Zone>>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors of earlier answers surface here on Linux.
                    tracing::debug!(cause = %e, "DNS: UDP receive failed");
                    continue;
                }
            },
        };
        let zone = zones.borrow().clone();
        let Some(answer) = buf.get(..n).and_then(|req| respond(&zone, req, true)) else {
            tracing::debug!(%peer, "DNS: dropped an unparsable UDP request");
            continue;
        };
        if let Err(e) = socket.send_to(&answer, peer).await {
            tracing::debug!(%peer, cause = %e, "DNS: UDP send failed");
        }
    }
}

async fn serve_tcp(
    listener: TcpListener,
    zones: watch::Receiver<Arc<Zone>>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => return,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(cause = %e, "DNS: TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let zones = zones.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                () = shutdown.cancelled() => {}
                r = tcp_connection(stream, zones) => if let Err(e) = r {
                    tracing::debug!(%peer, cause = %e, "DNS: TCP connection ended");
                },
            }
        });
    }
}

/// Answers the length-prefixed queries of one connection until the client
/// closes it or stays idle for [`TCP_IDLE`].
async fn tcp_connection(
    mut stream: TcpStream,
    zones: watch::Receiver<Arc<Zone>>,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => r?,
        };
        let mut req = vec![0u8; usize::from(u16::from_be_bytes(len))];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut req))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "query timed out"))??;
        let zone = zones.borrow().clone();
        let Some(answer) = respond(&zone, &req, false) else {
            return Ok(());
        };
        let Ok(n) = u16::try_from(answer.len()) else {
            return Ok(());
        };
        let mut out = Vec::with_capacity(answer.len() + 2);
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&answer);
        stream.write_all(&out).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::{Discovered, Endpoint};
    use hickory_proto::op::{MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};

    fn view(port: u16) -> Arc<View> {
        Arc::new(View {
            groups: vec![],
            discovered: vec![Discovered {
                cluster: "default".into(),
                service: "web".into(),
                namespace: "test.internal".into(),
                name: "web".into(),
                endpoints: vec![Endpoint {
                    task_id: "t1".into(),
                    address: [127, 0, 0, 1].into(),
                    port,
                }],
            }],
        })
    }

    fn query(name: &str) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(9)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .add_query(Query::query(
                Name::from_ascii(name).unwrap(),
                RecordType::SRV,
            ));
        m.to_vec().unwrap()
    }

    /// Both transports on loopback, and the zone following the view.
    #[tokio::test]
    async fn answers_over_udp_and_tcp_and_follows_the_view() {
        let sockets = Sockets::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = sockets.local_addr().unwrap();
        let (tx, rx) = watch::channel(view(1000));
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(sockets, rx, Duration::from_secs(5), stop.clone()));

        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ask_udp = |name: &'static str| {
            let client = &client;
            async move {
                client.send_to(&query(name), addr).await.unwrap();
                let mut buf = vec![0u8; 2048];
                let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
                    .await
                    .unwrap()
                    .unwrap();
                Message::from_vec(&buf[..n]).unwrap()
            }
        };
        let r = ask_udp("web.test.internal.").await;
        assert_eq!(r.id(), 9);
        assert_eq!(
            r.answers()[0].data().to_string(),
            "1 1 1000 t1.web.test.internal."
        );
        assert_eq!(
            ask_udp("example.com.").await.response_code(),
            ResponseCode::Refused
        );

        tx.send(view(2000)).unwrap();
        let mut seen = String::new();
        for _ in 0..100 {
            seen = ask_udp("web.test.internal.").await.answers()[0]
                .data()
                .to_string();
            if seen.contains("2000") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(seen.contains(" 2000 "), "{seen}");

        let mut tcp = TcpStream::connect(addr).await.unwrap();
        for _ in 0..2 {
            let q = query("web.test.internal.");
            tcp.write_all(&(q.len() as u16).to_be_bytes())
                .await
                .unwrap();
            tcp.write_all(&q).await.unwrap();
            let mut len = [0u8; 2];
            tcp.read_exact(&mut len).await.unwrap();
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            tcp.read_exact(&mut buf).await.unwrap();
            let r = Message::from_vec(&buf).unwrap();
            assert_eq!(r.answers().len(), 1);
        }

        // Garbage with an id: FORMERR; without one: silence.
        client
            .send_to(&[0, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0xff], addr)
            .await
            .unwrap();
        let mut buf = vec![0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let r = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!((r.id(), r.response_code()), (7, ResponseCode::FormErr));

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_taken_port_is_a_bind_error_naming_the_address() {
        let first = Sockets::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = first.local_addr().unwrap();
        let err = Sockets::bind(addr).await.unwrap_err().to_string();
        assert!(err.contains(&addr.to_string()), "{err}");
        assert!(err.starts_with("cannot bind DNS (udp)"), "{err}");
    }
}
