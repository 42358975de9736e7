//! Webhooks: the event log ([`crate::events`]) delivered by HTTP(S) POST to
//! subscribers (`docs/webhooks.md`).
//!
//! Each subscription reads the log through its own durable cursor (the
//! `c/<name>` record of `crate::db::webhooks`); there is no second outbox,
//! and the write path of a change does not know webhooks exist. One worker
//! per subscription delivers one event at a time, in log order, so a
//! receiver sees each resource's changes in the order they were committed:
//!
//! 1. events waiting to be redriven go first (oldest first);
//! 2. then the events after the cursor, each rendered as EventBridge's JSON
//!    (by the API edge: [`Render`]) and matched against the subscription's
//!    [`pattern::Pattern`]; events that do not match move the cursor only;
//! 3. an attempt is a POST signed with HMAC-SHA256 over `timestamp.body`
//!    ([`signature`]). A 2xx answer moves the cursor past the event. Any
//!    other answer, a timeout or a refused connection is retried after an
//!    exponential backoff with jitter, up to `[webhooks] max_attempts`;
//!    then the event is dead-lettered (kept with its body, the attempts
//!    and the last error) and the cursor moves on.
//!
//! The cursor moves only after a 2xx answer (or a dead letter), in a
//! checked store write, so a `kill -9` at any point delivers the event again
//! after the restart: at least once, never lost. Receivers deduplicate by
//! the `Berth-Webhook-Id` header (the event's id).
//!
//! Events the log pruned before a slow subscription reached them cannot be
//! sent; the worker dead-letters a note naming the lost cursors and goes on
//! from the oldest retained event.

pub mod http;
pub mod pattern;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::WebhookSettings;
use crate::db::{Db, DbError, WorkerWrite};
use crate::events::{EventFilter, EventsError, Sequenced};
use crate::records::{now_millis, DeadLetterRecord, WebhookRecord, WebhookState};
use crate::secrets::Secrets;
use pattern::Pattern;

/// The headers of a delivery.
pub const HEADER_ID: &str = "berth-webhook-id";
pub const HEADER_TIMESTAMP: &str = "berth-webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "berth-webhook-signature";
pub const HEADER_SUBSCRIPTION: &str = "berth-webhook-subscription";
pub const HEADER_CURSOR: &str = "berth-webhook-cursor";
pub const HEADER_ATTEMPT: &str = "berth-webhook-attempt";

/// Events read from the log per step of a worker.
const READ_BATCH: usize = 256;
/// The longest signing secret accepted, and the shortest.
pub const MAX_SECRET_LEN: usize = 1024;
pub const MIN_SECRET_LEN: usize = 16;

/// One event as a receiver gets it.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// EventBridge's JSON of the event (the body).
    pub json: String,
    /// The ARN of the changed resource.
    pub resource: String,
}

/// Renders an event as EventBridge's JSON: the API edge's renderer, handed
/// in so that this module sees no wire types.
pub type Render = Arc<dyn Fn(&Sequenced) -> Result<Rendered, String> + Send + Sync>;

/// A subscription name: 1–64 of `A-Z a-z 0-9 - _` (EventBridge's rule names
/// allow `.` too; Berth keeps names usable in paths and keys).
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "{c:?} is not allowed; use letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

/// `v1=` and the hex HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`:
/// the `Berth-Webhook-Signature` header.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The delay before attempt `attempt + 1`, after `attempt` failures (≥ 1):
/// `base · 2^(attempt-1)`, at most `max`, drawn from its upper half.
pub fn backoff(settings: &WebhookSettings, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = settings
        .backoff_base
        .saturating_mul(1u32 << exp)
        .min(settings.backoff_max);
    let half = full / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis().min(u128::from(u64::MAX)) as u64);
    half + Duration::from_millis(jitter)
}

/// Wakes the delivery workers after the API changed a subscription.
#[derive(Debug, Clone, Default)]
pub struct Changes(Arc<Notify>);

impl Changes {
    pub fn poke(&self) {
        self.0.notify_one();
    }
}

struct Ctx {
    db: Db,
    secrets: Secrets,
    settings: WebhookSettings,
    client: http::Client,
    render: Render,
    permits: Semaphore,
}

