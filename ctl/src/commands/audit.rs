//! `berthctl audit ls`: the audit log of mutating calls, oldest first.

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
        /// At most this many, the most recent [default: 100; at most 1000]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: Option<u16>,
        /// Only this method (`CreateCluster` or its full path)
        #[arg(long)]
        method: Option<String>,
        /// Only calls made with this token (id or name)
        #[arg(long, value_name = "TOKEN")]
        who: Option<String>,
    },
}

pub async fn run(cmd: AuditCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let mut client = AuditServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    let AuditCommand::Ls {
        since,
        limit,
        method,
        who,
    } = cmd;
    let since = since
        .and_then(|d| SystemTime::now().checked_sub(d))
        .map(|t| {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            prost_types::Timestamp {
                seconds: d.as_secs() as i64,
                nanos: d.subsec_nanos() as i32,
            }
        });
    let events = client
        .list_audit_events(pb::ListAuditEventsRequest {
            since,
            limit: limit.map_or(0, i32::from),
            method: method.unwrap_or_default(),
            who: who.unwrap_or_default(),
        })
        .await
        .map_err(rpc)?
        .into_inner()
        .events;
    let v = AuditEventsView {
        events: events.into_iter().map(Into::into).collect(),
    };
    ctx.emit(&v, view::audit_table)
}
