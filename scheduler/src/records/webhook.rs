//! The stored records of webhooks (`crate::webhooks`): a subscription, its
//! delivery state (the durable cursor into the event log) and the events it
//! dead-lettered or was asked to redrive.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::UnixMillis;

/// A webhook subscription. `sealed_secret` is the signing secret sealed with
/// the secrets key (`crate::secrets`); nothing returns or logs it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRecord {
    pub name: String,
    pub url: String,
    /// The EventBridge event pattern as given (JSON); empty: every event.
    #[serde(default)]
    pub pattern: String,
    pub sealed_secret: String,
    pub created_at: UnixMillis,
    /// Who created it (the token's id).
    #[serde(default)]
    pub created_by: String,
    /// The event-log cursor it started after.
    pub start_cursor: u64,
}

impl fmt::Debug for WebhookRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookRecord")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("pattern", &self.pattern)
            .field("sealed_secret", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("start_cursor", &self.start_cursor)
            .finish()
    }
}

/// Where a subscription's delivery stands. Written by its delivery worker
/// only: the cursor moves past an event after a 2xx answer, or after the
/// event was dead-lettered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookState {
    /// The last event delivered, dead-lettered or not matched.
    pub cursor: u64,
    /// Failed attempts at the event after `cursor` (or the redrive under
    /// way) so far.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_attempt_at: Option<UnixMillis>,
    #[serde(default)]
    pub last_success_at: Option<UnixMillis>,
    /// Events delivered with a 2xx answer.
    #[serde(default)]
    pub delivered: u64,
    /// Events dead-lettered.
    #[serde(default)]
    pub dead_lettered: u64,
}

/// An event a subscription gave up on (or was asked to redrive): the body as
/// it was sent, so a redrive sends the same bytes even after the event log
/// pruned the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterRecord {
    /// The event's cursor in the log.
    pub seq: u64,
    /// EventBridge's `id` of the event.
    pub event_id: String,
    pub detail_type: String,
    /// The ARN of the changed resource.
    pub resource: String,
    /// The JSON body POSTed.
    pub body: String,
    pub attempts: u32,
    pub last_error: String,
    pub dead_lettered_at: UnixMillis,
}
