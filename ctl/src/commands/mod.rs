//! One module per subcommand group, each with its clap arguments and its
//! `run`: call the scheduler, turn the answer into a view, emit it.
//!
//! A new group (`task`, `service`, ...) is a new file here, a variant in
//! [`crate::cli::Command`] and a line in [`run`].

pub mod activation;
pub mod audit;
pub mod cluster;
pub mod completion;
pub mod events;
pub mod instance;
pub mod login;
pub mod schedule;
pub mod secret;
pub mod service;
pub mod service_autoscaling;
pub mod snapshot;
pub mod stats;
pub mod tag;
pub mod targetgroup;
pub mod task;
pub mod task_exec;
pub mod taskdef;
pub mod token;
pub mod version;
pub mod webhook;

#[cfg(test)]
mod tests;

use std::io::Write;

use clap::Args;
use serde::Serialize;

use crate::cli::{Cli, Command};
use crate::client::{self, Conn, Settings};
use crate::env::Env;
use crate::error::CtlError;
use crate::output::{self, OutputFormat};

/// Sanity bound on the pages of one listing, should a scheduler keep
/// returning tokens; each list command follows `nextToken` to the end.
pub(crate) const MAX_PAGES: usize = 10_000;

/// `--cluster`, for the commands that work inside one cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct ClusterArg {
    /// Cluster name or ARN [env: BERTH_CLUSTER, config `cluster`; default: default]
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
}

/// What a command needs: the resolved settings, the output format, a
/// connection made on first use, and where to write.
pub struct Ctx<'a> {
    pub settings: Settings,
    pub output: OutputFormat,
    channel: Option<Conn>,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

impl<'a> Ctx<'a> {
    pub fn new(
        settings: Settings,
        output: OutputFormat,
        out: &'a mut dyn Write,
        err: &'a mut dyn Write,
    ) -> Self {
        Self {
            settings,
            output,
            channel: None,
            out,
            err,
        }
    }

    /// The connection to the scheduler, made on first use; every call on
    /// it carries the operator token.
    pub async fn channel(&mut self) -> Result<Conn, CtlError> {
        if let Some(c) = &self.channel {
            return Ok(c.clone());
        }
        let ca = self.settings.ca_pem()?;
        let c =
            client::connect(&self.settings.target(), &ca, self.settings.token.as_deref()).await?;
        self.channel = Some(c.clone());
        Ok(c)
    }

    /// The cluster a command works on.
    pub fn cluster(&self, arg: &ClusterArg) -> String {
        self.settings.cluster(arg.cluster.as_deref())
    }

    /// Maps a failed call's status to an error that names the endpoint.
    pub fn rpc_error(&self) -> impl Fn(tonic::Status) -> CtlError + 'static {
        let target = self.settings.target();
        move |status| CtlError::from_status(status, &target)
    }

    /// Prints `view` as JSON or, in table mode, as `table` renders it.
    pub fn emit<T: Serialize>(
        &mut self,
        view: &T,
        table: impl FnOnce(&T) -> String,
    ) -> Result<(), CtlError> {
        let text = match self.output {
            OutputFormat::Json => output::json(view),
            OutputFormat::Table => table(view),
        };
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(CtlError::Output)
    }

    /// Raw text on stdout, flushed (streamed output such as logs).
    pub fn write(&mut self, text: &str) -> Result<(), CtlError> {
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(CtlError::Output)
    }

    /// Raw bytes on stdout or stderr, flushed (an exec's output).
    pub fn write_bytes(&mut self, stderr: bool, bytes: &[u8]) -> Result<(), CtlError> {
        let w: &mut dyn Write = if stderr { self.err } else { self.out };
        w.write_all(bytes)
            .and_then(|()| w.flush())
            .map_err(CtlError::Output)
    }

    /// One line on stderr (warnings, notes), whatever the output format.
    pub fn note(&mut self, line: &str) -> Result<(), CtlError> {
        writeln!(self.err, "{line}").map_err(CtlError::Output)
    }
}

/// Runs a parsed command line.
pub async fn run(
    cli: Cli,
    env: &Env,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CtlError> {
    // Works offline, before any setting is read (no token, no config file).
    if let Command::Completion(args) = &cli.command {
        return completion::run(args, out);
    }
    let settings = Settings::load(
        cli.global.endpoint.as_deref(),
        cli.global.ca_cert.as_deref(),
        cli.global.token.as_deref(),
        env,
    )?;
    let mut ctx = Ctx::new(settings, cli.global.output, out, err);
    match cli.command {
        Command::Activation(cmd) => activation::run(cmd, &mut ctx).await,
        Command::Cluster(cmd) => cluster::run(cmd, &mut ctx).await,
        Command::Taskdef(cmd) => taskdef::run(cmd, &mut ctx).await,
        Command::Instance(cmd) => instance::run(cmd, &mut ctx).await,
        Command::Task(cmd) => task::run(cmd, &mut ctx).await,
        Command::Service(cmd) => service::run(cmd, &mut ctx).await,
        Command::Targetgroup(cmd) => targetgroup::run(cmd, &mut ctx).await,
        Command::Secret(cmd) => secret::run(cmd, &mut ctx).await,
        Command::Webhook(cmd) => webhook::run(cmd, &mut ctx).await,
        Command::Schedule(cmd) => schedule::run(cmd, &mut ctx).await,
        Command::Tag(cmd) => tag::run(cmd, &mut ctx).await,
        Command::Top(args) => stats::top(args, &mut ctx).await,
        Command::Version => version::run(&mut ctx).await,
        Command::Login(args) => login::run(args, &mut ctx).await,
        Command::Token(cmd) => token::run(cmd, &mut ctx).await,
        Command::Audit(cmd) => audit::run(cmd, &mut ctx).await,
        Command::Events(args) => events::run(args, &mut ctx).await,
        Command::Snapshot(cmd) => snapshot::run(cmd, &mut ctx).await,
        Command::Completion(args) => completion::run(&args, ctx.out),
    }
}
