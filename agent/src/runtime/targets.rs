//! Target-group health checks near the targets: the agent probes its own
//! tasks' targets and reports what it found, and the scheduler turns the
//! reports into ELB target states. Probes never leave the host or its
//! bridge, and their cost grows with the fleet, not with one scheduler.
//!
//! - **Where** ([`probe_address`], pure): always the task's own address. A
//!   bridge or awsvpc task is probed at its address on the Berth bridge (from
//!   the agent's CNI record), a host-mode task at `127.0.0.1`, both at the
//!   container port. A fixed health-check port N that is one of the task's
//!   host ports probes that mapping's container port; any other N is probed
//!   on the task's address. A task without a network of its own (`none`),
//!   or whose address is unknown, is not probed at all.
//! - **How** ([`probe`]): TCP succeeds when a connection opens. HTTP sends
//!   `GET <path>` (HTTP/1.1, `Host:`, `Connection: close`), reads at most
//!   [`MAX_STATUS_LINE`] bytes for the status line and nothing else, and
//!   succeeds when the matcher accepts the code. [`watch_target`] runs one
//!   probe at once and then one every interval, each bounded by the
//!   check's timeout.
//! - **Verdicts** ([`Tracker`], pure; ELB's semantics): nothing until a
//!   threshold is reached; `healthy` after `healthy_threshold` consecutive
//!   successes, `unhealthy` after `unhealthy_threshold` consecutive
//!   failures, with ELB's reason: `Target.Timeout`,
//!   `Target.ResponseCodeMismatch` (`Health checks failed with these
//!   codes: [503]`) or `Target.FailedHealthChecks` (what failed). While
//!   unhealthy, the latest failure's reason is kept.
//!
//! The runner ([`super::runner`]) starts one [`watch_target`] per check
//! while its task is RUNNING and desired RUNNING, puts each verdict into
//! the task's report (so a change goes up through the `Reporter`), and
//! stops them when the task stops or its checks change. Nothing is kept
//! across agent restarts: a re-adopted task is probed from scratch.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use berth_proto::taskdef::NetworkMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::MissedTickBehavior;

use super::report::{TargetReason, TargetState};
use crate::desired::{
    CheckPort, CheckProtocol, PortAssignment, Protocol, TargetCheck, TargetHealthCheck,
};

/// The most of an HTTP answer read to find its status line.
pub const MAX_STATUS_LINE: usize = 1024;
/// ELB's user agent: applications commonly recognise it (and keep its
/// requests out of their access logs).
const USER_AGENT: &str = "ELB-HealthChecker/2.0";

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    Success,
    /// An HTTP answer whose code the matcher does not accept.
    Code(u16),
    /// No connection or answer within the timeout.
    Timeout,
    /// Anything else (connection refused or reset, not HTTP), said in words.
    Failed(String),
}

/// Why a target cannot be probed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("the task has no network of its own (network mode none)")]
    NoNetwork,
    #[error("the task's address on the bridge is not known")]
    NoAddress,
}

/// Where `check` probes a task in `mode` whose bridge address is `task_ip`
/// and whose published ports are `ports`. Never anything but the task's
/// own address.
pub fn probe_address(
    mode: NetworkMode,
    task_ip: Option<Ipv4Addr>,
    ports: &[PortAssignment],
    check: &TargetCheck,
) -> Result<SocketAddrV4, AddressError> {
    let ip = match mode {
        NetworkMode::Host => Ipv4Addr::LOCALHOST,
        NetworkMode::Bridge | NetworkMode::Awsvpc => task_ip.ok_or(AddressError::NoAddress)?,
        NetworkMode::None => return Err(AddressError::NoNetwork),
    };
    let port = match check.health.port {
        CheckPort::TrafficPort => check.container_port,
        CheckPort::Port(n) => ports
            .iter()
            .find(|p| p.host_port == n && p.protocol == Protocol::Tcp)
            .map_or(n, |p| p.container_port),
    };
    Ok(SocketAddrV4::new(ip, port))
}

/// A target's verdict: a state once a threshold is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub state: TargetState,
    /// Unhealthy only.
    pub reason: Option<TargetReason>,
    pub description: String,
}

/// ELB's threshold state machine for one target. Pure.
#[derive(Debug, Clone)]
pub struct Tracker {
    healthy_threshold: u32,
    unhealthy_threshold: u32,
    successes: u32,
    failures: u32,
    verdict: Option<Verdict>,
}

impl Tracker {
    pub fn new(check: &TargetHealthCheck) -> Self {
        Self {
            healthy_threshold: check.healthy_threshold.max(1),
            unhealthy_threshold: check.unhealthy_threshold.max(1),
            successes: 0,
            failures: 0,
            verdict: None,
        }
    }

