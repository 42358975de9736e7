//! One exec: finds the task's container in containerd, checks that it
//! runs, and runs the command as containerd's exec of it (the container's
//! own environment, user and working directory, like `docker exec`), its
//! stdio through FIFOs the agent creates and the runc shim opens.
//!
//! - Without a TTY: stdin, stdout and stderr FIFOs (stdin only with
//!   `interactive`), copied into [`ExecOutput::Stdout`]/[`ExecOutput::Stderr`].
//! - With a TTY: containerd's `terminal` option; the shim holds the pty
//!   master and copies it to the stdout FIFO (stderr is the same stream);
//!   resizes go to `ResizePty`.
//! - Signals go to `Kill` on the exec'd process; closing stdin is `CloseIO`.
//!
//! Until the process has started, the agent holds a writer of each output
//! FIFO itself, so that an early read cannot see end of file before the shim
//! opens its end; once the process has exited it lets go, and reads what is
//! left up to end of file (bounded by [`DRAIN_TIMEOUT`], since a background
//! process may keep the pipe open). A cancelled exec is killed (SIGKILL),
//! and its process and FIFOs are removed on every path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, GetContainerRequest, GetRequest,
    KillRequest, ListContainersRequest, ResizePtyRequest, StartRequest, WaitRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Code;

use super::{ExecFrame, ExecInput, ExecOutput, ExecServer, ExecStart, TermSize};
use crate::runtime::containerd::Containerd;
use crate::runtime::plan::labels;

/// containerd's type for an exec'd process's OCI spec.
const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
/// After the process exited, how long its output may take to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// After a kill, how long the process may take to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Bytes read from an output FIFO at a time (one frame at most).
const CHUNK: usize = 32 * 1024;

/// Why an exec could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("task {task} has no container {container:?} on this host")]
    NoContainer { task: String, container: String },
    #[error("container {container:?} of task {task} is not running")]
    NotRunning { task: String, container: String },
    #[error("containerd {op}: {message}")]
    Containerd { op: &'static str, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the container's spec: {0}")]
    Spec(String),
}

