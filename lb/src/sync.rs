//! `berth-lb haproxy`'s loop: one `select!` over a closed [`Event`] enum.
//! Each snapshot from the scheduler (`watch`) is turned into slot
//! assignments and Runtime API commands (`slots`, pure) and sent to
//! HAProxy; a group with more targets than slots grows its backend and
//! HAProxy reloads hitlessly; a reload or restart of HAProxy (its worker
//! pid changes) or the periodic tick re-sends the whole last snapshot; a
//! supervised HAProxy that dies is started again. While the scheduler is
//! away nothing changes: the backends keep what they had. Each snapshot is
//! also remembered in the state dir, so that a `berth-lb` started while the
//! scheduler is unreachable serves the last known targets (if recent enough)
//! instead of nothing.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{Config, Mode, MAX_SLOTS};
use crate::haproxy::{self, Haproxy};
use crate::render::{backend_name, render, Layout};
use crate::slots::{self, SlotWant};
use crate::targets::{Snapshot, TargetKey};
use crate::watch::WatchSettings;
use crate::{runtime, LbError};

/// How often the worker's pid is checked, to notice reloads and restarts
/// that `berth-lb` did not make.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Everything the loop reacts to.
enum Event {
    /// The scheduler sent a snapshot (or the watch ended).
    Snapshot(bool),
    /// Time to re-send the whole last snapshot.
    Reapply,
    /// Time to check HAProxy's worker pid.
    Probe,
    /// The supervised HAProxy exited.
    Exited(String),
    /// Time to start the supervised HAProxy again.
    Restart,
    Shutdown,
}

/// What HAProxy holds, as far as `berth-lb` knows.
struct State {
    config: Config,
    layout: Layout,
    /// Per target group: which target holds each slot.
    slots: BTreeMap<String, Vec<Option<TargetKey>>>,
    /// Per target group: what HAProxy was told last; missing means unknown
    /// (the next apply re-sends everything).
    told: BTreeMap<String, Vec<SlotWant>>,
    last: Option<Snapshot>,
}

/// Runs `berth-lb haproxy` until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), LbError> {
    berth_proto::trust::install_crypto_provider();
    let ca_pem =
        std::fs::read_to_string(&config.scheduler.ca_cert).map_err(|source| LbError::File {
            path: config.scheduler.ca_cert.clone(),
            source,
        })?;
    std::fs::create_dir_all(&config.haproxy.state_dir).map_err(|source| LbError::File {
        path: config.haproxy.state_dir.clone(),
        source,
    })?;
    let layout = Layout::initial(&config);
    haproxy::write_certificates(&config)?;
    let text = render(&config, &layout);
    let changed = haproxy::config_changed(&config.haproxy, &text);
    haproxy::write_config(&config.haproxy, &text).await?;
    let mut proxy = Haproxy::new(config.haproxy.clone());
    match config.haproxy.mode {
        Mode::Supervise => proxy.start().await?,
        Mode::External => {
            if changed {
                if let Err(e) = proxy.reload().await {
                    tracing::warn!(cause = %e, "cannot reload the external haproxy with the new config yet");
                }
            } else if let Err(e) = proxy.wait_worker(None).await {
                tracing::warn!(cause = %e, "the external haproxy does not answer yet");
            }
        }
    }
    berth_proto::systemd::notify_ready("haproxy up; watching the scheduler");

    let (tx, mut rx) = watch::channel(None);
    let mut watching = true;
    let settings = WatchSettings {
        endpoint: config.scheduler.endpoint.clone(),
        ca_pem,
        token: config.scheduler.token.clone(),
        groups: config.target_groups().into_iter().collect(),
        backoff: (Duration::from_millis(250), Duration::from_secs(15)),
    };
    let watcher = tokio::spawn(crate::watch::run(settings, tx));

    let remembered = remembered(&config);
    let mut state = State {
        layout,
        slots: BTreeMap::new(),
        told: BTreeMap::new(),
        last: remembered,
        config,
    };
    if state.last.is_some() {
        state.apply(&mut proxy).await;
    }
    let mut reapply = tokio::time::interval(state.config.haproxy.reapply);
    reapply.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut restarts: u32 = 0;
    let mut restart_at: Option<tokio::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            changed = rx.changed(), if watching => Event::Snapshot(changed.is_ok()),
            _ = reapply.tick() => Event::Reapply,
            _ = probe.tick() => Event::Probe,
            status = proxy.exited() => Event::Exited(status),
            () = sleep_until(restart_at) => Event::Restart,
            () = &mut shutdown => Event::Shutdown,
        };
        match event {
            Event::Snapshot(true) => {
                let snapshot = rx.borrow_and_update().clone();
                if let Some(s) = snapshot {
                    for group in state.layout.backends.keys() {
                        if !s.groups.contains_key(group) {
                            tracing::warn!(group = %group, "the scheduler sent no such target group; its backend gets no servers");
                        }
                    }
                    remember(&state.config, &s).await;
                    state.last = Some(s);
                    state.apply(&mut proxy).await;
                }
            }
            Event::Snapshot(false) => {
                // The watcher ends only when this loop drops its receiver,
                // so this is a bug; keep serving what HAProxy has.
                tracing::error!("the scheduler watch ended; keeping the current servers");
                watching = false;
            }
            Event::Reapply => {
                state.told.clear();
                state.apply(&mut proxy).await;
            }
            Event::Probe => state.probe(&mut proxy).await,
            Event::Exited(status) => {
                let delay = restart_delay(restarts);
                tracing::error!(%status, restarts, restart_in = ?delay, "haproxy exited; starting it again");
                restart_at = Some(tokio::time::Instant::now() + delay);
            }
            Event::Restart => {
                restart_at = None;
                match state.restart(&mut proxy).await {
                    Ok(()) => {
                        restarts = 0;
                        state.apply(&mut proxy).await;
                    }
                    Err(e) => {
                        restarts = restarts.saturating_add(1);
                        let delay = restart_delay(restarts);
                        tracing::error!(cause = %e, restarts, retry_in = ?delay, "cannot start haproxy");
                        restart_at = Some(tokio::time::Instant::now() + delay);
                    }
                }
            }
            Event::Shutdown => break,
        }
    }
    berth_proto::systemd::notify_stopping();
    watcher.abort();
    proxy.stop().await;
    Ok(())
}

