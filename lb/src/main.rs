//! The `berth-lb` binary: flags, logging and signals around the library.
//! `berth-lb haproxy` loads `/etc/berth/lb.toml` (exit 64 when it is
//! unusable, before anything starts) and runs [`berth_lb::run`] until
//! SIGTERM or SIGINT.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use berth_lb::config::{self, Config, Mode};

/// Exit code for an unusable configuration (sysexits' EX_CONFIG is 78;
/// Berth's daemons use EX_USAGE, 64, as systemd's RestartPreventExitStatus).
const EXIT_CONFIG: u8 = 64;

/// Keeps a load balancer equal to the healthy targets of Berth's target groups.
#[derive(Debug, Parser)]
#[command(name = "berth-lb", version = berth_proto::VERSION)]
struct Cli {
    /// The config file.
    #[arg(long, global = true, default_value = config::DEFAULT_PATH, value_name = "PATH")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run HAProxy (or drive a running one) from the config's listeners and the scheduler's
    /// targets.
    Haproxy {
        /// Drive an HAProxy someone else runs (e.g. systemd's haproxy.service on the generated
        /// config) through its sockets instead of starting one (as `haproxy.mode = "external"`).
        #[arg(long)]
        external: bool,
        /// Print the generated haproxy.cfg and exit.
        #[arg(long)]
        print_config: bool,
    },
}

fn main() -> ExitCode {
    if let Some(code) = berth_clidoc::generate_if_asked::<Cli>("8") {
        return code;
    }
    let cli = Cli::parse();
    init_logging();
    let Command::Haproxy {
        external,
        print_config,
    } = cli.command;
    let token = std::env::var(config::TOKEN_ENV).ok();
    let mut config = match Config::load(&cli.config, token) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-lb: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if external {
        config.haproxy.mode = Mode::External;
    }
    if print_config {
        let layout = berth_lb::render::Layout::initial(&config);
        print!("{}", berth_lb::render::render(&config, &layout));
        return ExitCode::SUCCESS;
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(cause = %format!("{e:#}"), "berth-lb stops");
            eprintln!("berth-lb: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        berth_lb::run(config, shutdown).await?;
        Ok(())
    })
}

fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "received"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "received"),
        }
    })
}

/// Logs to stderr (journald picks it up), filtered by `BERTH_LOG`.
fn init_logging() {
    let filter = EnvFilter::try_from_env(berth_proto::LOG_FILTER_ENV)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}