fn ctd_err(op: &'static str) -> impl FnOnce(tonic::Status) -> ExecError {
    move |s| ExecError::Containerd {
        op,
        message: s.message().to_owned(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExecError + '_ {
    move |source| ExecError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A signal by name (`SIGINT`, `int`) or number.
pub fn signal_number(name: &str) -> Option<u32> {
    if let Ok(n) = name.trim().parse::<u32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as u32)
}

/// The exec'd process's OCI spec: the container's own process with
/// `argv`, and with `tty` a terminal (and `TERM=xterm` unless set, as
/// `docker exec -t` does).
pub fn exec_process(
    container_spec: &[u8],
    argv: &[String],
    tty: bool,
    size: Option<TermSize>,
) -> Result<Vec<u8>, ExecError> {
    let mut spec: serde_json::Value =
        serde_json::from_slice(container_spec).map_err(|e| ExecError::Spec(e.to_string()))?;
    let mut process = spec
        .get_mut("process")
        .map(serde_json::Value::take)
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| ExecError::Spec("it has no process".into()))?;
    process["args"] = serde_json::json!(argv);
    process["terminal"] = serde_json::Value::Bool(tty);
    if let Some(obj) = process.as_object_mut() {
        obj.remove("consoleSize");
    }
    if tty {
        if let Some(s) = size {
            process["consoleSize"] = serde_json::json!({"height": s.height, "width": s.width});
        }
        let env = process
            .get_mut("env")
            .and_then(serde_json::Value::as_array_mut);
        match env {
            Some(env) => {
                if !env
                    .iter()
                    .any(|v| v.as_str().is_some_and(|s| s.starts_with("TERM=")))
                {
                    env.push(serde_json::json!("TERM=xterm"));
                }
            }
            None => process["env"] = serde_json::json!(["TERM=xterm"]),
        }
    }
    serde_json::to_vec(&process).map_err(|e| ExecError::Spec(e.to_string()))
}

/// The FIFO paths of exec `exec_id`: stdin, stdout, stderr.
pub fn fifo_paths(dir: &Path, exec_id: &str) -> [PathBuf; 3] {
    ["stdin", "stdout", "stderr"].map(|s| dir.join(format!("{exec_id}.{s}")))
}

/// Runs one exec to its end and sends its last frame (unless cancelled).
pub async fn run(
    server: &ExecServer,
    n: u64,
    start: ExecStart,
    input: mpsc::Receiver<ExecInput>,
    out: mpsc::Sender<ExecFrame>,
    cancel: CancellationToken,
) {
    let stream_id = start.stream_id;
    let exec_id = format!("berth-session-{n}");
    let paths = fifo_paths(&server.fifo_dir, &exec_id);
    let res = run_inner(server, &exec_id, &paths, start, input, &out, &cancel).await;
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    let last = match res {
        Ok(Some(code)) => ExecOutput::Exit(code),
        Ok(None) => return,
        Err(e) => {
            tracing::info!(stream = stream_id, cause = %e, "exec failed");
            ExecOutput::Error(e.to_string())
        }
    };
    if cancel.is_cancelled() {
        return;
    }
    let _ = out
        .send(ExecFrame {
            stream_id,
            output: last,
        })
        .await;
}

/// The running container of `start`'s task: its id and spec.
async fn find_container(
    ctd: &Containerd,
    start: &ExecStart,
) -> Result<(String, Vec<u8>), ExecError> {
    let req = ctd.with_namespace(ListContainersRequest {
        filters: vec![format!("labels.\"{}\"", labels::TASK_ARN)],
    });
    let containers = ctd
        .containers()
        .list(req)
        .await
        .map_err(ctd_err("list containers"))?
        .into_inner()
        .containers;
    let no_container = || ExecError::NoContainer {
        task: start.task_arn.clone(),
        container: start.container.clone(),
    };
    let c = containers
        .into_iter()
        .find(|c| {
            c.labels.get(labels::TASK_ARN) == Some(&start.task_arn)
                && c.labels.get(labels::CONTAINER_NAME) == Some(&start.container)
        })
        .ok_or_else(no_container)?;
    let req = ctd.with_namespace(GetRequest {
        container_id: c.id.clone(),
        ..Default::default()
    });
    let not_running = || ExecError::NotRunning {
        task: start.task_arn.clone(),
        container: start.container.clone(),
    };
    match ctd.tasks().get(req).await {
        // containerd.v1.types.Status 2: RUNNING.
        Ok(r) if r.get_ref().process.as_ref().is_some_and(|p| p.status == 2) => {}
        Ok(_) => return Err(not_running()),
        Err(s) if s.code() == Code::NotFound => return Err(not_running()),
        Err(s) => return Err(ctd_err("get task")(s)),
    }
    let req = ctd.with_namespace(GetContainerRequest { id: c.id.clone() });
    let spec = ctd
        .containers()
        .get(req)
        .await
        .map_err(ctd_err("get container"))?
        .into_inner()
        .container
        .and_then(|c| c.spec)
        .map(|a| a.value)
        .ok_or_else(|| ExecError::Spec("containerd returned none".into()))?;
    Ok((c.id, spec))
}

fn mkfifo(path: &Path) -> Result<(), ExecError> {
    let _ = std::fs::remove_file(path);
    nix::unistd::mkfifo(
        path,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .map_err(|e| io_err(path)(std::io::Error::from(e)))
}

/// An output FIFO: our reader, and a writer held until the process ran.
fn open_output(path: &Path) -> Result<(pipe::Receiver, pipe::Sender), ExecError> {
    mkfifo(path)?;
    let reader = pipe::OpenOptions::new()
        .open_receiver(path)
        .map_err(io_err(path))?;
    let keeper = pipe::OpenOptions::new()
        .open_sender(path)
        .map_err(io_err(path))?;
    Ok((reader, keeper))
}

/// Copies one output FIFO into frames until end of file.
async fn pump(mut r: pipe::Receiver, stream_id: u64, stderr: bool, out: mpsc::Sender<ExecFrame>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let bytes = buf[..n].to_vec();
                let output = if stderr {
                    ExecOutput::Stderr(bytes)
                } else {
                    ExecOutput::Stdout(bytes)
                };
                if out.send(ExecFrame { stream_id, output }).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The process's exit code, or `None` if the exec was cancelled.
async fn run_inner(
    server: &ExecServer,
    exec_id: &str,
    paths: &[PathBuf; 3],
    start: ExecStart,
    mut input: mpsc::Receiver<ExecInput>,
    out: &mpsc::Sender<ExecFrame>,
    cancel: &CancellationToken,
) -> Result<Option<i32>, ExecError> {
    let ctd = Containerd::connect(&server.containerd_socket, &server.namespace)
        .await
        .map_err(|e| ExecError::Containerd {
            op: "connect",
            message: e.to_string(),
        })?;
    let (container_id, spec) = find_container(&ctd, &start).await?;
    let process = exec_process(&spec, &start.command, start.tty, start.size)?;

    std::fs::create_dir_all(&server.fifo_dir).map_err(io_err(&server.fifo_dir))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&server.fifo_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(&server.fifo_dir))?;
    }
    let [stdin_path, stdout_path, stderr_path] = paths;
    let mut stdin = if start.interactive {
        mkfifo(stdin_path)?;
        // Read-write, so the open needs no reader yet; dropping it is EOF.
        Some(
            pipe::OpenOptions::new()
                .read_write(true)
                .open_sender(stdin_path)
                .map_err(io_err(stdin_path))?,
        )
    } else {
        None
    };
    let (stdout_r, stdout_keep) = open_output(stdout_path)?;
    let stderr = if start.tty {
        None
    } else {
        Some(open_output(stderr_path)?)
    };
    let path_str = |p: &Path| p.display().to_string();
    let req = ctd.with_namespace(ExecProcessRequest {
        container_id: container_id.clone(),
        exec_id: exec_id.to_owned(),
        stdin: if start.interactive {
            path_str(stdin_path)
        } else {
            String::new()
        },
        stdout: path_str(stdout_path),
        stderr: if start.tty {
            String::new()
        } else {
            path_str(stderr_path)
        },
        terminal: start.tty,
        spec: Some(prost_types::Any {
            type_url: PROCESS_TYPE_URL.to_owned(),
            value: process,
        }),
    });
    ctd.tasks().exec(req).await.map_err(ctd_err("exec"))?;
    let target = Proc {
        ctd: &ctd,
        container_id: &container_id,
        exec_id,
    };
    let res = drive(
        &target,
        &start,
        (&mut stdin, stdout_r, stdout_keep, stderr),
        &mut input,
        out,
        cancel,
    )
    .await;
    let req = ctd.with_namespace(DeleteProcessRequest {
        container_id: container_id.clone(),
        exec_id: exec_id.to_owned(),
    });
    if let Err(s) = ctd.tasks().delete_process(req).await {
        if s.code() != Code::NotFound {
            tracing::warn!(container = %container_id, exec = %exec_id, cause = %s.message(), "deleting an exec'd process failed");
        }
    }
    res
}

type Stdio<'a> = (
    &'a mut Option<pipe::Sender>,
    pipe::Receiver,
    pipe::Sender,
    Option<(pipe::Receiver, pipe::Sender)>,
);