/// The snapshot a former life remembered, if the config lets it be served
/// and it is recent enough.
fn remembered(config: &Config) -> Option<Snapshot> {
    let max_age = config.haproxy.remember_targets?;
    let path = config.haproxy.remembered_targets_file();
    let meta = std::fs::metadata(&path).ok()?;
    let age = meta.modified().ok()?.elapsed().unwrap_or_default();
    if age > max_age {
        tracing::info!(path = %path.display(), ?age, ?max_age, "the remembered targets are too old to serve");
        return None;
    }
    let text = std::fs::read(&path).ok()?;
    match serde_json::from_slice::<Snapshot>(&text) {
        Ok(s) => {
            tracing::info!(path = %path.display(), ?age, groups = s.groups.len(), "serving the remembered targets until the scheduler answers");
            Some(s)
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), cause = %e, "cannot read the remembered targets; ignoring them");
            None
        }
    }
}

/// Remembers `snapshot` in the state dir (atomically; a failure is logged:
/// it only costs the next restart its head start).
async fn remember(config: &Config, snapshot: &Snapshot) {
    if config.haproxy.remember_targets.is_none() {
        return;
    }
    let path = config.haproxy.remembered_targets_file();
    let bytes = match serde_json::to_vec(snapshot) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(cause = %e, "cannot encode the targets to remember them");
            return;
        }
    };
    let target = path.clone();
    let written = tokio::task::spawn_blocking(move || {
        berth_proto::fsutil::write_atomic_private(&target, &bytes, 0o600)
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(path = %path.display(), cause = %e, "cannot remember the targets")
        }
        Err(e) => tracing::warn!(cause = %e, "the task remembering the targets failed"),
    }
}

/// The wait before starting HAProxy again after `restarts` failed starts.
fn restart_delay(restarts: u32) -> Duration {
    Duration::from_millis(500)
        .saturating_mul(1 << restarts.min(6))
        .min(Duration::from_secs(30))
}

