//! ECS's rate limit on the task metadata endpoint: a token bucket per
//! source address, 40 requests a second steady with bursts of 60
//! (amazon-ecs-agent's `steadyStateRate` and `burstRate`). Past it the
//! endpoint answers 429 Too Many Requests.
//!
//! Time comes in as an argument ([`tokio::time::Instant`]), so the limiter is
//! tested without waiting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// ECS's steady rate, requests per second.
pub const STEADY_PER_SEC: f64 = 40.0;
/// ECS's burst.
pub const BURST: f64 = 60.0;
/// Buckets idle this long are full again and are dropped.
const IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets keyed by source address.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new(STEADY_PER_SEC, BURST)
    }
}

impl RateLimiter {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `ip` at `now`; `false` when its bucket is empty.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 1024 {
            buckets.retain(|_, b| now.saturating_duration_since(b.last) < IDLE);
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate_per_address() {
        let l = RateLimiter::default();
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        let b: IpAddr = "10.0.0.3".parse().unwrap();
        let t0 = Instant::now();
        let allowed = (0..100).filter(|_| l.allow(a, t0)).count();
        assert_eq!(allowed, 60, "the burst is 60");
        assert!(l.allow(b, t0), "another address has its own bucket");
        // One second later, 40 more tokens (not the whole burst).
        let t1 = t0 + Duration::from_secs(1);
        let allowed = (0..100).filter(|_| l.allow(a, t1)).count();
        assert_eq!(allowed, 40);
        // 25 ms is one token at 40/s.
        let t2 = t1 + Duration::from_millis(25);
        assert!(l.allow(a, t2));
        assert!(!l.allow(a, t2));
        // Idle long enough, the bucket is full again, never more.
        let t3 = t2 + Duration::from_secs(600);
        assert_eq!((0..100).filter(|_| l.allow(a, t3)).count(), 60);
    }
}
