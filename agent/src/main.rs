//! The `berth-agent` binary: parses the command line, loads the
//! configuration, sets up logging and signals, and hands over to
//! [`berth_agent::run`].

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_agent::config::{self, LogFormat};
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "berth-agent", version = berth_proto::VERSION, about = "Berth's host agent")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Hold the session with the scheduler and run tasks (the default).
    Run(RunArgs),
    /// Join a cluster with an activation: fetch and pin the cluster CA, make
    /// this host's key, and get its certificate (once per host).
    Register(RegisterCli),
    /// Join this host in one command: check containerd, register, write
    /// agent.toml, start berth-agent.service and wait until it connects.
    Join(Box<JoinCli>),
    /// Print the agent's version.
    Version,
}

/// What `berthctl activation create` printed, for `register` and `join`.
#[derive(Debug, Args)]
struct ActivationArgs {
    /// The activation id `berthctl activation create` printed.
    #[arg(long, value_name = "ID", env = "BERTH_ACTIVATION_ID")]
    activation_id: String,
    /// The activation code `berthctl activation create` printed (once).
    #[arg(
        long,
        value_name = "CODE",
        env = "BERTH_ACTIVATION_CODE",
        hide_env_values = true
    )]
    activation_code: String,
    /// The cluster CA's fingerprint (sha256:<hex>) as the scheduler printed it.
    #[arg(long, value_name = "SHA256", env = "BERTH_CA_FINGERPRINT")]
    ca_fingerprint: String,
}

#[derive(Debug, Args)]
struct RegisterCli {
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    activation: ActivationArgs,
}

#[derive(Debug, Args)]
struct JoinCli {
    /// The scheduler's endpoint, e.g. https://scheduler:7400.
    #[arg(long, value_name = "URL")]
    scheduler: String,
    #[command(flatten)]
    activation: ActivationArgs,
    /// Refuse an activation for another cluster (the activation decides the cluster).
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// The configuration file to write; its other settings are kept.
    #[arg(long, value_name = "PATH", env = "BERTH_CONFIG", default_value = config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Where the agent keeps its identity (written to the config file when given).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Register and write the configuration only; do not start the agent.
    #[arg(long)]
    no_start: bool,
    /// Replace this host's registration (another cluster CA, or deregistered).
    #[arg(long)]
    force: bool,
    /// How long to wait for the agent to connect.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The scheduler's endpoint, e.g. https://scheduler:7400 [env: BERTH_SCHEDULER].
    #[arg(long, value_name = "URL")]
    scheduler: Option<String>,
    /// The cluster to join [env: BERTH_CLUSTER] [default: default].
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// The configuration file [env: BERTH_CONFIG] [default: /etc/berth/agent.toml].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Where the agent keeps its identity [env: BERTH_STATE_DIR] [default: /var/lib/berth/agent].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The IPv4 address load balancers reach this host's task ports on
    /// [env: BERTH_ADVERTISE_ADDRESS] [default: the address the scheduler sees].
    #[arg(long, value_name = "IPV4")]
    advertise_address: Option<String>,
    /// Where Prometheus' `GET /metrics` listens, or `off`
    /// [env: BERTH_METRICS_LISTEN] [default: 127.0.0.1:9465].
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<String>,
}

/// `berth-agent log-driver --file F --max-bytes N --max-files K`, as
/// containerd's shim runs it: the shim builds argv from a URI query in map
/// order, so the words may come in any order.
fn log_driver_args(
    argv: &[String],
) -> Option<Result<berth_agent::logs::driver::DriverArgs, String>> {
    if !argv.iter().skip(1).any(|a| a == "log-driver") {
        return None;
    }
    let mut file = None;
    let mut max_bytes: u64 = 10 * 1024 * 1024;
    let mut max_files: u32 = 5;
    // containerd turns a valueless query key into the key plus an empty
    // argument: skip empties.
    let mut it = argv
        .iter()
        .skip(1)
        .filter(|a| *a != "log-driver" && !a.is_empty());
    while let Some(flag) = it.next() {
        let Some(value) = it.next() else {
            return Some(Err(format!("{flag} needs a value")));
        };
        match flag.as_str() {
            "--file" => file = Some(PathBuf::from(value)),
            "--max-bytes" => match value.parse() {
                Ok(v) => max_bytes = v,
                Err(_) => return Some(Err(format!("--max-bytes {value:?} is not a number"))),
            },
            "--max-files" => match value.parse() {
                Ok(v) => max_files = v,
                Err(_) => return Some(Err(format!("--max-files {value:?} is not a number"))),
            },
            other => return Some(Err(format!("unknown log-driver flag {other:?}"))),
        }
    }
    Some(match file {
        Some(file) => Ok(berth_agent::logs::driver::DriverArgs {
            file,
            max_bytes,
            max_files,
        }),
        None => Err("--file is required".to_owned()),
    })
}