/// Starts the supervisor of the delivery workers; it stops, with its
/// workers, at `shutdown`. Await the handle before closing the store.
pub fn start(
    db: Db,
    secrets: Secrets,
    settings: WebhookSettings,
    render: Render,
    shutdown: CancellationToken,
) -> Result<(Changes, JoinHandle<()>), http::CaError> {
    let client = http::Client::new(
        settings.connect_timeout,
        settings.request_timeout,
        settings.ca_file.as_deref(),
    )?;
    let ctx = Arc::new(Ctx {
        permits: Semaphore::new(settings.concurrency),
        db,
        secrets,
        settings,
        client,
        render,
    });
    let changes = Changes::default();
    let handle = tokio::spawn(supervise(ctx, changes.clone(), shutdown));
    Ok((changes, handle))
}

struct Worker {
    cancel: CancellationToken,
    poke: Arc<Notify>,
    handle: JoinHandle<()>,
}

async fn supervise(ctx: Arc<Ctx>, changes: Changes, shutdown: CancellationToken) {
    let mut workers: HashMap<String, Worker> = HashMap::new();
    loop {
        match ctx.db.webhooks() {
            Ok(subs) => {
                workers.retain(|name, w| {
                    let keep = subs.iter().any(|s| &s.name == name) && !w.handle.is_finished();
                    if !keep {
                        w.cancel.cancel();
                    }
                    keep
                });
                for s in subs {
                    if let Some(w) = workers.get(&s.name) {
                        w.poke.notify_one();
                        continue;
                    }
                    let cancel = shutdown.child_token();
                    let poke = Arc::new(Notify::new());
                    let handle = tokio::spawn(work(
                        ctx.clone(),
                        s.name.clone(),
                        poke.clone(),
                        cancel.clone(),
                    ));
                    workers.insert(
                        s.name,
                        Worker {
                            cancel,
                            poke,
                            handle,
                        },
                    );
                }
            }
            Err(e) => tracing::error!(cause = %e, "listing webhook subscriptions"),
        }
        tokio::select! {
            _ = changes.0.notified() => {}
            _ = shutdown.cancelled() => break,
            // A worker that ended on its own (its subscription deleted) is
            // reaped on the next change; a periodic look keeps the map small.
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }
    for (_, w) in workers.drain() {
        w.cancel.cancel();
        let _ = w.handle.await;
    }
}

/// What one step of a worker did.
enum Step {
    /// Made progress (or lost a race): step again at once.
    Again,
    /// Nothing to send until the log grows or the subscription changes.
    Idle,
    /// The subscription is gone, or shutdown.
    Stop,
}

async fn work(ctx: Arc<Ctx>, name: String, poke: Arc<Notify>, cancel: CancellationToken) {
    let mut durable = ctx.db.events().durable();
    let mut failures = 0u32;
    loop {
        durable.borrow_and_update();
        match step(&ctx, &name, &cancel).await {
            Ok(Step::Again) => failures = 0,
            Ok(Step::Stop) => return,
            Ok(Step::Idle) => {
                failures = 0;
                tokio::select! {
                    r = durable.changed() => if r.is_err() { return },
                    _ = poke.notified() => {}
                    _ = cancel.cancelled() => return,
                }
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::error!(webhook = %name, cause = %e, failures, "webhook worker failed; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = cancel.cancelled() => return,
                }
            }
        }
    }
}

/// The outcome of delivering one event.
enum Outcome {
    Delivered,
    GaveUp { attempts: u32, error: String },
    Cancelled,
}

/// Everything a delivery needs of its subscription.
struct Sub {
    rec: WebhookRecord,
    pattern: Pattern,
    target: http::Target,
    secret: crate::secrets::SecretBytes,
}

fn load_sub(ctx: &Ctx, name: &str) -> Result<Option<Sub>, String> {
    let Some(rec) = ctx.db.webhook(name).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let pattern = if rec.pattern.is_empty() {
        Pattern::everything()
    } else {
        Pattern::compile(&rec.pattern, "pattern").map_err(|e| e.to_string())?
    };
    let target = http::Target::parse(&rec.url).map_err(|e| format!("url {e}"))?;
    let secret = ctx
        .secrets
        .webhook_secret(&rec)
        .map_err(|e| e.to_string())?;
    Ok(Some(Sub {
        rec,
        pattern,
        target,
        secret,
    }))
}

async fn step(ctx: &Ctx, name: &str, cancel: &CancellationToken) -> Result<Step, String> {
    let Some(sub) = load_sub(ctx, name)? else {
        return Ok(Step::Stop);
    };
    let db_err = |e: DbError| e.to_string();
    // Redrives first, oldest first.
    if let Some(letter) = ctx.db.next_webhook_redrive(name).map_err(db_err)? {
        let outcome = deliver(
            ctx,
            &sub,
            letter.seq,
            &letter.event_id,
            &letter.body,
            cancel,
        )
        .await;
        let Some((mut state, bytes)) = ctx.db.webhook_state(name).map_err(db_err)? else {
            return Ok(Step::Stop);
        };
        let dead = match outcome {
            Outcome::Cancelled => return Ok(Step::Stop),
            Outcome::Delivered => {
                state.delivered += 1;
                state.last_success_at = Some(now_millis());
                None
            }
            Outcome::GaveUp { attempts, error } => {
                state.dead_lettered += 1;
                Some(DeadLetterRecord {
                    attempts,
                    last_error: error,
                    dead_lettered_at: now_millis(),
                    ..letter.clone()
                })
            }
        };
        state.attempts = 0;
        ctx.db
            .save_webhook_progress(name, &bytes, &state, dead.as_ref(), Some(letter.seq))
            .map_err(db_err)?;
        return Ok(Step::Again);
    }
    let Some((state, bytes)) = ctx.db.webhook_state(name).map_err(db_err)? else {
        return Ok(Step::Stop);
    };
    let log = ctx.db.events();
    let (batch, next) = match log.read_after(state.cursor, &EventFilter::default(), READ_BATCH) {
        Ok(r) => r,
        Err(EventsError::Expired { first, .. }) => {
            // The log pruned events this subscription had not reached.
            let lost = format!(
                "events {}..={} were pruned before delivery",
                state.cursor + 1,
                first - 1
            );
            tracing::warn!(webhook = %name, %lost, "a webhook fell behind the event log's retention");
            let letter = DeadLetterRecord {
                seq: state.cursor + 1,
                event_id: String::new(),
                detail_type: String::new(),
                resource: String::new(),
                body: String::new(),
                attempts: 0,
                last_error: lost,
                dead_lettered_at: now_millis(),
            };
            let new = WebhookState {
                cursor: first - 1,
                dead_lettered: state.dead_lettered + 1,
                ..state
            };
            ctx.db
                .save_webhook_progress(name, &bytes, &new, Some(&letter), None)
                .map_err(db_err)?;
            return Ok(Step::Again);
        }
        Err(EventsError::Ahead { last, .. }) => {
            // The store was restored from an older snapshot.
            tracing::warn!(webhook = %name, cursor = state.cursor, last, "a webhook's cursor is ahead of the event log; it goes on from the log's end");
            let new = WebhookState {
                cursor: last,
                ..state
            };
            ctx.db
                .save_webhook_progress(name, &bytes, &new, None, None)
                .map_err(db_err)?;
            return Ok(Step::Again);
        }
        Err(EventsError::Store(e)) => return Err(e.to_string()),
    };
    for e in &batch {
        let (body, resource, matched) = match (ctx.render)(e) {
            Ok(r) => {
                let value: serde_json::Value =
                    serde_json::from_str(&r.json).map_err(|e| e.to_string())?;
                let matched = sub.pattern.matches(&value);
                (r.json, r.resource, matched)
            }
            Err(cause) => {
                // Dead-lettered below after no attempt: it cannot be sent.
                (String::new(), cause, true)
            }
        };
        if !matched {
            continue;
        }
        let id = e.event.id.clone();
        let outcome = if body.is_empty() {
            Outcome::GaveUp {
                attempts: 0,
                error: format!("the event could not be rendered: {resource}"),
            }
        } else {
            deliver(ctx, &sub, e.seq, &id, &body, cancel).await
        };
        // Re-read: the attempts were recorded in the state meanwhile.
        let Some((mut now_state, now_bytes)) = ctx.db.webhook_state(name).map_err(db_err)? else {
            return Ok(Step::Stop);
        };
        if now_state.cursor != state.cursor {
            return Ok(Step::Again);
        }
        now_state.cursor = e.seq;
        now_state.attempts = 0;
        let dead = match outcome {
            Outcome::Cancelled => return Ok(Step::Stop),
            Outcome::Delivered => {
                now_state.delivered += 1;
                now_state.last_success_at = Some(now_millis());
                None
            }
            Outcome::GaveUp { attempts, error } => {
                now_state.dead_lettered += 1;
                tracing::warn!(webhook = %name, cursor = e.seq, attempts, cause = %error, "webhook event dead-lettered");
                Some(DeadLetterRecord {
                    seq: e.seq,
                    event_id: id,
                    detail_type: e.event.body.kind().detail_type().to_owned(),
                    resource,
                    body,
                    attempts,
                    last_error: error,
                    dead_lettered_at: now_millis(),
                })
            }
        };
        ctx.db
            .save_webhook_progress(name, &now_bytes, &now_state, dead.as_ref(), None)
            .map_err(db_err)?;
        // One event per step: a redrive or a deletion may have come.
        return Ok(Step::Again);
    }
    if next > state.cursor {
        // Nothing in the batch matched: move past it.
        let new = WebhookState {
            cursor: next,
            ..state
        };
        return match ctx
            .db
            .save_webhook_progress(name, &bytes, &new, None, None)
            .map_err(db_err)?
        {
            WorkerWrite::Done | WorkerWrite::Stale => Ok(Step::Again),
        };
    }
    Ok(Step::Idle)
}

/// The headers of one attempt.
fn headers(sub: &Sub, seq: u64, id: &str, body: &[u8], attempt: u32) -> HeaderMap {
    let ts = now_millis().div_euclid(1000);
    let sig = signature(sub.secret.as_bytes(), ts, body);
    let mut h = HeaderMap::new();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::try_from(v) {
            h.insert(HeaderName::from_static(k), v);
        }
    };
    put(HEADER_ID, id.to_owned());
    put(HEADER_TIMESTAMP, ts.to_string());
    put(HEADER_SIGNATURE, sig);
    put(HEADER_SUBSCRIPTION, sub.rec.name.clone());
    put(HEADER_CURSOR, seq.to_string());
    put(HEADER_ATTEMPT, attempt.to_string());
    h
}

