//! The systemd service protocol both daemons speak (`sd_notify(3)`):
//! `READY=1` once a daemon really serves, `STOPPING=1` when it begins to shut
//! down, `STATUS=` lines for `systemctl status`, and `WATCHDOG=1` from a loop
//! that sends it only while a daemon-specific probe answers.
//!
//! Outside systemd (no `NOTIFY_SOCKET`, no `WATCHDOG_USEC`) every call here
//! does nothing, so the daemons behave as they do when started by hand.

use std::future::Future;
use std::time::Duration;

/// Tells systemd the daemon serves (`Type=notify` units become active).
pub fn notify_ready(status: &str) {
    send(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
}

/// Tells systemd the daemon is shutting down.
pub fn notify_stopping() {
    send(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping"),
    ]);
}

/// Updates the one-line status `systemctl status` shows.
pub fn notify_status(status: &str) {
    send(&[sd_notify::NotifyState::Status(status)]);
}

fn send(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(cause = %e, "cannot notify systemd");
    }
}

/// How often to send `WATCHDOG=1`: half of the unit's `WatchdogSec=`, as
/// `sd_watchdog_enabled(3)` advises; `None` when systemd watches nothing.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|usec| usec / 2)
}

/// Sends `WATCHDOG=1` every `period` for as long as `probe` answers `Ok`
/// within `period`. A probe that fails or hangs withholds the keep-alive, so
/// systemd restarts a daemon whose loop no longer turns; a runtime too busy or
/// blocked to run this task does the same. Runs until dropped.
pub async fn run_watchdog<F, Fut>(period: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    tracing::info!(period = ?period, "systemd watchdog enabled");
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Warn once per outage, not once per tick.
    let mut failing = false;
    loop {
        ticker.tick().await;
        match tokio::time::timeout(period, probe()).await {
            Ok(Ok(())) => {
                if failing {
                    tracing::info!("watchdog probe answers again");
                    failing = false;
                }
                send(&[sd_notify::NotifyState::Watchdog]);
            }
            Ok(Err(cause)) => {
                if !failing {
                    tracing::warn!(%cause, "watchdog probe failed; withholding the keep-alive");
                    failing = true;
                }
            }
            Err(_) => {
                if !failing {
                    tracing::warn!(timeout = ?period, "watchdog probe hung; withholding the keep-alive");
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    /// The keep-alive reaches the notify socket while the probe answers and
    /// stops while it fails.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn keep_alive_only_while_the_probe_answers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind");
        sock.set_nonblocking(true).expect("nonblocking");
        // Safe here: this test binary sets NOTIFY_SOCKET in this one test only.
        std::env::set_var("NOTIFY_SOCKET", &path);
        let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let h = healthy.clone();
        let dog = tokio::spawn(run_watchdog(Duration::from_secs(1), move || {
            let ok = h.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                if ok {
                    Ok(())
                } else {
                    Err("broken".to_owned())
                }
            }
        }));
        let count = |sock: &UnixDatagram| {
            let mut n = 0;
            let mut buf = [0u8; 256];
            while let Ok(len) = sock.recv(&mut buf) {
                assert_eq!(&buf[..len], b"WATCHDOG=1\n");
                n += 1;
            }
            n
        };
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let healthy_pings = count(&sock);
        assert!(healthy_pings >= 3, "{healthy_pings} keep-alives in 3.5 s");
        healthy.store(false, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(count(&sock), 0, "keep-alives while the probe fails");
        dog.abort();
        std::env::remove_var("NOTIFY_SOCKET");
    }
}
