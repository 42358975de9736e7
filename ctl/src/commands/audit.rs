//! `berthctl audit ls`: the audit log of mutating calls, oldest first. It
//! follows `next_token` back from the most recent page until it has
//! `--limit` events (or all of them with `--all`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_proto::v1 as pb;
use berth_proto::v1::audit_service_client::AuditServiceClient;
use clap::Subcommand;

use super::Ctx;
use crate::error::CtlError;
use crate::views::auth::{self as view, AuditEventsView};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events: who called what, when, and how it ended
    Ls {
        /// Only events in this last stretch of time, e.g. 1h
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        /// At most this many, the most recent [default: 100]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "all")]
        limit: Option<u32>,
        /// Every event that matches (as far back as retention keeps them)
        #[arg(long)]
        all: bool,
        /// Only this method (`CreateCluster` or its full path)
        #[arg(long)]
        method: Option<String>,
        /// Only calls made with this token (id or name)
        #[arg(long, value_name = "TOKEN")]
        who: Option<String>,
    },
}

/// Events listed when neither `--limit` nor `--all` is given.
const DEFAULT_LIMIT: usize = 100;
/// The largest page the scheduler returns.
const PAGE: usize = 1000;

pub async fn run(cmd: AuditCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let mut client = AuditServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    let AuditCommand::Ls {
        since,
        limit,
        all,
        method,
        who,
    } = cmd;
    let wanted = if all {
        usize::MAX
    } else {
        limit.map_or(DEFAULT_LIMIT, |n| n as usize)
    };
    let since = since
        .and_then(|d| SystemTime::now().checked_sub(d))
        .map(|t| {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            prost_types::Timestamp {
                seconds: d.as_secs() as i64,
                nanos: d.subsec_nanos() as i32,
            }
        });
    // Pages come newest first; each page is oldest first.
    let mut pages: Vec<Vec<pb::AuditEvent>> = Vec::new();
    let mut got = 0usize;
    let mut next_token = String::new();
    while got < wanted {
        let page = client
            .list_audit_events(pb::ListAuditEventsRequest {
                since,
                limit: (wanted - got).min(PAGE) as i32,
                method: method.clone().unwrap_or_default(),
                who: who.clone().unwrap_or_default(),
                next_token: next_token.clone(),
            })
            .await
            .map_err(&rpc)?
            .into_inner();
        got += page.events.len();
        pages.push(page.events);
        if page.next_token.is_empty() {
            break;
        }
        next_token = page.next_token;
    }
    let events: Vec<pb::AuditEvent> = pages.into_iter().rev().flatten().collect();
    let v = AuditEventsView {
        events: events.into_iter().map(Into::into).collect(),
    };
    ctx.emit(&v, view::audit_table)
}
