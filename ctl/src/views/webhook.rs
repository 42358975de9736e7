//! Webhooks as berthctl shows them: the subscription, where its delivery
//! stands (cursor, attempts, last error) and its dead letters. There is no
//! field for the secret: the scheduler never sends it back.

use berth_proto::v1 as pb;
use serde::Serialize;

use super::{rfc3339, table_time};
use crate::output::{or_dash, Table};

/// One subscription and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub name: String,
    pub url: String,
    /// The EventBridge pattern; empty: every event.
    pub event_pattern: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    pub created_by: String,
    pub cursor: u64,
    pub latest_cursor: u64,
    pub attempts: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
    pub delivered: u64,
    pub dead_lettered: u64,
    pub dead_letters: u32,
    pub redrives_pending: u32,
    #[serde(skip)]
    pub success_table: String,
}

impl From<pb::Webhook> for WebhookView {
    fn from(w: pb::Webhook) -> Self {
        Self {
            created_at: rfc3339(w.created_at.as_ref()),
            last_attempt_at: rfc3339(w.last_attempt_at.as_ref()),
            last_success_at: rfc3339(w.last_success_at.as_ref()),
            success_table: table_time(w.last_success_at.as_ref()),
            name: w.name,
            url: w.url,
            event_pattern: w.event_pattern,
            created_by: w.created_by,
            cursor: w.cursor,
            latest_cursor: w.latest_cursor,
            attempts: w.attempts,
            last_error: w.last_error,
            delivered: w.delivered,
            dead_lettered: w.dead_lettered,
            dead_letters: w.dead_letters,
            redrives_pending: w.redrives_pending,
        }
    }
}

/// `{"webhooks": [...]}`, for `webhook ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhooksView {
    pub webhooks: Vec<WebhookView>,
}

/// `webhook ls`: NAME, URL, CURSOR/LATEST, DELIVERED, DEAD, LAST SUCCESS, ERROR.
pub fn list_table(v: &WebhooksView) -> String {
    let mut t = Table::new(&[
        "NAME",
        "URL",
        "CURSOR",
        "DELIVERED",
        "DEAD LETTERS",
        "LAST SUCCESS",
        "LAST ERROR",
    ]);
    for w in &v.webhooks {
        t.row([
            w.name.clone(),
            w.url.clone(),
            format!("{}/{}", w.cursor, w.latest_cursor),
            w.delivered.to_string(),
            w.dead_letters.to_string(),
            w.success_table.clone(),
            if w.attempts > 0 {
                format!("{} (attempt {})", w.last_error, w.attempts)
            } else {
                "-".to_owned()
            },
        ]);
    }
    t.render()
}

/// `webhook describe`: one `key: value` line each.
pub fn describe_text(w: &WebhookView) -> String {
    let mut t = Table::plain();
    let dash = |o: &Option<String>| or_dash(o.as_deref().unwrap_or_default());
    t.row(["Name:".to_owned(), w.name.clone()]);
    t.row(["URL:".to_owned(), w.url.clone()]);
    t.row([
        "Event pattern:".to_owned(),
        if w.event_pattern.is_empty() {
            "(every event)".to_owned()
        } else {
            w.event_pattern.clone()
        },
    ]);
    t.row(["Created:".to_owned(), dash(&w.created_at)]);
    t.row(["Created by:".to_owned(), or_dash(&w.created_by)]);
    t.row([
        "Cursor:".to_owned(),
        format!("{} (latest event {})", w.cursor, w.latest_cursor),
    ]);
    t.row(["Delivered:".to_owned(), w.delivered.to_string()]);
    t.row(["Last success:".to_owned(), dash(&w.last_success_at)]);
    t.row(["Failed attempts:".to_owned(), w.attempts.to_string()]);
    t.row(["Last error:".to_owned(), or_dash(&w.last_error)]);
    t.row(["Last attempt:".to_owned(), dash(&w.last_attempt_at)]);
    t.row([
        "Dead letters:".to_owned(),
        format!(
            "{} kept, {} redriving, {} ever",
            w.dead_letters, w.redrives_pending, w.dead_lettered
        ),
    ]);
    t.render()
}

pub fn create_sentence(w: &WebhookView) -> String {
    format!(
        "webhook {} created: events after cursor {} go to {}\n",
        w.name, w.cursor, w.url
    )
}

pub fn rm_sentence(w: &WebhookView) -> String {
    format!("webhook {} deleted\n", w.name)
}

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    pub cursor: u64,
    pub event_id: String,
    pub detail_type: String,
    pub resource: String,
    pub attempts: u32,
    pub last_error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_lettered_at: Option<String>,
    pub redriving: bool,
    /// The body that was POSTed (EventBridge's JSON of the event).
    pub body: String,
    #[serde(skip)]
    pub at_table: String,
}

impl From<pb::DeadLetter> for DeadLetterView {
    fn from(l: pb::DeadLetter) -> Self {
        Self {
            dead_lettered_at: rfc3339(l.dead_lettered_at.as_ref()),
            at_table: table_time(l.dead_lettered_at.as_ref()),
            cursor: l.cursor,
            event_id: l.event_id,
            detail_type: l.detail_type,
            resource: l.resource,
            attempts: l.attempts,
            last_error: l.last_error,
            redriving: l.redriving,
            body: l.body,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLettersView {
    pub dead_letters: Vec<DeadLetterView>,
}

/// `webhook deadletters`: CURSOR, DETAIL-TYPE, RESOURCE, ATTEMPTS, AT, STATE, ERROR.
pub fn dead_letters_table(v: &DeadLettersView) -> String {
    let mut t = Table::new(&[
        "CURSOR",
        "DETAIL-TYPE",
        "RESOURCE",
        "ATTEMPTS",
        "AT",
        "STATE",
        "LAST ERROR",
    ]);
    for l in &v.dead_letters {
        t.row([
            l.cursor.to_string(),
            or_dash(&l.detail_type),
            or_dash(&l.resource),
            l.attempts.to_string(),
            l.at_table.clone(),
            if l.redriving { "redriving" } else { "dead" }.to_owned(),
            l.last_error.clone(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::fixtures::{t0, t1};
    use expect_test::expect;

    fn hook() -> WebhookView {
        pb::Webhook {
            name: "ops".into(),
            url: "https://hooks.example.com/berth".into(),
            event_pattern: r#"{"detail-type":["ECS Task State Change"]}"#.into(),
            created_at: t0(),
            created_by: "a1b2".into(),
            cursor: 41,
            latest_cursor: 57,
            attempts: 3,
            last_error: "answered HTTP 503".into(),
            last_attempt_at: t1(),
            last_success_at: t0(),
            delivered: 40,
            dead_lettered: 1,
            dead_letters: 1,
            redrives_pending: 0,
        }
        .into()
    }

    #[test]
    fn list_and_describe() {
        let v = WebhooksView {
            webhooks: vec![hook()],
        };
        expect![[r#"
            NAME  URL                              CURSOR  DELIVERED  DEAD LETTERS  LAST SUCCESS          LAST ERROR
            ops   https://hooks.example.com/berth  41/57   40         1             2024-05-01T12:00:00Z  answered HTTP 503 (attempt 3)
        "#]]
        .assert_eq(&list_table(&v));
        let text = describe_text(&hook());
        assert!(
            text.contains("Cursor:           41 (latest event 57)"),
            "{text}"
        );
        assert!(!crate::output::json(&hook()).contains("secret"));
    }
}
