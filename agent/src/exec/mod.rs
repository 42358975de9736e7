//! ECS Exec on the agent: processes run in a task's running container
//! through containerd's exec, on the scheduler's behalf, over the agent's own
//! `Connect` stream (no port is opened on the host).
//!
//! The session hands every exec message to the [`ExecServer`] as an
//! [`ExecCommand`]; the server runs one task per exec ([`process`]) and
//! sends its output back as [`ExecFrame`]s, each exec ending with its exit
//! code or an error. Every queue is bounded: output waits for the stream
//! (so a slow caller slows the process's writes), and input for an exec
//! whose process does not read it fills that exec's queue and ends it,
//! rather than stalling the session's loop (heartbeats, reports).
//!
//! A lost stream ends every exec ([`ExecCommand::CancelAll`]): the caller
//! has already been told, and nobody would read the output.

pub mod process;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    pub width: u16,
    pub height: u16,
}

/// What to run, as the scheduler asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecStart {
    pub stream_id: u64,
    pub task_arn: String,
    pub container: String,
    pub command: Vec<String>,
    pub interactive: bool,
    pub tty: bool,
    pub size: Option<TermSize>,
}

/// Input for a running exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecInput {
    Stdin(Vec<u8>),
    Resize(TermSize),
    Signal(String),
    CloseStdin,
}

/// A message from the scheduler about execs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecCommand {
    Start(ExecStart),
    Input {
        stream_id: u64,
        input: ExecInput,
    },
    /// The caller went away: kill the process, send nothing more.
    Cancel(u64),
    /// The stream to the scheduler broke: end every exec.
    CancelAll,
}

/// Output of one exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The last frame of an exec that ran.
    Exit(i32),
    /// The last frame of an exec that could not run or broke.
    Error(String),
}

/// Output for the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecFrame {
    pub stream_id: u64,
    pub output: ExecOutput,
}

/// Most execs running at once on one host.
pub const MAX_SESSIONS: usize = 32;
/// Input messages that may wait for one exec's process.
const INPUT_BUFFER: usize = 64;

/// Where the execs run.
#[derive(Debug, Clone)]
pub struct ExecServer {
    pub containerd_socket: PathBuf,
    pub namespace: String,
    /// The FIFOs between the agent and the shim live here (created 0700).
    pub fifo_dir: PathBuf,
}

struct Running {
    input: mpsc::Sender<ExecInput>,
    cancel: CancellationToken,
}

impl ExecServer {
    /// Serves `commands` until `cancel` fires or the session drops the
    /// sender; every exec is killed then.
    pub async fn run(
        self,
        mut commands: mpsc::Receiver<ExecCommand>,
        out: mpsc::Sender<ExecFrame>,
        cancel: CancellationToken,
    ) {
        let mut running: HashMap<u64, Running> = HashMap::new();
        let mut tasks: JoinSet<u64> = JoinSet::new();
        let seq = Arc::new(AtomicU64::new(0));
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                Some(done) = tasks.join_next() => {
                    if let Ok(id) = done {
                        running.remove(&id);
                    }
                }
                cmd = commands.recv() => match cmd {
                    None => break,
                    Some(ExecCommand::Start(start)) => {
                        let id = start.stream_id;
                        if running.contains_key(&id) {
                            tracing::warn!(stream = id, "a second start for a running exec ignored");
                            continue;
                        }
                        if running.len() >= MAX_SESSIONS {
                            refuse(&out, id, format!(
                                "this host already runs {MAX_SESSIONS} exec sessions; try again later"
                            ));
                            continue;
                        }
                        let (tx, rx) = mpsc::channel(INPUT_BUFFER);
                        let token = cancel.child_token();
                        running.insert(id, Running { input: tx, cancel: token.clone() });
                        let n = seq.fetch_add(1, Ordering::Relaxed);
                        let server = self.clone();
                        let out = out.clone();
                        tasks.spawn(async move {
                            process::run(&server, n, start, rx, out, token).await;
                            id
                        });
                    }
                    Some(ExecCommand::Input { stream_id, input }) => {
                        let Some(r) = running.get(&stream_id) else { continue };
                        if let Err(mpsc::error::TrySendError::Full(_)) = r.input.try_send(input) {
                            r.cancel.cancel();
                            running.remove(&stream_id);
                            refuse(&out, stream_id, format!(
                                "the process did not read its input ({INPUT_BUFFER} messages waiting); \
                                 the session was ended"
                            ));
                        }
                    }
                    Some(ExecCommand::Cancel(id)) => {
                        if let Some(r) = running.remove(&id) {
                            r.cancel.cancel();
                        }
                    }
                    Some(ExecCommand::CancelAll) => {
                        for (_, r) in running.drain() {
                            r.cancel.cancel();
                        }
                    }
                }
            }
        }
        for (_, r) in running.drain() {
            r.cancel.cancel();
        }
        // Each exec kills its process and cleans up, within its own bound.
        while tasks.join_next().await.is_some() {}
    }
}

/// Ends exec `id` with `why`, without stalling the server's loop.
fn refuse(out: &mpsc::Sender<ExecFrame>, id: u64, why: String) {
    let out = out.clone();
    tokio::spawn(async move {
        let _ = out
            .send(ExecFrame {
                stream_id: id,
                output: ExecOutput::Error(why),
            })
            .await;
    });
}
