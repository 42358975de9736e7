//! `berthctl`: the operators' command line for Berth.
//!
//! This file only parses the command line, runs the command on a
//! single-threaded runtime and turns the outcome into an exit code; the
//! commands live in `commands/`, what they print in `views/` and `output`.

mod cli;
mod client;
mod commands;
mod config;
mod env;
mod error;
mod output;
mod views;

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use crate::error::CtlError;

fn main() -> ExitCode {
    // `berthctl __generate-docs DIR`: man pages and completions (packaging).
    if let Some(code) = berth_clidoc::generate_if_asked::<cli::Cli>("1") {
        return code;
    }
    // clap exits by itself: 0 for --help/--version, 2 for usage errors.
    let cli = cli::Cli::parse();
    let env = env::Env::from_process();
    match run(cli, &env) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast::<CtlError>() {
            // A reader that went away (`berthctl ... | head -1`) is not an error.
            Ok(CtlError::Output(io)) if io.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            // `task exec`: the remote command's own code, and its own words.
            Ok(CtlError::RemoteExit { code }) => ExitCode::from(code),
            Ok(e) => {
                let _ = writeln!(io::stderr(), "{}", e.render());
                ExitCode::from(e.exit_code())
            }
            Err(other) => {
                let _ = writeln!(io::stderr(), "error: {other:#}");
                ExitCode::from(error::EXIT_ERROR)
            }
        },
    }
}

fn run(cli: cli::Cli, env: &env::Env) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    runtime.block_on(commands::run(cli, env, &mut out, &mut err))?;
    Ok(())
}
