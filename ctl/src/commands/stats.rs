//! `berthctl task stats TASK [--follow]` and `berthctl top`: the agents'
//! latest readings of running tasks through `TaskStatsService`
//! (`docs/stats.md`). `top` redraws in place every `--interval` (the
//! screen is cleared first), or prints once with `--once`.

use std::time::Duration;

use berth_proto::v1 as pb;
use berth_proto::v1::task_stats_service_client::TaskStatsServiceClient;
use clap::{Args, ValueEnum};

use super::{ClusterArg, Ctx};
use crate::error::CtlError;
use crate::output::{self, OutputFormat};
use crate::views::stats::{stats_table, top_table, TaskStatsView};

/// Clears the terminal and puts the cursor home.
const CLEAR: &str = "\x1b[H\x1b[2J";

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct StatsArgs {
    /// Task id or ARN
    #[arg(value_name = "ID")]
    pub id: String,
    /// Keep printing readings as they come (the task's agent samples every second meanwhile)
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[command(flatten)]
    pub cluster: ClusterArg,
}

/// What `top` sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    Cpu,
    Memory,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct TopArgs {
    /// Only this service's tasks (name or ARN)
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Largest first by CPU or by memory
    #[arg(long, value_enum, default_value_t = SortKey::Cpu)]
    pub sort: SortKey,
    /// At most N tasks (0: all)
    #[arg(short = 'n', long = "limit", value_name = "N", default_value_t = 20)]
    pub limit: u32,
    /// Print once and exit (for scripts)
    #[arg(long)]
    pub once: bool,
    /// How often to redraw
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    #[command(flatten)]
    pub cluster: ClusterArg,
}

pub async fn task_stats(args: StatsArgs, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let rpc = ctx.rpc_error();
    let mut client = TaskStatsServiceClient::new(ctx.channel().await?);
    let req = pb::GetTaskStatsRequest {
        cluster: ctx.cluster(&args.cluster),
        task: args.id,
    };
    if !args.follow {
        let stats = client
            .get_task_stats(req)
            .await
            .map_err(&rpc)?
            .into_inner()
            .stats
            .ok_or_else(|| CtlError::BadResponse {
                what: "the answer holds no stats".to_owned(),
            })?;
        let v = TaskStatsView::from(stats);
        return ctx.emit(&v, |v| stats_table(std::slice::from_ref(v)));
    }
    let mut stream = client
        .watch_task_stats(req)
        .await
        .map_err(&rpc)?
        .into_inner();
    while let Some(m) = stream.message().await.map_err(&rpc)? {
        let Some(stats) = m.stats else { continue };
        let v = TaskStatsView::from(stats);
        let text = match ctx.output {
            OutputFormat::Table => format!("{CLEAR}{}", stats_table(std::slice::from_ref(&v))),
            // One object per line, for `jq`.
            OutputFormat::Json => {
                let mut line = serde_json::to_string(&v).unwrap_or_default();
                line.push('\n');
                line
            }
        };
        ctx.write(&text)?;
    }
    ctx.note("the task is no longer running")
}

pub async fn top(args: TopArgs, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let rpc = ctx.rpc_error();
    let mut client = TaskStatsServiceClient::new(ctx.channel().await?);
    let cluster = ctx.cluster(&args.cluster);
    let req = pb::ListTaskStatsRequest {
        cluster: cluster.clone(),
        service: args.service.clone().unwrap_or_default(),
        sort: match args.sort {
            SortKey::Cpu => "cpu",
            SortKey::Memory => "memory",
        }
        .to_owned(),
        limit: args.limit,
    };
    loop {
        let tasks: Vec<TaskStatsView> = client
            .list_task_stats(req.clone())
            .await
            .map_err(&rpc)?
            .into_inner()
            .tasks
            .into_iter()
            .map(TaskStatsView::from)
            .collect();
        if args.once {
            return ctx.emit(&tasks, |t| top_table(t));
        }
        let text = match ctx.output {
            OutputFormat::Table => format!(
                "{CLEAR}berthctl top: cluster {cluster}{}, {} tasks, by {}, every {}\n\n{}",
                args.service
                    .as_deref()
                    .map(|s| format!(", service {s}"))
                    .unwrap_or_default(),
                tasks.len(),
                req.sort,
                humantime::format_duration(args.interval),
                top_table(&tasks)
            ),
            OutputFormat::Json => output::json(&tasks),
        };
        ctx.write(&text)?;
        tokio::time::sleep(args.interval).await;
    }
}
