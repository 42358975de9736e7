//! `berthctl task exec TASK [--container C] [-i] [-t] -- CMD…`: ECS Exec.
//! Runs a process in a task's running container through the scheduler and
//! the task's agent (`ExecService.ExecuteCommand`), and exits with its exit
//! code.
//!
//! - `-i` sends stdin (its end of file closes the process's stdin).
//! - `-t` runs the process under a pseudo-terminal and, when stdin is a
//!   terminal, puts it in raw mode (restored on every way out: the guard's
//!   `Drop`), sends its size first and on every SIGWINCH.
//!
//! Stdin is read on a thread of its own, so that a blocked read never holds
//! up the end of the command; every queue towards the scheduler is bounded.

use std::io::Read as _;

use berth_proto::v1 as pb;
use berth_proto::v1::exec_service_client::ExecServiceClient;
use tokio::sync::mpsc;

use super::{ClusterArg, Ctx};
use crate::error::CtlError;

/// Stdin bytes sent per message.
const STDIN_CHUNK: usize = 16 * 1024;
/// Messages that may wait for the scheduler.
const REQUEST_BUFFER: usize = 16;

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Task id or ARN
    #[arg(value_name = "TASK")]
    pub id: String,
    /// The container [default: the task's only container]
    #[arg(long, short = 'c')]
    pub container: Option<String>,
    /// Pass stdin to the command
    #[arg(long, short = 'i')]
    pub interactive: bool,
    /// Run the command under a pseudo-terminal (raw local terminal, resizes follow)
    #[arg(long, short = 't')]
    pub tty: bool,
    #[command(flatten)]
    pub cluster: ClusterArg,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The local terminal in raw mode while this lives.
struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    /// Raw mode on stdin if it is a terminal.
    fn enter() -> Option<Self> {
        let stdin = rustix::stdio::stdin();
        let saved = rustix::termios::tcgetattr(stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            rustix::stdio::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// The local terminal's size, if stdin or stdout is one.
fn term_size() -> Option<pb::TerminalSize> {
    let ws = rustix::termios::tcgetwinsize(rustix::stdio::stdout())
        .or_else(|_| rustix::termios::tcgetwinsize(rustix::stdio::stdin()))
        .ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then(|| pb::TerminalSize {
        width: u32::from(ws.ws_col),
        height: u32::from(ws.ws_row),
    })
}

fn request(msg: pb::exec_request::Msg) -> pb::ExecRequest {
    pb::ExecRequest { msg: Some(msg) }
}

/// The first message of a session.
pub fn start_request(
    args: &ExecArgs,
    cluster: String,
    size: Option<pb::TerminalSize>,
) -> pb::ExecRequest {
    request(pb::exec_request::Msg::Start(pb::ExecStartRequest {
        cluster,
        task: args.id.clone(),
        container: args.container.clone().unwrap_or_default(),
        command: args.command.clone(),
        interactive: args.interactive,
        tty: args.tty,
        size: if args.tty { size } else { None },
    }))
}

/// Reads stdin on a thread until end of file (then closes the remote
/// stdin) or until the session is over.
fn pump_stdin(tx: mpsc::Sender<pb::ExecRequest>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; STDIN_CHUNK];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(request(pb::exec_request::Msg::CloseStdin(true)));
                    return;
                }
                Ok(n) => {
                    let m = request(pb::exec_request::Msg::Stdin(buf[..n].to_vec()));
                    if tx.blocking_send(m).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// Sends the terminal's size on every SIGWINCH while the session lasts.
fn pump_resizes(tx: mpsc::Sender<pb::ExecRequest>) -> Result<(), CtlError> {
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .map_err(CtlError::Output)?;
    tokio::spawn(async move {
        while winch.recv().await.is_some() {
            if let Some(size) = term_size() {
                if tx
                    .send(request(pb::exec_request::Msg::Resize(size)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    Ok(())
}

/// The exit status berthctl ends with for a remote exit code (a code
/// outside 0–255 becomes 255).
pub fn exit_status(code: i32) -> Result<(), CtlError> {
    match code {
        0 => Ok(()),
        c => Err(CtlError::RemoteExit {
            code: u8::try_from(c).unwrap_or(255),
        }),
    }
}

pub async fn run(args: ExecArgs, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let mut client = ExecServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    let cluster = ctx.cluster(&args.cluster);
    let (tx, rx) = mpsc::channel(REQUEST_BUFFER);
    let size = term_size();
    tx.send(start_request(&args, cluster, size))
        .await
        .map_err(|_| CtlError::BadResponse {
            what: "the request stream closed".into(),
        })?;
    if args.interactive {
        pump_stdin(tx.clone());
    }
    if args.tty {
        pump_resizes(tx.clone())?;
    }
    drop(tx);
    // Restored when this returns, whichever way.
    let _raw = if args.tty { RawMode::enter() } else { None };
    let mut answers = client
        .execute_command(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(&rpc)?
        .into_inner();
    loop {
        let m = answers.message().await.map_err(&rpc)?;
        match m.and_then(|m| m.msg) {
            Some(pb::exec_response::Msg::Stdout(b)) => ctx.write_bytes(false, &b)?,
            Some(pb::exec_response::Msg::Stderr(b)) => ctx.write_bytes(true, &b)?,
            Some(pb::exec_response::Msg::ExitCode(code)) => {
                drop(_raw);
                return exit_status(code);
            }
            None => {
                return Err(CtlError::BadResponse {
                    what: "the exec session ended without an exit code".into(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_exit_codes_become_berthctls() {
        assert!(exit_status(0).is_ok());
        assert!(matches!(
            exit_status(3),
            Err(CtlError::RemoteExit { code: 3 })
        ));
        assert!(matches!(
            exit_status(-1),
            Err(CtlError::RemoteExit { code: 255 })
        ));
        assert_eq!(exit_status(137).unwrap_err().exit_code(), 137);
    }

    #[test]
    fn the_start_carries_the_size_only_with_a_tty() {
        let size = Some(pb::TerminalSize {
            width: 80,
            height: 24,
        });
        let mut args = ExecArgs {
            id: "abc".into(),
            container: None,
            interactive: true,
            tty: false,
            cluster: ClusterArg { cluster: None },
            command: vec!["sh".into()],
        };
        let start = |args: &ExecArgs| match start_request(args, "prod".into(), size).msg {
            Some(pb::exec_request::Msg::Start(s)) => s,
            other => panic!("{other:?}"),
        };
        let s = start(&args);
        assert_eq!((s.cluster.as_str(), s.task.as_str()), ("prod", "abc"));
        assert_eq!(s.size, None);
        args.tty = true;
        assert_eq!(start(&args).size, size);
    }
}
