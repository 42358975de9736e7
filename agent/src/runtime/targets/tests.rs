//! Tests of the target prober: where it probes, the threshold state
//! machine and the probe loop (paused time), and the probe itself against
//! real listeners on 127.0.0.1.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::*;
use crate::desired::Matcher;

fn health(protocol: CheckProtocol, port: CheckPort) -> TargetHealthCheck {
    TargetHealthCheck {
        protocol,
        path: "/health".into(),
        port,
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        healthy_threshold: 3,
        unhealthy_threshold: 2,
        matcher: "200-299".parse::<Matcher>().expect("matcher"),
    }
}

fn check(port: CheckPort) -> TargetCheck {
    TargetCheck {
        target_group_arn: "arn:tg".into(),
        container_name: "web".into(),
        container_port: 8080,
        host_port: 20001,
        health: health(CheckProtocol::Http, port),
    }
}

fn mapping(container_port: u16, host_port: u16, protocol: Protocol) -> PortAssignment {
    PortAssignment {
        container_name: "web".into(),
        container_port,
        protocol,
        host_port,
    }
}

const TASK_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 5);

#[test]
fn probes_go_to_the_task_itself() {
    let ports = [
        mapping(8080, 20001, Protocol::Tcp),
        mapping(9090, 20002, Protocol::Tcp),
        mapping(5353, 20003, Protocol::Udp),
    ];
    let at = |mode, ip, port| probe_address(mode, ip, &ports, &check(port));
    let bridge = |port| at(NetworkMode::Bridge, Some(TASK_IP), port);

    // traffic-port: the container port on the task's bridge address.
    assert_eq!(
        bridge(CheckPort::TrafficPort),
        Ok(SocketAddrV4::new(TASK_IP, 8080))
    );
    // A fixed port that is one of the task's host ports: that mapping's
    // container port.
    assert_eq!(
        bridge(CheckPort::Port(20002)),
        Ok(SocketAddrV4::new(TASK_IP, 9090))
    );
    // A udp mapping is not what a TCP probe reaches.
    assert_eq!(
        bridge(CheckPort::Port(20003)),
        Ok(SocketAddrV4::new(TASK_IP, 20003))
    );
    // Any other port: that port on the task's address.
    assert_eq!(
        bridge(CheckPort::Port(8081)),
        Ok(SocketAddrV4::new(TASK_IP, 8081))
    );
    assert_eq!(
        at(NetworkMode::Awsvpc, Some(TASK_IP), CheckPort::TrafficPort),
        Ok(SocketAddrV4::new(TASK_IP, 8080))
    );
    // Host mode: the host's loopback, whatever address a record says.
    assert_eq!(
        at(NetworkMode::Host, Some(TASK_IP), CheckPort::TrafficPort),
        Ok(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080))
    );
    assert_eq!(
        at(NetworkMode::Host, None, CheckPort::Port(9000)),
        Ok(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9000))
    );
    // No address of its own: nothing is probed.
    assert_eq!(
        at(NetworkMode::Bridge, None, CheckPort::TrafficPort),
        Err(AddressError::NoAddress)
    );
    assert_eq!(
        at(NetworkMode::None, Some(TASK_IP), CheckPort::TrafficPort),
        Err(AddressError::NoNetwork)
    );
}

fn states(t: &mut Tracker, outcomes: &[ProbeOutcome]) -> Vec<Option<Verdict>> {
    outcomes
        .iter()
        .map(|o| t.record(o).then(|| t.verdict().cloned()).flatten())
        .collect()
}

fn healthy() -> Verdict {
    Verdict {
        state: TargetState::Healthy,
        reason: None,
        description: String::new(),
    }
}

fn unhealthy(reason: TargetReason, description: &str) -> Verdict {
    Verdict {
        state: TargetState::Unhealthy,
        reason: Some(reason),
        description: description.into(),
    }
}

#[test]
fn thresholds_follow_elb() {
    use ProbeOutcome::{Code, Failed, Success, Timeout};
    let h = health(CheckProtocol::Http, CheckPort::TrafficPort); // 3 up, 2 down
    let mut t = Tracker::new(&h);
    assert_eq!(t.verdict(), None);
    // Nothing before a threshold; a failure resets the successes.
    assert_eq!(
        states(&mut t, &[Success, Success, Code(503), Success, Success]),
        [None, None, None, None, None]
    );
    assert_eq!(t.verdict(), None);
    assert_eq!(states(&mut t, &[Success]), [Some(healthy())]);
    // Still healthy: no change to report.
    assert_eq!(
        states(&mut t, &[Success, Timeout, Success]),
        [None, None, None]
    );
    // Two consecutive failures: unhealthy, with the latest failure's reason.
    assert_eq!(
        states(&mut t, &[Timeout, Code(503)]),
        [
            None,
            Some(unhealthy(
                TargetReason::ResponseCodeMismatch,
                "Health checks failed with these codes: [503]"
            ))
        ]
    );
    // While unhealthy a different failure updates the reason; the same one
    // changes nothing.
    assert_eq!(
        states(&mut t, &[Code(503), Timeout, Timeout]),
        [
            None,
            Some(unhealthy(TargetReason::Timeout, "Request timed out")),
            None
        ]
    );
    assert_eq!(
        states(&mut t, &[Failed("connection refused".into())]),
        [Some(unhealthy(
            TargetReason::FailedHealthChecks,
            "Health checks failed: connection refused"
        ))]
    );
    // Back to healthy only after healthy_threshold successes in a row.
    assert_eq!(
        states(
            &mut t,
            &[Success, Success, Timeout, Success, Success, Success]
        ),
        [None, None, None, None, None, Some(healthy())]
    );
}

