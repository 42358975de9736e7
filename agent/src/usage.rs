//! Usage samples for the scheduler (`berthctl task stats`, `berthctl top`,
//! and the per-minute service averages auto scaling reads; `docs/stats.md`).
//!
//! Every `stats_interval` (10 s by default) the [`Sampler`] reads this
//! host's running tasks through the same [`HostCollector`] that `/metrics`
//! renders (the task and container cgroups, the task's veth) and publishes
//! the [`UsageSample`] into a `watch`; the session sends the newest one over
//! the `Connect` stream. Nothing queues while the scheduler is away: a
//! sample not sent before the next one is taken is simply replaced.
//!
//! The scheduler may ask for a faster interval while someone follows one
//! of this host's tasks (`StatsSampling`); the session writes its request
//! into [`UsagePorts::sampling`] and resets it when the stream ends.
//!
//! Cost: per sample, about ten small cgroup files per container and eight
//! veth counters per task, read on the blocking pool, and about 70 bytes
//! per container and 130 per task on the stream.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::{HostCollector, TaskSample};

/// The fastest interval a scheduler may ask for.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// One reading of every running task on this host.
#[derive(Debug, Clone)]
pub struct UsageSample {
    pub sampled_at: SystemTime,
    /// `MemTotal`, the limit Docker shows for an unlimited container.
    pub host_memory_bytes: u64,
    /// Every task in the metadata registry that has not reported STOPPED
    /// (its `labels` carry the ARN's task id, `arn` the ARN).
    pub tasks: Vec<TaskSample>,
}

/// The runtime's ends of the usage channels.
#[derive(Debug)]
pub struct UsagePorts {
    /// Where the sampler publishes.
    pub samples: watch::Sender<Option<Arc<UsageSample>>>,
    /// The interval the scheduler asks for; `None`: the configured one.
    pub sampling: watch::Receiver<Option<Duration>>,
}

/// The session's ends of the usage channels.
#[derive(Debug)]
pub struct UsageLink {
    pub samples: watch::Receiver<Option<Arc<UsageSample>>>,
    pub sampling: watch::Sender<Option<Duration>>,
}

/// Both ends of the usage channels.
pub fn channels() -> (UsagePorts, UsageLink) {
    let (samples_tx, samples_rx) = watch::channel(None);
    let (sampling_tx, sampling_rx) = watch::channel(None);
    (
        UsagePorts {
            samples: samples_tx,
            sampling: sampling_rx,
        },
        UsageLink {
            samples: samples_rx,
            sampling: sampling_tx,
        },
    )
}

/// The interval in force: the scheduler's request (never below
/// [`MIN_INTERVAL`]) or the configured one.
pub fn effective_interval(configured: Duration, requested: Option<Duration>) -> Duration {
    match requested {
        Some(r) if !r.is_zero() => r.max(MIN_INTERVAL),
        _ => configured,
    }
}

/// Reads this host's tasks every interval.
#[derive(Debug)]
pub struct Sampler {
    pub collector: Arc<HostCollector>,
    pub interval: Duration,
    pub ports: UsagePorts,
}

impl Sampler {
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut every = effective_interval(self.interval, *self.ports.sampling.borrow());
        // The first sample at once: a rate needs two.
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                Ok(()) = self.ports.sampling.changed() => {
                    let now = effective_interval(self.interval, *self.ports.sampling.borrow_and_update());
                    if now != every {
                        tracing::debug!(interval = ?now, "usage sampling interval changed");
                        every = now;
                        // A faster pace starts now (a follower is waiting).
                        next = next.min(tokio::time::Instant::now() + every);
                    }
                }
                () = tokio::time::sleep_until(next) => {
                    next = tokio::time::Instant::now() + every;
                    let collector = self.collector.clone();
                    match tokio::task::spawn_blocking(move || sample(&collector)).await {
                        Ok(s) => {
                            self.ports.samples.send_replace(Some(Arc::new(s)));
                        }
                        Err(e) => tracing::warn!(cause = %e, "reading the tasks' usage failed"),
                    }
                }
            }
        }
    }
}

/// Reads every running task now (blocking: cgroup and `/proc` files).
pub fn sample(collector: &HostCollector) -> UsageSample {
    let tasks = collector.read().tasks;
    UsageSample {
        sampled_at: SystemTime::now(),
        host_memory_bytes: crate::metadata::stats::host_cpu().memory_total,
        tasks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheduler_may_speed_sampling_up_but_not_below_the_floor() {
        let ten = Duration::from_secs(10);
        assert_eq!(effective_interval(ten, None), ten);
        assert_eq!(effective_interval(ten, Some(Duration::ZERO)), ten);
        assert_eq!(
            effective_interval(ten, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            effective_interval(ten, Some(Duration::from_millis(1))),
            MIN_INTERVAL
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_changes_the_pace() {
        let (ports, link) = channels();
        let collector = Arc::new(HostCollector {
            registry: crate::metadata::Registry::default(),
            reporter: crate::runtime::report::Reporter::default(),
            desired: watch::channel(None).1,
            // Never read: the registry holds no task.
            cgroups: crate::runtime::cgroups::CgroupManager::detect("berth")
                .expect("this host's cgroups"),
            sys_class_net: std::env::temp_dir(),
        });
        let sampler = Sampler {
            collector,
            interval: Duration::from_secs(10),
            ports,
        };
        let cancel = CancellationToken::new();
        let task = tokio::spawn(sampler.run(cancel.clone()));
        let mut samples = link.samples.clone();
        let start = tokio::time::Instant::now();
        samples.changed().await.unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the first at once"
        );
        samples.changed().await.unwrap();
        assert!(
            start.elapsed() >= Duration::from_secs(10),
            "then every 10 s"
        );
        link.sampling.send_replace(Some(Duration::from_secs(1)));
        let before = tokio::time::Instant::now();
        samples.changed().await.unwrap();
        assert!(before.elapsed() <= Duration::from_secs(1));
        assert!(samples.borrow().as_ref().unwrap().tasks.is_empty());
        cancel.cancel();
        task.await.unwrap();
    }
}
