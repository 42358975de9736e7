//! `berthctl schedule create|enable|disable|rm|ls|describe`: scheduled
//! tasks (EventBridge Scheduler with an ECS RunTask target,
//! `docs/schedules.md`).

use std::time::Duration;

use berth_proto::v1 as pb;
use berth_proto::v1::schedule_service_client::ScheduleServiceClient;
use clap::Subcommand;
use prost_types::Timestamp;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::task::parse_overrides;
use super::{ClusterArg, Ctx};
use crate::error::CtlError;
use crate::views::schedule::{self as view, ScheduleView, SchedulesView};

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create a schedule that runs a task definition (RunTask, startedBy NAME) at each fire
    Create {
        /// 1–64 letters, digits, `-`, `_`, `.`
        name: String,
        /// at(yyyy-mm-ddThh:mm:ss), rate(N minutes|hours|days) or
        /// cron(minutes hours day-of-month month day-of-week year)
        #[arg(long, value_name = "EXPRESSION")]
        expression: String,
        /// IANA time zone the expression is read in [default: UTC]
        #[arg(long, value_name = "ZONE")]
        timezone: Option<String>,
        /// FAMILY (the latest ACTIVE revision at each fire) or FAMILY:REVISION
        #[arg(long = "taskdef", value_name = "FAMILY[:REVISION]")]
        task_definition: String,
        /// Tasks per fire
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
        count: u16,
        /// ECS's overrides as JSON, as `task run --overrides`
        #[arg(long, value_name = "JSON", value_parser = parse_overrides)]
        overrides: Option<pb::TaskOverride>,
        /// Run each fire within this window after its time (e.g. 5m; whole minutes) [default: off]
        #[arg(long = "flexible-window", value_name = "DURATION", value_parser = humantime::parse_duration)]
        flexible_window: Option<Duration>,
        /// No fire before this time (RFC 3339)
        #[arg(long = "start-date", value_name = "TIME", value_parser = parse_time)]
        start_date: Option<Timestamp>,
        /// No fire after this time (RFC 3339)
        #[arg(long = "end-date", value_name = "TIME", value_parser = parse_time)]
        end_date: Option<Timestamp>,
        /// Create it DISABLED
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Enable a schedule (fires missed while disabled are not made up)
    Enable { name: String },
    /// Disable a schedule
    Disable { name: String },
    /// Delete a schedule (tasks it started keep running)
    Rm { name: String },
    /// List schedules: expression, state, last and next fire
    Ls,
    /// A schedule with its last fires and the tasks each started
    Describe { name: String },
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time (2027-01-31T18:00:00Z): {e}"))?;
    Ok(Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    })
}

fn window_minutes(d: Option<Duration>) -> Result<i32, CtlError> {
    let Some(d) = d else { return Ok(0) };
    if d.as_secs() % 60 != 0 || d.subsec_nanos() != 0 {
        return Err(CtlError::InvalidInput {
            message: format!(
                "--flexible-window {} is not whole minutes",
                humantime::format_duration(d)
            ),
        });
    }
    Ok((d.as_secs() / 60).min(i32::MAX as u64) as i32)
}

pub async fn run(cmd: ScheduleCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let mut client = ScheduleServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    let one = |r: pb::ScheduleResponse| -> Result<ScheduleView, CtlError> {
        r.schedule
            .map(ScheduleView::from)
            .ok_or(CtlError::BadResponse {
                what: "the answer holds no schedule".to_owned(),
            })
    };
    match cmd {
        ScheduleCommand::Create {
            name,
            expression,
            timezone,
            task_definition,
            count,
            overrides,
            flexible_window,
            start_date,
            end_date,
            disabled,
            cluster,
        } => {
            let req = pb::CreateScheduleRequest {
                name,
                expression,
                timezone: timezone.unwrap_or_default(),
                target: Some(pb::ScheduleTarget {
                    cluster: ctx.cluster(&cluster),
                    task_definition,
                    count: i32::from(count),
                    overrides,
                    ..Default::default()
                }),
                flexible_window_minutes: window_minutes(flexible_window)?,
                start_date,
                end_date,
                state: if disabled { "DISABLED" } else { "ENABLED" }.to_owned(),
            };
            let v = one(client.create_schedule(req).await.map_err(rpc)?.into_inner())?;
            ctx.emit(&v, view::created_sentence)
        }
        ScheduleCommand::Enable { name } => {
            let req = pb::UpdateScheduleStateRequest {
                name,
                state: "ENABLED".into(),
            };
            let v = one(client
                .update_schedule_state(req)
                .await
                .map_err(rpc)?
                .into_inner())?;
            ctx.emit(&v, view::state_sentence)
        }
        ScheduleCommand::Disable { name } => {
            let req = pb::UpdateScheduleStateRequest {
                name,
                state: "DISABLED".into(),
            };
            let v = one(client
                .update_schedule_state(req)
                .await
                .map_err(rpc)?
                .into_inner())?;
            ctx.emit(&v, view::state_sentence)
        }
        ScheduleCommand::Rm { name } => {
            let v = one(client
                .delete_schedule(pb::DeleteScheduleRequest { name })
                .await
                .map_err(rpc)?
                .into_inner())?;
            ctx.emit(&v, view::rm_sentence)
        }
        ScheduleCommand::Ls => {
            let r = client
                .list_schedules(pb::ListSchedulesRequest::default())
                .await
                .map_err(rpc)?
                .into_inner();
            let v = SchedulesView {
                schedules: r.schedules.into_iter().map(Into::into).collect(),
            };
            ctx.emit(&v, view::list_table)
        }
        ScheduleCommand::Describe { name } => {
            let v = one(client
                .get_schedule(pb::GetScheduleRequest { name })
                .await
                .map_err(rpc)?
                .into_inner())?;
            ctx.emit(&v, view::describe)
        }
    }
}
