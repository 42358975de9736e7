//! Operator tokens and audit events: `token ls|create|revoke`, `audit ls`.

use berth_proto::v1 as pb;
use serde::Serialize;

use super::rfc3339;
use crate::output::Table;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub role: String,
    /// ACTIVE | EXPIRED | REVOKED, at the time the view was made.
    pub status: String,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub created_by: String,
}

impl TokenView {
    /// `now` in seconds since the epoch decides EXPIRED.
    pub fn new(t: pb::OperatorToken, now: i64) -> Self {
        let status = if t.revoked_at.is_some() {
            "REVOKED"
        } else if t.expires_at.as_ref().is_some_and(|e| e.seconds <= now) {
            "EXPIRED"
        } else {
            "ACTIVE"
        };
        Self {
            status: status.to_owned(),
            created_at: rfc3339(t.created_at.as_ref()),
            expires_at: rfc3339(t.expires_at.as_ref()),
            revoked_at: rfc3339(t.revoked_at.as_ref()),
            id: t.id,
            name: t.name,
            role: t.role,
            created_by: t.created_by,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokensView {
    pub tokens: Vec<TokenView>,
}

fn short(rfc: &Option<String>) -> String {
    // Tables show seconds; JSON keeps the full precision.
    rfc.as_deref()
        .map(|s| match s.split_once('.') {
            Some((head, _)) => format!("{head}Z"),
            None => s.to_owned(),
        })
        .unwrap_or_else(|| "-".to_owned())
}

pub fn tokens_table(v: &TokensView) -> String {
    let mut t = Table::new(&["ID", "NAME", "ROLE", "STATUS", "CREATED", "EXPIRES"]);
    for tok in &v.tokens {
        t.row([
            tok.id.clone(),
            tok.name.clone(),
            tok.role.clone(),
            tok.status.clone(),
            short(&tok.created_at),
            short(&tok.expires_at),
        ]);
    }
    t.render()
}

/// A new token: the secret is printed this once, as Berth's bearer token
/// and as the AWS credentials of the ECS API (SigV4: the access key id is
/// the token's id, the secret access key its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTokenView {
    pub token: TokenView,
    pub secret: String,
    pub aws_access_key_id: String,
    pub aws_secret_access_key: String,
}

impl CreatedTokenView {
    pub fn new(token: TokenView, secret: String) -> Self {
        // `berth_<id>_<secret>`; the id has no `_`.
        let (id, key) = secret
            .strip_prefix("berth_")
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, key)| (id.to_owned(), key.to_owned()))
            .unwrap_or_default();
        Self {
            token,
            secret,
            aws_access_key_id: id,
            aws_secret_access_key: key,
        }
    }
}

pub fn created_text(v: &CreatedTokenView) -> String {
    format!(
        "{}\ntoken {} ({}, role {}) created; the secret is shown only this once\n\n\
         As AWS credentials for the ECS API (aws ecs --endpoint-url https://<scheduler>:7443),\n\
         e.g. in ~/.aws/credentials:\n\n\
         [berth-{}]\n\
         aws_access_key_id = {}\n\
         aws_secret_access_key = {}\n",
        v.secret,
        v.token.id,
        v.token.name,
        v.token.role,
        v.token.name,
        v.aws_access_key_id,
        v.aws_secret_access_key
    )
}

pub fn revoked_text(v: &TokenView) -> String {
    format!("token {} ({}) revoked\n", v.id, v.name)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventView {
    pub id: String,
    pub time: Option<String>,
    pub token_id: String,
    pub token_name: String,
    pub method: String,
    pub resource: String,
    pub outcome: String,
}

impl From<pb::AuditEvent> for AuditEventView {
    fn from(e: pb::AuditEvent) -> Self {
        Self {
            id: e.id,
            time: rfc3339(e.time.as_ref()),
            token_id: e.token_id,
            token_name: e.token_name,
            method: e.method,
            resource: e.resource,
            outcome: e.outcome,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEventsView {
    pub events: Vec<AuditEventView>,
}

pub fn audit_table(v: &AuditEventsView) -> String {
    let mut t = Table::new(&["TIME", "WHO", "METHOD", "RESOURCE", "OUTCOME"]);
    for e in &v.events {
        let method = e
            .method
            .strip_prefix("/berth.v1.")
            .unwrap_or(&e.method)
            .to_owned();
        t.row([
            short(&e.time),
            format!("{} ({})", e.token_name, e.token_id),
            method,
            crate::output::or_dash(&e.resource),
            e.outcome.clone(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::fixtures::{t0, t1};
    use expect_test::expect;

    fn token(id: &str, name: &str, role: &str) -> pb::OperatorToken {
        pb::OperatorToken {
            id: id.into(),
            name: name.into(),
            role: role.into(),
            created_at: t0(),
            created_by: "bootstrap".into(),
            ..Default::default()
        }
    }

    #[test]
    fn tokens_table_shows_status_and_times() {
        let now = t1().unwrap().seconds;
        let expired = pb::OperatorToken {
            expires_at: t0(),
            ..token("0b", "old", "operator")
        };
        let revoked = pb::OperatorToken {
            revoked_at: t1(),
            ..token("0c", "ci", "read-only")
        };
        let v = TokensView {
            tokens: [token("0a", "bootstrap", "admin"), expired, revoked]
                .into_iter()
                .map(|t| TokenView::new(t, now))
                .collect(),
        };
        expect![[r#"
            ID  NAME       ROLE       STATUS   CREATED               EXPIRES
            0a  bootstrap  admin      ACTIVE   2024-05-01T12:00:00Z  -
            0b  old        operator   EXPIRED  2024-05-01T12:00:00Z  2024-05-01T12:00:00Z
            0c  ci         read-only  REVOKED  2024-05-01T12:00:00Z  -
        "#]]
        .assert_eq(&tokens_table(&v));
        let created = CreatedTokenView::new(v.tokens[0].clone(), "berth_0a_s3cr3t".into());
        expect![[r#"
            berth_0a_s3cr3t
            token 0a (bootstrap, role admin) created; the secret is shown only this once

            As AWS credentials for the ECS API (aws ecs --endpoint-url https://<scheduler>:7443),
            e.g. in ~/.aws/credentials:

            [berth-bootstrap]
            aws_access_key_id = 0a
            aws_secret_access_key = s3cr3t
        "#]]
        .assert_eq(&created_text(&created));
    }

    #[test]
    fn audit_table_names_who_what_when() {
        let v = AuditEventsView {
            events: vec![
                pb::AuditEvent {
                    id: "1".into(),
                    time: t0(),
                    token_id: "0a".into(),
                    token_name: "bootstrap".into(),
                    method: "/berth.v1.ClusterService/CreateCluster".into(),
                    resource: "cluster/prod".into(),
                    outcome: "OK".into(),
                }
                .into(),
                pb::AuditEvent {
                    id: "2".into(),
                    time: t1(),
                    token_id: "0c".into(),
                    token_name: "ci".into(),
                    method: "/berth.v1.TaskService/StopTask".into(),
                    resource: String::new(),
                    outcome: "PermissionDenied".into(),
                }
                .into(),
            ],
        };
        expect![[r#"
            TIME                  WHO             METHOD                        RESOURCE      OUTCOME
            2024-05-01T12:00:00Z  bootstrap (0a)  ClusterService/CreateCluster  cluster/prod  OK
            2024-05-02T08:30:05Z  ci (0c)         TaskService/StopTask          -             PermissionDenied
        "#]]
        .assert_eq(&audit_table(&v));
    }
}