fn main() -> ExitCode {
    // `berth-agent __generate-docs DIR`: man pages and completions (packaging).
    if let Some(code) = berth_clidoc::generate_if_asked::<Cli>("8") {
        return code;
    }
    let argv: Vec<String> = std::env::args().collect();
    if let Some(args) = log_driver_args(&argv) {
        return match args
            .map_err(|e| e.to_string())
            .and_then(|a| berth_agent::logs::driver::run(&a).map_err(|e| e.to_string()))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("berth-agent log-driver: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = Cli::parse();
    let (args, register) = match cli.command {
        Some(Command::Version) => {
            println!("berth-agent {}", berth_proto::VERSION);
            return ExitCode::SUCCESS;
        }
        Some(Command::Join(j)) => return join_host(*j),
        Some(Command::Run(args)) => (args, None),
        Some(Command::Register(r)) => (r.run, Some(r.activation)),
        None => (cli.run, None),
    };

    let flags = config::Flags {
        config: args.config,
        scheduler: args.scheduler,
        cluster: args.cluster,
        state_dir: args.state_dir,
        advertise_address: args.advertise_address,
        metrics_listen: args.metrics_listen,
    };
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let config = match config::load(&flags, &env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("berth-agent: invalid configuration: {e}");
            return ExitCode::from(berth_agent::EXIT_CONFIG);
        }
    };
    init_logging(config.log_format);

    if let Some(activation) = register {
        return register_host(config, activation);
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e
                .downcast_ref::<berth_agent::AgentError>()
                .map_or(1, berth_agent::AgentError::exit_code);
            tracing::error!(cause = %format!("{e:#}"), "berth-agent stopped");
            ExitCode::from(code)
        }
    }
}

fn run(config: berth_agent::Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the Tokio runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        berth_agent::run(config, shutdown).await?;
        Ok(())
    })
}

/// `berth-agent register`: prints the instance it became, or why not.
fn register_host(config: berth_agent::Config, activation: ActivationArgs) -> ExitCode {
    use berth_agent::register::{register, RegisterArgs};
    let probe = berth_agent::host::HostProbe::new(&config);
    let hostname = match probe.hostname() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("berth-agent register: {e}");
            return ExitCode::from(berth_agent::EXIT_CONFIG);
        }
    };
    let args = RegisterArgs {
        scheduler: config.scheduler.clone(),
        activation_id: activation.activation_id,
        activation_code: activation.activation_code,
        ca_fingerprint: activation.ca_fingerprint,
        hostname,
        cluster: None,
    };
    let store = berth_agent::identity::IdentityStore::new(config.identity_path());
    let outcome = tokio::runtime::Runtime::new()
        .map_err(|e| e.to_string())
        .map(|rt| rt.block_on(register(&args, &store)));
    match outcome {
        Ok(Ok(identity)) => {
            println!(
                "registered as container instance {} in cluster {}\n{}",
                identity.container_instance_id, identity.cluster, identity.container_instance_arn
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("berth-agent register: {e}");
            ExitCode::from(e.exit_code())
        }
        Err(e) => {
            eprintln!("berth-agent register: cannot start the Tokio runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `berth-agent join`: prints the instance it joined as, or why not, with
/// the exit code of `berth_agent::join::exit`.
fn join_host(cli: JoinCli) -> ExitCode {
    use berth_agent::join::{self, JoinArgs};
    init_logging(LogFormat::Text);
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let args = JoinArgs {
        systemctl: PathBuf::from(
            env.get(join::SYSTEMCTL_ENV)
                .map_or("systemctl", String::as_str),
        ),
        scheduler: cli.scheduler,
        cluster: cli.cluster,
        config_path: cli.config,
        state_dir: cli.state_dir,
        activation_id: cli.activation.activation_id,
        activation_code: cli.activation.activation_code,
        ca_fingerprint: cli.activation.ca_fingerprint,
        force: cli.force,
        start: !cli.no_start,
        timeout: cli.timeout,
    };
    let outcome = tokio::runtime::Runtime::new()
        .map_err(|e| e.to_string())
        .map(|rt| rt.block_on(join::join(&args, &env)));
    match outcome {
        Ok(Ok(joined)) => {
            print!("{}", joined.summary());
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("berth-agent join: {e}");
            ExitCode::from(e.exit_code())
        }
        Err(e) => {
            eprintln!("berth-agent join: cannot start the Tokio runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on the first SIGTERM or SIGINT.
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

/// Logs to stderr (journald picks it up), filtered by `BERTH_LOG` (tracing's
/// filter syntax, default `info`), as text or one JSON object per line.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env(berth_proto::LOG_FILTER_ENV)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Under systemd, journald stamps every line itself.
        LogFormat::Text if std::env::var_os("JOURNAL_STREAM").is_some() => {
            builder.without_time().with_ansi(false).init()
        }
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn log_driver_arguments_in_any_order_with_containerds_empty_values() {
        // As the shim builds them from the URI query (map order, "" after a
        // valueless key).
        let a = log_driver_args(&argv(&[
            "/usr/bin/berth-agent",
            "--max-files",
            "3",
            "log-driver",
            "",
            "--file",
            "/x/c.log",
            "--max-bytes",
            "1024",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(a.file, PathBuf::from("/x/c.log"));
        assert_eq!((a.max_bytes, a.max_files), (1024, 3));
        assert!(log_driver_args(&argv(&["berth-agent", "run"])).is_none());
        assert!(
            log_driver_args(&argv(&["berth-agent", "log-driver", "--bogus", "1"]))
                .unwrap()
                .is_err()
        );
    }
}
