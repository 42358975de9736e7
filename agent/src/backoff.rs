//! Retry pacing: exponential backoff with full jitter, and a rate limit for
//! log lines written inside retry loops.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

/// Exponential backoff with full jitter: the n-th delay is drawn uniformly
/// from `[0, min(cap, base × 2ⁿ)]`, so that a fleet of agents that lost the
/// scheduler at once does not come back in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// The agent's reconnect policy: 0.5 s doubling up to 30 s.
    pub const RECONNECT: Backoff =
        Backoff::new(Duration::from_millis(500), Duration::from_secs(30));

    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The upper bound of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next delay, drawn with `rng`; each call raises the ceiling.
    pub fn next_delay<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=nanos))
    }

    /// Starts over from the base delay (after a connection that held).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Lets a log line through at most once per period and counts the ones it
/// held back, so a retry loop reports a persistent failure without flooding
/// the journal.
#[derive(Debug, Clone)]
pub struct LogLimiter {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    pub const fn new(period: Duration) -> Self {
        Self {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(held back since the last line)` if a line may be written now.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < self.period => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Lets the next line through at once (after a recovery).
    pub fn reset(&mut self) {
        self.last = None;
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let mut b = Backoff::RECONNECT;
        let mut rng = StdRng::seed_from_u64(7);
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(b.ceiling().as_millis());
            b.next_delay(&mut rng);
        }
        assert_eq!(
            ceilings,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
        );
        for _ in 0..100 {
            b.next_delay(&mut rng);
        }
        assert_eq!(
            b.ceiling(),
            Duration::from_secs(30),
            "no overflow after many attempts"
        );
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(500));
    }

    #[test]
    fn delays_stay_within_full_jitter_bounds_and_vary() {
        let mut rng = StdRng::seed_from_u64(42);
        for attempt in 0..12u32 {
            let mut samples = Vec::new();
            for _ in 0..200 {
                let mut b = Backoff::RECONNECT;
                for _ in 0..attempt {
                    b.next_delay(&mut rng);
                }
                let ceiling = b.ceiling();
                let d = b.next_delay(&mut rng);
                assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
                assert!(d <= Duration::from_secs(30));
                samples.push(d);
            }
            let min = samples.iter().min().copied().unwrap_or_default();
            let max = samples.iter().max().copied().unwrap_or_default();
            assert!(max > min, "attempt {attempt}: delays must be jittered");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_lets_one_line_through_per_period() {
        let mut l = LogLimiter::new(Duration::from_secs(30));
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(l.allow(), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(l.allow(), Some(3));
        assert_eq!(l.allow(), None);
        l.reset();
        assert_eq!(l.allow(), Some(0));
    }
}