#[test]
fn an_unhealthy_threshold_can_come_first() {
    let mut h = health(CheckProtocol::Tcp, CheckPort::TrafficPort);
    h.unhealthy_threshold = 1;
    let mut t = Tracker::new(&h);
    assert_eq!(
        states(&mut t, &[ProbeOutcome::Timeout]),
        [Some(unhealthy(TargetReason::Timeout, "Request timed out"))]
    );
}

/// Runs `watch_target` over scripted outcomes (each taking `takes`),
/// recording (seconds since start, verdict) of every change.
async fn script(
    h: &TargetHealthCheck,
    outcomes: Vec<(ProbeOutcome, Duration)>,
    run_for: Duration,
) -> (Vec<(u64, Verdict)>, Vec<u64>) {
    let start = Instant::now();
    let queue = Arc::new(Mutex::new(VecDeque::from(outcomes)));
    let probed = Arc::new(Mutex::new(Vec::new()));
    let changes = Arc::new(Mutex::new(Vec::new()));
    let (q, p, c) = (queue.clone(), probed.clone(), changes.clone());
    let h = h.clone();
    let task = tokio::spawn(async move {
        watch_target(
            &h,
            || {
                p.lock().unwrap().push(start.elapsed().as_secs());
                let next = q.lock().unwrap().pop_front();
                async move {
                    match next {
                        Some((outcome, takes)) => {
                            tokio::time::sleep(takes).await;
                            outcome
                        }
                        None => std::future::pending().await,
                    }
                }
            },
            |v| {
                c.lock()
                    .unwrap()
                    .push((start.elapsed().as_secs(), v.clone()))
            },
        )
        .await;
    });
    tokio::time::sleep(run_for).await;
    task.abort();
    let changes = changes.lock().unwrap().clone();
    let probed = probed.lock().unwrap().clone();
    (changes, probed)
}

#[tokio::test(start_paused = true)]
async fn the_loop_probes_every_interval_and_bounds_each_probe() {
    let h = health(CheckProtocol::Http, CheckPort::TrafficPort); // 10 s, 5 s, 3 up, 2 down
    let quick = Duration::from_millis(10);
    let (changes, probed) = script(
        &h,
        vec![
            (ProbeOutcome::Success, quick),
            (ProbeOutcome::Success, quick),
            (ProbeOutcome::Success, quick),
            (ProbeOutcome::Code(503), quick),
            // Slower than the 5 s timeout: a Timeout, at 45 s.
            (ProbeOutcome::Success, Duration::from_secs(7)),
        ],
        Duration::from_secs(46),
    )
    .await;
    assert_eq!(probed, [0, 10, 20, 30, 40], "at once, then every interval");
    assert_eq!(
        changes,
        [
            (20, healthy()),
            (45, unhealthy(TargetReason::Timeout, "Request timed out"))
        ]
    );
}

/// An HTTP server on 127.0.0.1: each connection gets the next of
/// `statuses` (the last one for ever after); every request's head is kept.
async fn http_server(statuses: Vec<u16>) -> (SocketAddrV4, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let std::net::SocketAddr::V4(addr) = listener.local_addr().expect("addr") else {
        panic!("not IPv4");
    };
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        let mut statuses = VecDeque::from(statuses);
        while let Ok((mut s, _)) = listener.accept().await {
            let status = match statuses.len() {
                0 | 1 => statuses.front().copied().unwrap_or(200),
                _ => statuses.pop_front().unwrap_or(200),
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 512];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head).into_owned());
            let answer = format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 2\r\n\r\nok");
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    (addr, requests)
}

/// A server on 127.0.0.1 that answers every connection with `bytes` (after
/// reading a little) and closes it.
async fn raw_server(bytes: Vec<u8>) -> SocketAddrV4 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let std::net::SocketAddr::V4(addr) = listener.local_addr().expect("addr") else {
        panic!("not IPv4");
    };
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(&bytes).await;
        }
    });
    addr
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddrV4 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let std::net::SocketAddr::V4(addr) = listener.local_addr().expect("addr") else {
        panic!("not IPv4");
    };
    drop(listener);
    addr
}