/// The exec'd process in containerd.
struct Proc<'a> {
    ctd: &'a Containerd,
    container_id: &'a str,
    exec_id: &'a str,
}

impl Proc<'_> {
    async fn kill(&self, signal: u32) {
        let req = self.ctd.with_namespace(KillRequest {
            container_id: self.container_id.to_owned(),
            exec_id: self.exec_id.to_owned(),
            signal,
            all: false,
        });
        if let Err(s) = self.ctd.tasks().kill(req).await {
            tracing::debug!(exec = %self.exec_id, cause = %s.message(), "signalling an exec'd process failed");
        }
    }

    async fn resize(&self, size: TermSize) {
        let req = self.ctd.with_namespace(ResizePtyRequest {
            container_id: self.container_id.to_owned(),
            exec_id: self.exec_id.to_owned(),
            width: u32::from(size.width),
            height: u32::from(size.height),
        });
        if let Err(s) = self.ctd.tasks().resize_pty(req).await {
            tracing::debug!(exec = %self.exec_id, cause = %s.message(), "resizing an exec's terminal failed");
        }
    }

    async fn close_stdin(&self) {
        let req = self.ctd.with_namespace(CloseIoRequest {
            container_id: self.container_id.to_owned(),
            exec_id: self.exec_id.to_owned(),
            stdin: true,
        });
        if let Err(s) = self.ctd.tasks().close_io(req).await {
            tracing::debug!(exec = %self.exec_id, cause = %s.message(), "closing an exec's stdin failed");
        }
    }
}

