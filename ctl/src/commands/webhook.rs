//! `berthctl webhook ls|create|describe|rm|deadletters|redrive`: event-log
//! subscriptions delivered by signed POST (`docs/webhooks.md`).
//!
//! The signing secret comes from `--secret-file` (exactly its bytes) or
//! standard input (one trailing newline dropped), like `secret put`; it is
//! sent once and never shown again. The event pattern comes from
//! `--pattern` (JSON) or `--pattern-file`.

use std::io::{IsTerminal as _, Read};

use berth_proto::v1 as pb;
use berth_proto::v1::webhook_service_client::WebhookServiceClient;
use clap::Subcommand;

use super::Ctx;
use crate::error::CtlError;
use crate::views::webhook::{self as view, DeadLettersView, WebhookView, WebhooksView};

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// List subscriptions with where their delivery stands
    Ls,
    /// Create a subscription (admin); the secret comes from --secret-file or standard input
    ///
    /// Receivers get each matching event as EventBridge's JSON in a POST,
    /// signed with HMAC-SHA256 over `timestamp.body` (headers
    /// Berth-Webhook-Timestamp and Berth-Webhook-Signature). Delivery
    /// starts with the events after the newest one, unless --from-oldest
    /// or --start-after is given.
    Create {
        /// Name: 1–64 of letters, digits, `-` and `_`
        name: String,
        /// Where to POST: an http:// or https:// URL
        #[arg(long)]
        url: String,
        /// An EventBridge event pattern (JSON), e.g. '{"detail-type":["ECS Task State Change"]}'
        #[arg(long, value_name = "JSON", conflicts_with = "pattern_file")]
        pattern: Option<String>,
        /// Read the event pattern from this file
        #[arg(long, value_name = "FILE")]
        pattern_file: Option<String>,
        /// Read the signing secret from this file, byte for byte (16–1024 bytes)
        #[arg(long, value_name = "FILE")]
        secret_file: Option<String>,
        /// Deliver every retained event first
        #[arg(long, conflicts_with = "start_after")]
        from_oldest: bool,
        /// Deliver the events after this cursor (see `berthctl events -o json`)
        #[arg(long, value_name = "CURSOR")]
        start_after: Option<u64>,
    },
    /// Show one subscription: pattern, cursor, attempts, last error
    Describe { name: String },
    /// Delete a subscription (admin), with its cursor and dead letters
    Rm { name: String },
    /// List the events a subscription gave up on (and those being redriven)
    Deadletters { name: String },
    /// Deliver dead letters again, before the events after the cursor
    Redrive {
        name: String,
        /// Only these cursors (default: every dead letter)
        #[arg(long = "cursor", value_name = "CURSOR")]
        cursors: Vec<u64>,
    },
}

/// The bytes of `--secret-file`, or standard input without one trailing
/// newline.
fn read_secret(from_file: Option<&str>, stdin: &mut dyn Read) -> Result<Vec<u8>, CtlError> {
    super::secret::read_secret_input(from_file, stdin, |what| {
        format!(
            "the webhook's secret from {what} is empty; pipe it in or use --secret-file FILE (e.g. from `openssl rand -hex 32`)"
        )
    })
}

fn no_webhook() -> CtlError {
    CtlError::BadResponse {
        what: "the answer holds no webhook".to_owned(),
    }
}

pub async fn run(cmd: WebhookCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    // Read files before connecting, so a bad one is reported first.
    let (secret, pattern) = match &cmd {
        WebhookCommand::Create {
            secret_file,
            pattern,
            pattern_file,
            ..
        } => {
            let pattern = match (pattern, pattern_file) {
                (Some(p), _) => p.clone(),
                (None, Some(path)) => {
                    std::fs::read_to_string(path).map_err(|source| CtlError::ReadFile {
                        path: path.clone(),
                        source,
                    })?
                }
                (None, None) => String::new(),
            };
            let stdin = std::io::stdin();
            if secret_file.is_none() && stdin.is_terminal() {
                ctx.note(
                    "Reading the webhook's signing secret from the terminal; end it with Ctrl-D.",
                )?;
            }
            (
                read_secret(secret_file.as_deref(), &mut stdin.lock())?,
                pattern,
            )
        }
        _ => (Vec::new(), String::new()),
    };
    let mut client = WebhookServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    match cmd {
        WebhookCommand::Ls => {
            let resp = client
                .list_webhooks(pb::ListWebhooksRequest {})
                .await
                .map_err(rpc)?
                .into_inner();
            let v = WebhooksView {
                webhooks: resp.webhooks.into_iter().map(Into::into).collect(),
            };
            ctx.emit(&v, view::list_table)
        }
        WebhookCommand::Create {
            name,
            url,
            from_oldest,
            start_after,
            ..
        } => {
            let resp = client
                .create_webhook(pb::CreateWebhookRequest {
                    name,
                    url,
                    event_pattern: pattern,
                    secret,
                    start_after_cursor: start_after.unwrap_or(0),
                    from_oldest,
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = WebhookView::from(resp.webhook.ok_or_else(no_webhook)?);
            ctx.emit(&v, view::create_sentence)
        }
        WebhookCommand::Describe { name } => {
            let resp = client
                .describe_webhook(pb::DescribeWebhookRequest { name })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = WebhookView::from(resp.webhook.ok_or_else(no_webhook)?);
            ctx.emit(&v, view::describe_text)
        }
        WebhookCommand::Rm { name } => {
            let resp = client
                .delete_webhook(pb::DeleteWebhookRequest { name })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = WebhookView::from(resp.webhook.ok_or_else(no_webhook)?);
            ctx.emit(&v, view::rm_sentence)
        }
        WebhookCommand::Deadletters { name } => {
            let resp = client
                .list_dead_letters(pb::ListDeadLettersRequest { name })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = DeadLettersView {
                dead_letters: resp.dead_letters.into_iter().map(Into::into).collect(),
            };
            ctx.emit(&v, view::dead_letters_table)
        }
        WebhookCommand::Redrive { name, cursors } => {
            let resp = client
                .redrive_dead_letters(pb::RedriveDeadLettersRequest {
                    name: name.clone(),
                    cursors,
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = serde_json::json!({"name": name, "redriven": resp.redriven});
            ctx.emit(&v, |_| {
                format!(
                    "webhook {name}: {} dead letters queued for delivery\n",
                    resp.redriven
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_from_stdin_lose_one_newline_and_empty_ones_are_refused() {
        assert_eq!(
            read_secret(None, &mut &b"0123456789abcdef\n"[..]).unwrap(),
            b"0123456789abcdef"
        );
        let e = read_secret(None, &mut &b"\n"[..]).unwrap_err();
        assert!(e.render().contains("is empty"), "{}", e.render());
    }
}
