//! `berth-scheduler` binary: parse flags, load config, set up logging, bind,
//! and run until SIGTERM/SIGINT.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use berth_scheduler::config::{Config, LogFormat, Overrides};
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// mimalloc: with glibc's malloc a scheduler holding a million tasks spent
/// over a third of its time in `_int_malloc` (fragmentation); see
/// BENCHMARKS.md (berth-sim).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for bad configuration (EX_USAGE... sysexits' EX_CONFIG is 78,
/// but 64 is what operators' scripts commonly check).
const EXIT_CONFIG: u8 = 64;

#[derive(Debug, Parser)]
#[command(name = "berth-scheduler", version, about = "Berth control plane")]
struct Cli {
    /// Config file (TOML).
    #[arg(long, default_value = berth_scheduler::config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Directory of the sled store.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to serve the gRPC API on, e.g. 127.0.0.1:7400.
    #[arg(long)]
    listen: Option<String>,
    /// Address to serve the ECS API (AWS JSON 1.1, SigV4) on, or `off`;
    /// default the gRPC address with port 7443.
    #[arg(long)]
    ecs_api_listen: Option<String>,
    /// Address to serve service discovery by DNS (UDP and TCP) on, e.g.
    /// 10.0.0.1:53, or `off` (the default).
    #[arg(long)]
    dns_listen: Option<String>,
    /// Address to serve Prometheus' `GET /metrics` on, or `off`; default
    /// 127.0.0.1:9464.
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Without a command: serve.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Save, restore and inspect backups of the control plane (docs/backup.md)
    #[command(subcommand)]
    Snapshot(berth_scheduler::snapshot::cli::SnapshotCommand),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(berth_proto::LOG_FILTER_ENV)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Under systemd, journald stamps every line itself.
        LogFormat::Text if std::env::var_os("JOURNAL_STREAM").is_some() => {
            builder.without_time().with_ansi(false).init()
        }
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
    }
    token.cancel();
}

#[tokio::main]
async fn main() -> ExitCode {
    // `berth-scheduler __generate-docs DIR`: man pages and completions (packaging).
    if let Some(code) = berth_clidoc::generate_if_asked::<Cli>("8") {
        return code;
    }
    let cli = Cli::parse();
    if let Some(Command::Snapshot(cmd)) = cli.command {
        return berth_scheduler::snapshot::cli::main(cmd).await;
    }
    let explicit = std::env::args().any(|a| a == "--config" || a.starts_with("--config="));
    let flags = Overrides {
        config: explicit.then(|| cli.config.clone()),
        listen: cli.listen,
        data_dir: cli.data_dir,
        ecs_api_listen: cli.ecs_api_listen,
        dns_listen: cli.dns_listen,
        metrics_listen: cli.metrics_listen,
    };
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = match Config::load(&flags, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-scheduler: invalid configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_logging(config.log_format);
    berth_proto::trust::install_crypto_provider();
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %config.listen, cause = %e, "cannot bind");
            return ExitCode::FAILURE;
        }
    };
    let ecs_listener = match config.ecs_api.listen {
        None => None,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!(listen = %addr, cause = %e, "cannot bind the ECS API (set ecs_api.listen, or \"off\")");
                return ExitCode::FAILURE;
            }
        },
    };
    let metrics_listener = match berth_scheduler::server::bind_metrics(&config).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(cause = %e, "set metrics.listen (BERTH_METRICS_LISTEN), or \"off\"");
            return ExitCode::FAILURE;
        }
    };
    let token = CancellationToken::new();
    tokio::spawn(shutdown_signal(token.clone()));
    match berth_scheduler::server::run_with_metrics(
        config,
        listener,
        ecs_listener,
        metrics_listener,
        token,
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(cause = %e, "berth-scheduler failed");
            ExitCode::FAILURE
        }
    }
}