/// Starts the exec'd process and serves it until it exits or the exec is
/// cancelled.
async fn drive(
    target: &Proc<'_>,
    start: &ExecStart,
    stdio: Stdio<'_>,
    input: &mut mpsc::Receiver<ExecInput>,
    out: &mpsc::Sender<ExecFrame>,
    cancel: &CancellationToken,
) -> Result<Option<i32>, ExecError> {
    let (stdin, stdout_r, stdout_keep, stderr) = stdio;
    let Proc {
        ctd,
        container_id,
        exec_id,
    } = *target;
    // Wait before start, so that a quick exit is not missed.
    let wait_req = ctd.with_namespace(WaitRequest {
        container_id: container_id.to_owned(),
        exec_id: exec_id.to_owned(),
    });
    let mut tasks = ctd.tasks();
    let mut wait = tokio::spawn(async move { tasks.wait(wait_req).await });
    let req = ctd.with_namespace(StartRequest {
        container_id: container_id.to_owned(),
        exec_id: exec_id.to_owned(),
    });
    if let Err(s) = ctd.tasks().start(req).await {
        wait.abort();
        return Err(ctd_err("start exec")(s));
    }
    let id = start.stream_id;
    let mut pumps = tokio::task::JoinSet::new();
    pumps.spawn(pump(stdout_r, id, false, out.clone()));
    let mut keepers = vec![stdout_keep];
    if let Some((r, keep)) = stderr {
        pumps.spawn(pump(r, id, true, out.clone()));
        keepers.push(keep);
    }
    if let (true, Some(size)) = (start.tty, start.size) {
        target.resize(size).await;
    }
    let waited = loop {
        tokio::select! {
            () = cancel.cancelled() => {
                target.kill(9).await;
                let _ = tokio::time::timeout(KILL_WAIT, &mut wait).await;
                wait.abort();
                pumps.abort_all();
                return Ok(None);
            }
            w = &mut wait => break w,
            Some(i) = input.recv() => match i {
                ExecInput::Stdin(bytes) => {
                    let Some(w) = stdin.as_mut() else { continue };
                    let written = tokio::select! {
                        r = w.write_all(&bytes) => r.is_ok(),
                        () = cancel.cancelled() => continue,
                    };
                    if !written {
                        // The process closed its stdin.
                        *stdin = None;
                    }
                }
                ExecInput::Resize(size) => {
                    if start.tty {
                        target.resize(size).await;
                    }
                }
                ExecInput::Signal(name) => match signal_number(&name) {
                    Some(n) => target.kill(n).await,
                    None => tracing::debug!(exec = %exec_id, signal = %name, "unknown signal ignored"),
                },
                ExecInput::CloseStdin => {
                    if stdin.take().is_some() {
                        target.close_stdin().await;
                    }
                }
            },
        }
    };
    *stdin = None;
    drop(keepers);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while pumps.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        // Something in the container still holds the output open.
        pumps.abort_all();
    }
    match waited {
        Ok(Ok(r)) => Ok(Some(r.into_inner().exit_status as i32)),
        Ok(Err(s)) => Err(ctd_err("wait exec")(s)),
        Err(e) => Err(ExecError::Containerd {
            op: "wait exec",
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(signal_number("SIGINT"), Some(2));
        assert_eq!(signal_number("term"), Some(15));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("0"), None);
        assert_eq!(signal_number("SIGNOPE"), None);
    }

    #[test]
    fn the_process_is_the_containers_with_the_command() {
        let spec = br#"{"ociVersion":"1.0.2","process":{"args":["nginx"],"env":["PATH=/bin"],
            "cwd":"/srv","user":{"uid":33,"gid":33},"terminal":false}}"#;
        let argv = vec!["sh".to_owned(), "-c".to_owned(), "id".to_owned()];
        let p: serde_json::Value =
            serde_json::from_slice(&exec_process(spec, &argv, false, None).unwrap()).unwrap();
        assert_eq!(p["args"], serde_json::json!(["sh", "-c", "id"]));
        assert_eq!(p["cwd"], "/srv");
        assert_eq!(p["user"]["uid"], 33);
        assert_eq!(p["terminal"], false);
        assert_eq!(p["env"], serde_json::json!(["PATH=/bin"]));

        let size = TermSize {
            width: 100,
            height: 30,
        };
        let p: serde_json::Value =
            serde_json::from_slice(&exec_process(spec, &argv, true, Some(size)).unwrap()).unwrap();
        assert_eq!(p["terminal"], true);
        assert_eq!(p["env"], serde_json::json!(["PATH=/bin", "TERM=xterm"]));
        assert_eq!(
            p["consoleSize"],
            serde_json::json!({"height": 30, "width": 100})
        );

        assert!(exec_process(b"{}", &argv, false, None).is_err());
        assert!(exec_process(b"not json", &argv, false, None).is_err());
    }

    #[test]
    fn fifos_are_named_after_the_exec() {
        let [i, o, e] = fifo_paths(Path::new("/run/berth/exec"), "berth-session-7");
        assert_eq!(i, Path::new("/run/berth/exec/berth-session-7.stdin"));
        assert_eq!(o, Path::new("/run/berth/exec/berth-session-7.stdout"));
        assert_eq!(e, Path::new("/run/berth/exec/berth-session-7.stderr"));
    }

    #[tokio::test]
    async fn an_output_fifo_reads_to_the_end_once_every_writer_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.stdout");
        let (reader, keeper) = open_output(&path).unwrap();
        // The shim's writer.
        let mut shim = pipe::OpenOptions::new().open_sender(&path).unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let pumping = tokio::spawn(pump(reader, 7, false, tx));
        shim.write_all(b"hello").await.unwrap();
        drop(shim);
        let f = rx.recv().await.unwrap();
        assert_eq!(f.output, ExecOutput::Stdout(b"hello".to_vec()));
        // The agent's own writer still holds the FIFO open.
        assert!(!pumping.is_finished());
        drop(keeper);
        tokio::time::timeout(Duration::from_secs(5), pumping)
            .await
            .unwrap()
            .unwrap();
    }
}