#[tokio::test]
async fn http_probes_send_elbs_request_and_read_the_code() {
    let (addr, requests) = http_server(vec![200, 503]).await;
    let h = health(CheckProtocol::Http, CheckPort::TrafficPort);
    assert_eq!(probe(addr, &h).await, ProbeOutcome::Success);
    assert_eq!(probe(addr, &h).await, ProbeOutcome::Code(503));
    let requests = requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let head = &requests[0];
    assert!(head.starts_with("GET /health HTTP/1.1\r\n"), "{head}");
    assert!(head.contains(&format!("\r\nHost: {addr}\r\n")), "{head}");
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");

    // The matcher decides what counts.
    let mut only_503 = h.clone();
    only_503.matcher = "503".parse().expect("matcher");
    assert_eq!(probe(addr, &only_503).await, ProbeOutcome::Success);

    // A TCP check only needs the connection.
    let tcp = health(CheckProtocol::Tcp, CheckPort::TrafficPort);
    assert_eq!(probe(addr, &tcp).await, ProbeOutcome::Success);
}

async fn next_verdict(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Verdict>) -> Verdict {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a verdict within 10 s")
        .expect("the prober runs")
}

#[tokio::test]
async fn the_prober_turns_real_answers_into_verdicts() {
    let (addr, _) = http_server(vec![200, 503]).await;
    let mut h = health(CheckProtocol::Http, CheckPort::TrafficPort);
    h.interval = Duration::from_secs(1);
    h.timeout = Duration::from_secs(1);
    h.healthy_threshold = 1;
    h.unhealthy_threshold = 1;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let check = h.clone();
    let prober = tokio::spawn(async move {
        watch_target(
            &check,
            || probe(addr, &check),
            |v| {
                let _ = tx.send(v.clone());
            },
        )
        .await;
    });
    assert_eq!(next_verdict(&mut rx).await, healthy());
    assert_eq!(
        next_verdict(&mut rx).await,
        unhealthy(
            TargetReason::ResponseCodeMismatch,
            "Health checks failed with these codes: [503]"
        )
    );
    prober.abort();
}

#[tokio::test]
async fn a_closed_port_fails_the_check() {
    let addr = closed_port().await;
    for protocol in [CheckProtocol::Http, CheckProtocol::Tcp] {
        let h = health(protocol, CheckPort::TrafficPort);
        let outcome = probe(addr, &h).await;
        assert_eq!(outcome, ProbeOutcome::Failed("connection refused".into()));
        let mut t = Tracker::new(&h);
        t.record(&outcome);
        t.record(&outcome);
        assert_eq!(
            t.verdict(),
            Some(&unhealthy(
                TargetReason::FailedHealthChecks,
                "Health checks failed: connection refused"
            ))
        );
    }
}

#[tokio::test]
async fn answers_that_are_not_http_fail_and_reads_are_bounded() {
    let h = health(CheckProtocol::Http, CheckPort::TrafficPort);
    let failed = |o: ProbeOutcome, needle: &str| match o {
        ProbeOutcome::Failed(what) => assert!(what.contains(needle), "{what}"),
        other => panic!("expected a failure with {needle:?}, got {other:?}"),
    };
    let ssh = raw_server(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec()).await;
    failed(probe(ssh, &h).await, "not HTTP");
    let silent_close = raw_server(Vec::new()).await;
    failed(probe(silent_close, &h).await, "without an answer");
    // An endless first line: given up after MAX_STATUS_LINE bytes.
    let endless = raw_server(vec![b'x'; 64 * 1024]).await;
    failed(
        probe(endless, &h).await,
        "no status line in the first 1024 bytes",
    );
    let bad_code = raw_server(b"HTTP/1.1 2x0 OK\r\n\r\n".to_vec()).await;
    failed(probe(bad_code, &h).await, "not a number");
    // A status line without a reason phrase, answered before closing, counts.
    let terse = raw_server(b"HTTP/1.0 204".to_vec()).await;
    assert_eq!(probe(terse, &h).await, ProbeOutcome::Success);
}

#[tokio::test(start_paused = true)]
async fn a_target_that_never_answers_times_out() {
    // Accepts connections and holds them, answering nothing.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let std::net::SocketAddr::V4(addr) = listener.local_addr().expect("addr") else {
        panic!("not IPv4");
    };
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut h = health(CheckProtocol::Http, CheckPort::TrafficPort);
    h.unhealthy_threshold = 1;
    let start = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let check = h.clone();
    let prober = tokio::spawn(async move {
        watch_target(
            &check,
            || probe(addr, &check),
            |v| {
                let _ = tx.send(v.clone());
            },
        )
        .await;
    });
    // Bounded, so a prober that never gives up fails the test, not hangs it.
    let verdict = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("a verdict within 60 s")
        .expect("the prober runs");
    assert_eq!(
        verdict,
        unhealthy(TargetReason::Timeout, "Request timed out")
    );
    assert_eq!(start.elapsed().as_secs(), 5, "after the 5 s timeout");
    prober.abort();
}