/// Attempts `body` until a 2xx answer, the attempt limit, or cancellation.
/// Each failure is recorded in the subscription's state (for describe).
async fn deliver(
    ctx: &Ctx,
    sub: &Sub,
    seq: u64,
    id: &str,
    body: &str,
    cancel: &CancellationToken,
) -> Outcome {
    let name = &sub.rec.name;
    let body = Bytes::copy_from_slice(body.as_bytes());
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = {
            let Ok(_permit) = ctx.permits.acquire().await else {
                return Outcome::Cancelled;
            };
            let h = headers(sub, seq, id, &body, attempt);
            tokio::select! {
                r = ctx.client.post(&sub.target, h, body.clone()) => r,
                _ = cancel.cancelled() => return Outcome::Cancelled,
            }
        };
        let error = match result {
            Ok(status) => {
                tracing::debug!(webhook = %name, cursor = seq, status, attempt, "webhook delivered");
                return Outcome::Delivered;
            }
            Err(e) => e.to_string(),
        };
        if attempt == 1 {
            tracing::warn!(webhook = %name, cursor = seq, cause = %error, "webhook delivery failed; retrying with backoff");
        }
        record_failure(ctx, name, attempt, &error);
        if attempt >= ctx.settings.max_attempts {
            return Outcome::GaveUp {
                attempts: attempt,
                error,
            };
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff(&ctx.settings, attempt)) => {}
            _ = cancel.cancelled() => return Outcome::Cancelled,
        }
    }
}

