//! `berthctl events`: the event log (`docs/events.md`), one line per event
//! (time, detail-type, resource, summary), or with `-o json` each event as
//! EventBridge delivers it, one JSON object per line. `-f` follows: after
//! the listing it watches, and after a broken connection it reconnects
//! and resumes after the last cursor printed, so nothing is lost or
//! printed twice. A cursor whose events were pruned ends it with an error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_proto::v1 as pb;
use berth_proto::v1::event_service_client::EventServiceClient;
use clap::Args;
use tonic::Code;

use super::Ctx;
use crate::error::CtlError;
use crate::output::OutputFormat;

/// How long `-f` waits before reconnecting, at first and at most.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// Events per ListEvents page.
const PAGE: u32 = 500;

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct EventsArgs {
    /// Follow: keep printing new events as they happen
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only events in this last stretch of time, e.g. 10m [default: 1h, or
    /// none with -f: from now]
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
    /// Only this detail-type, e.g. "ECS Task State Change"
    #[arg(long = "type", value_name = "DETAIL_TYPE")]
    pub detail_type: Option<String>,
    /// Only events of this cluster (name or ARN); default every cluster
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
}

fn ago(d: Duration) -> prost_types::Timestamp {
    let t = SystemTime::now()
        .checked_sub(d)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: t.as_secs() as i64,
        nanos: t.subsec_nanos() as i32,
    }
}

/// One event as printed: a line for people, or EventBridge's JSON.
pub fn line(e: &pb::Event, output: OutputFormat) -> String {
    match output {
        OutputFormat::Json => format!("{}\n", e.json),
        OutputFormat::Table => {
            let time = e
                .time
                .as_ref()
                .map(|t| {
                    let at = UNIX_EPOCH + Duration::from_secs(t.seconds.max(0) as u64);
                    humantime::format_rfc3339_seconds(at).to_string()
                })
                .unwrap_or_default();
            format!("{time}  {}  {}  {}\n", e.detail_type, e.resource, e.summary)
        }
    }
}

pub async fn run(args: EventsArgs, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let mut client = EventServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    let since = match (args.since, args.follow) {
        (Some(d), _) => Some(ago(d)),
        (None, false) => Some(ago(Duration::from_secs(3600))),
        (None, true) => None,
    };
    let filter = pb::EventFilter {
        cluster: args.cluster.clone().unwrap_or_default(),
        detail_type: args.detail_type.clone().unwrap_or_default(),
        since_time: since,
    };
    let mut cursor = 0;
    if since.is_none() {
        // From now: the newest cursor, so that a reconnect loses nothing.
        cursor = client
            .list_events(pb::ListEventsRequest {
                since_cursor: 0,
                filter: None,
                max_results: 1,
            })
            .await
            .map_err(&rpc)?
            .into_inner()
            .latest_cursor;
    } else {
        loop {
            let page = client
                .list_events(pb::ListEventsRequest {
                    since_cursor: cursor,
                    filter: Some(filter.clone()),
                    max_results: PAGE,
                })
                .await
                .map_err(&rpc)?
                .into_inner();
            for e in &page.events {
                ctx.write(&line(e, ctx.output))?;
            }
            cursor = page.next_cursor;
            if !page.more {
                break;
            }
        }
    }
    if !args.follow {
        return Ok(());
    }
    let mut wait = RETRY_FIRST;
    loop {
        let req = pb::WatchEventsRequest {
            since_cursor: cursor,
            filter: Some(filter.clone()),
            from_now: false,
        };
        let broken = match client.watch_events(req).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(e)) => {
                            cursor = e.cursor;
                            wait = RETRY_FIRST;
                            ctx.write(&line(&e, ctx.output))?;
                        }
                        Ok(None) => break "the scheduler ended the watch".to_owned(),
                        Err(s) if retryable(&s) => break s.message().to_owned(),
                        Err(s) => return Err(rpc(s)),
                    }
                }
            }
            Err(s) if retryable(&s) => s.message().to_owned(),
            Err(s) => return Err(rpc(s)),
        };
        ctx.note(&format!(
            "events: {broken}; resuming after cursor {cursor} in {}",
            humantime::format_duration(wait)
        ))?;
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_MAX);
    }
}

/// A broken connection or a restarting scheduler, not a refusal.
fn retryable(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_per_event_or_its_json() {
        let e = pb::Event {
            cursor: 7,
            detail_type: "ECS Task State Change".into(),
            time: Some(prost_types::Timestamp {
                seconds: 1_796_000_000,
                nanos: 0,
            }),
            resource: "arn:berth:ecs:local:000000000000:task/default/abc".into(),
            summary: "abc lastStatus=RUNNING desiredStatus=RUNNING".into(),
            json: r#"{"version":"0"}"#.into(),
        };
        expect_test::expect![[r#"
            2026-11-30T00:53:20Z  ECS Task State Change  arn:berth:ecs:local:000000000000:task/default/abc  abc lastStatus=RUNNING desiredStatus=RUNNING
        "#]]
        .assert_eq(&line(&e, OutputFormat::Table));
        assert_eq!(line(&e, OutputFormat::Json), "{\"version\":\"0\"}\n");
    }
}