    /// The verdict so far; `None` until a threshold is reached.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.verdict.as_ref()
    }

    /// Records one probe's outcome; true when the verdict changed.
    pub fn record(&mut self, outcome: &ProbeOutcome) -> bool {
        let next = match failure(outcome) {
            None => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                if self.successes < self.healthy_threshold {
                    return false;
                }
                Verdict {
                    state: TargetState::Healthy,
                    reason: None,
                    description: String::new(),
                }
            }
            Some((reason, description)) => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                if self.failures < self.unhealthy_threshold {
                    return false;
                }
                Verdict {
                    state: TargetState::Unhealthy,
                    reason: Some(reason),
                    description,
                }
            }
        };
        if self.verdict.as_ref() == Some(&next) {
            return false;
        }
        self.verdict = Some(next);
        true
    }
}

/// ELB's reason and description of a failed probe; `None` for a success.
fn failure(outcome: &ProbeOutcome) -> Option<(TargetReason, String)> {
    match outcome {
        ProbeOutcome::Success => None,
        ProbeOutcome::Code(code) => Some((
            TargetReason::ResponseCodeMismatch,
            format!("Health checks failed with these codes: [{code}]"),
        )),
        ProbeOutcome::Timeout => Some((TargetReason::Timeout, "Request timed out".to_owned())),
        ProbeOutcome::Failed(what) => Some((
            TargetReason::FailedHealthChecks,
            format!("Health checks failed: {what}"),
        )),
    }
}

/// Probes one target for ever: once at once, then every interval (a probe
/// that outlasts the interval delays the next), each bounded by the
/// timeout; `on_change` gets every new verdict. Ends only when dropped.
pub async fn watch_target<P, F>(
    check: &TargetHealthCheck,
    mut probe: impl FnMut() -> P,
    mut on_change: F,
) where
    P: Future<Output = ProbeOutcome>,
    F: FnMut(&Verdict),
{
    let mut tracker = Tracker::new(check);
    let mut ticks = tokio::time::interval(check.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let outcome = tokio::time::timeout(check.timeout, probe())
            .await
            .unwrap_or(ProbeOutcome::Timeout);
        if tracker.record(&outcome) {
            if let Some(v) = tracker.verdict() {
                on_change(v);
            }
        }
    }
}

/// One probe of `to`, without a timeout of its own (the caller bounds it).
pub async fn probe(to: SocketAddrV4, check: &TargetHealthCheck) -> ProbeOutcome {
    let mut stream = match TcpStream::connect(to).await {
        Ok(s) => s,
        Err(e) => return ProbeOutcome::Failed(io_words("connect", &e)),
    };
    match check.protocol {
        CheckProtocol::Tcp => ProbeOutcome::Success,
        CheckProtocol::Http => match http_status(&mut stream, to, &check.path).await {
            Ok(code) if check.matcher.accepts(code) => ProbeOutcome::Success,
            Ok(code) => ProbeOutcome::Code(code),
            Err(what) => ProbeOutcome::Failed(what),
        },
    }
}

/// Sends the request and reads the answer's status code, reading no more
/// than [`MAX_STATUS_LINE`] bytes.
async fn http_status(stream: &mut TcpStream, to: SocketAddrV4, path: &str) -> Result<u16, String> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {to}\r\nUser-Agent: {USER_AGENT}\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| io_words("send the request", &e))?;
    let mut buf = vec![0u8; MAX_STATUS_LINE];
    let mut filled = 0;
    loop {
        if let Some(end) = buf[..filled].iter().position(|b| *b == b'\n') {
            return status_code(&buf[..end]);
        }
        if filled == buf.len() {
            return Err(format!(
                "no status line in the first {MAX_STATUS_LINE} bytes of the answer"
            ));
        }
        let n = stream
            .read(&mut buf[filled..])
            .await
            .map_err(|e| io_words("read the answer", &e))?;
        if n == 0 {
            return if filled == 0 {
                Err("the connection closed without an answer".to_owned())
            } else {
                status_code(&buf[..filled])
            };
        }
        filled += n;
    }
}

/// The code of a status line such as `HTTP/1.1 200 OK`.
fn status_code(line: &[u8]) -> Result<u16, String> {
    let line = String::from_utf8_lossy(line);
    let mut words = line.trim_end().splitn(3, ' ');
    let version = words.next().unwrap_or_default();
    let code = words.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err("the answer is not HTTP/1.x".to_owned());
    }
    code.parse::<u16>()
        .ok()
        .filter(|c| (100..=599).contains(c))
        .ok_or_else(|| format!("the answer's status code {code:?} is not a number"))
}

fn io_words(doing: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset by the target".to_owned(),
        io::ErrorKind::ConnectionAborted => "connection aborted".to_owned(),
        io::ErrorKind::UnexpectedEof => "the connection closed".to_owned(),
        _ => format!("cannot {doing}: {e}"),
    }
}

#[cfg(test)]
mod tests;