fn record_failure(ctx: &Ctx, name: &str, attempts: u32, error: &str) {
    let Ok(Some((state, bytes))) = ctx.db.webhook_state(name) else {
        return;
    };
    let new = WebhookState {
        attempts,
        last_error: Some(error.to_owned()),
        last_attempt_at: Some(now_millis()),
        ..state
    };
    if let Err(e) = ctx.db.save_webhook_progress(name, &bytes, &new, None, None) {
        tracing::debug!(webhook = %name, cause = %e, "recording a failed attempt");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' |
        //   openssl dgst -sha256 -hmac 'whsec_test_0123456789'
        let sig = signature(b"whsec_test_0123456789", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            sig,
            "v1=d45143ed412aa9d672e3e06cc6753ced7e0e5a1757b1109ff599ba71790e646d"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_max() {
        let s = WebhookSettings {
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(10),
            ..Default::default()
        };
        for _ in 0..100 {
            let d1 = backoff(&s, 1);
            assert!(
                d1 >= Duration::from_millis(500) && d1 <= Duration::from_secs(1),
                "{d1:?}"
            );
            let d3 = backoff(&s, 3);
            assert!(
                d3 >= Duration::from_secs(2) && d3 <= Duration::from_secs(4),
                "{d3:?}"
            );
            let d9 = backoff(&s, 9);
            assert!(
                d9 >= Duration::from_secs(5) && d9 <= Duration::from_secs(10),
                "{d9:?}"
            );
        }
        assert!(backoff(&s, u32::MAX) <= Duration::from_secs(10));
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("ops-alerts_1").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(&"a".repeat(65)).is_err());
        assert!(validate_name("a/b").unwrap_err().contains("'/'"));
    }
}