/// Resolves at `at`, never when there is none.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl State {
    /// Makes HAProxy equal to the last snapshot: grows backends that need
    /// it (reload), then sends what changed since HAProxy was told last.
    async fn apply(&mut self, proxy: &mut Haproxy) {
        let Some(snapshot) = self.last.clone() else {
            return;
        };
        let mut next_slots = BTreeMap::new();
        let mut layout = self.layout.clone();
        let empty = Vec::new();
        for (group, backend) in layout.backends.iter_mut() {
            let targets = snapshot.groups.get(group).map_or(&empty, |g| &g.targets);
            let prev = self
                .slots
                .get(group)
                .cloned()
                .unwrap_or_else(|| vec![None; backend.slots as usize]);
            let assigned = slots::assign(&prev, targets);
            let needed = u32::try_from(assigned.len()).unwrap_or(u32::MAX);
            if needed > backend.slots {
                let grown = needed.max(backend.slots.saturating_mul(2)).min(MAX_SLOTS);
                tracing::info!(group = %group, slots = backend.slots, grown, targets = targets.len(), "more targets than slots: growing the backend");
                backend.slots = grown;
            }
            if let Some(g) = snapshot.groups.get(group) {
                backend.slow_start_seconds = g.slow_start_seconds;
            }
            next_slots.insert(group.clone(), assigned);
        }
        if layout != self.layout {
            match self.relayout(proxy, &layout).await {
                Ok(()) => {
                    self.layout = layout;
                    self.told.clear();
                }
                Err(e) => {
                    tracing::error!(cause = %e, "cannot reload haproxy with the new backends; keeping the old ones")
                }
            }
        }
        for (group, mut assigned) in next_slots {
            let capacity = self
                .layout
                .backends
                .get(&group)
                .map_or(0, |b| b.slots as usize);
            if assigned.len() > capacity {
                let dropped = assigned.split_off(capacity).into_iter().flatten().count();
                tracing::error!(group = %group, dropped, capacity, "targets left without a slot");
            }
            let targets = snapshot.groups.get(&group).map_or(&empty, |g| &g.targets);
            let want = slots::wants(&assigned, targets);
            let commands = slots::commands(
                &backend_name(&group),
                self.told.get(&group).map(Vec::as_slice),
                &want,
            );
            self.slots.insert(group.clone(), assigned);
            if commands.is_empty() {
                continue;
            }
            match runtime::run_commands(proxy.runtime_socket(), &commands).await {
                Ok(()) => {
                    let ready = want
                        .iter()
                        .filter(|w| w.state == slots::AdminState::Ready)
                        .count();
                    tracing::info!(group = %group, ready, commands = commands.len(), "backend updated");
                    self.told.insert(group, want);
                }
                Err(e) => {
                    tracing::warn!(group = %group, cause = %e, "cannot update the backend; will resend it whole");
                    self.told.remove(&group);
                }
            }
        }
    }

    /// Writes the config for `layout` and reloads HAProxy with it.
    async fn relayout(&mut self, proxy: &mut Haproxy, layout: &Layout) -> Result<(), LbError> {
        for (group, b) in &layout.backends {
            if self.layout.backends.get(group) != Some(b) {
                tracing::info!(group = %group, slots = b.slots, slow_start_seconds = b.slow_start_seconds, "backend changes; reloading haproxy");
            }
        }
        let text = render(&self.config, layout);
        haproxy::write_config(&self.config.haproxy, &text).await?;
        proxy.reload().await
    }

    /// Notices a reload or restart someone else made (the worker changed,
    /// so its servers came from the config file and the state file).
    async fn probe(&mut self, proxy: &mut Haproxy) {
        match runtime::worker_pid(proxy.runtime_socket()).await {
            Ok(pid) if proxy.worker != Some(pid) => {
                tracing::info!(worker = pid, was = ?proxy.worker, "new haproxy worker; applying the whole snapshot");
                proxy.worker = Some(pid);
                self.told.clear();
                self.apply(proxy).await;
            }
            Ok(_) => {}
            Err(e) => {
                if proxy.worker.take().is_some() {
                    tracing::warn!(cause = %e, "haproxy does not answer");
                }
                self.told.clear();
            }
        }
    }

    /// Starts the supervised HAProxy again from the current layout.
    async fn restart(&mut self, proxy: &mut Haproxy) -> Result<(), LbError> {
        haproxy::write_certificates(&self.config)?;
        let text = render(&self.config, &self.layout);
        haproxy::write_config(&self.config.haproxy, &text).await?;
        proxy.start().await?;
        self.told.clear();
        Ok(())
    }
}
