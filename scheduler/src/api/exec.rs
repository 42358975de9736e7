//! `ExecService.ExecuteCommand`: ECS Exec. The caller's first message names
//! the task, container and command; the scheduler checks the policy (the
//! task was started with `enable_execute_command`, it is RUNNING, its agent
//! is connected), audits the session (who, task, container, command; never
//! its content), and relays: input down the agent's `Connect` stream as
//! [`Outbound::ExecInput`], output back through the [`ExecRouter`].
//!
//! The role gate ([`super::auth`]) lets only operator and admin tokens in;
//! the call is a stream, so the gate does not read its body and the audit
//! record is written here, once the first message is judged.
//!
//! Every queue is bounded: the caller's input waits for room in the agent's
//! outbound queue, the output waits (a little) for the caller. When the
//! caller goes away, the agent is told to kill the process.

use std::pin::Pin;
use std::time::Duration;

use berth_proto::arn::short_id;
use berth_proto::v1::{
    exec_request, exec_response, exec_service_server::ExecService, ExecRequest, ExecResponse,
    ExecStartRequest, TerminalSize,
};
use futures::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::auth::audit;
use super::{cluster_arg, Shared};
use crate::agent_link::Outbound;
use crate::auth::Principal;
use crate::exec_link::{ExecFrame, ExecInput, ExecRouter, ExecSpec, TermSize};
use crate::records::{DesiredStatus, TaskRecord, TaskStatus};

/// The method's path, as audited.
const METHOD: &str = "/berth.v1.ExecService/ExecuteCommand";
/// How long the caller may take to send its first message.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a message may wait to be handed to the agent's stream.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Most arguments of a command, and most bytes of them together.
const MAX_ARGS: usize = 256;
const MAX_COMMAND_BYTES: usize = 16 * 1024;
/// Largest stdin chunk accepted in one message.
const MAX_STDIN_CHUNK: usize = 64 * 1024;

#[derive(Debug)]
pub struct ExecApi {
    pub shared: Shared,
}

/// Why an exec is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("task {0:?} not found")]
    NoTask(String),
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<ExecError> for Status {
    fn from(e: ExecError) -> Self {
        let msg = e.to_string();
        match e {
            ExecError::Invalid { .. } => Status::invalid_argument(msg),
            ExecError::NoTask(_) => Status::not_found(msg),
            ExecError::Precondition(_) => Status::failed_precondition(msg),
            ExecError::Unavailable(_) => Status::unavailable(msg),
            ExecError::Internal(_) => Status::internal(msg),
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ExecError {
    ExecError::Invalid {
        field,
        message: message.into(),
    }
}

/// A terminal size from the wire; zero or absurd sizes are refused.
pub fn term_size(field: &'static str, s: &TerminalSize) -> Result<TermSize, ExecError> {
    let dim = |v: u32| u16::try_from(v).ok().filter(|v| *v > 0);
    match (dim(s.width), dim(s.height)) {
        (Some(width), Some(height)) => Ok(TermSize { width, height }),
        _ => Err(invalid(
            field,
            format!("{}x{} is not a terminal size", s.width, s.height),
        )),
    }
}

/// The checks of the first message that need no store.
pub fn validate_start(s: &ExecStartRequest) -> Result<Option<TermSize>, ExecError> {
    if s.task.trim().is_empty() {
        return Err(invalid("start.task", "required"));
    }
    if s.command.is_empty() || s.command[0].is_empty() {
        return Err(invalid(
            "start.command",
            "required (the program and its arguments)",
        ));
    }
    if s.command.len() > MAX_ARGS {
        return Err(invalid(
            "start.command",
            format!("at most {MAX_ARGS} arguments"),
        ));
    }
    if s.command.iter().map(String::len).sum::<usize>() > MAX_COMMAND_BYTES {
        return Err(invalid(
            "start.command",
            format!("at most {MAX_COMMAND_BYTES} bytes"),
        ));
    }
    if s.command.iter().any(|a| a.contains('\0')) {
        return Err(invalid("start.command", "an argument contains a NUL byte"));
    }
    match (&s.size, s.tty) {
        (Some(size), true) => term_size("start.size", size).map(Some),
        _ => Ok(None),
    }
}

/// The container to run in: the one named, or the task's only one.
pub fn pick_container(task: &TaskRecord, name: &str) -> Result<String, ExecError> {
    let names: Vec<&str> = task.containers.iter().map(|c| c.name.as_str()).collect();
    if name.is_empty() {
        return match names.as_slice() {
            [only] => Ok((*only).to_owned()),
            _ => Err(invalid(
                "start.container",
                format!(
                    "task {} has {} containers ({}); name one",
                    task.id,
                    names.len(),
                    names.join(", ")
                ),
            )),
        };
    }
    if names.contains(&name) {
        Ok(name.to_owned())
    } else {
        Err(invalid(
            "start.container",
            format!(
                "task {} has no container {name:?} (it has {})",
                task.id,
                names.join(", ")
            ),
        ))
    }
}

/// ECS's rule: only tasks started with enableExecuteCommand, and only while
/// they run.
pub fn may_exec(task: &TaskRecord) -> Result<(), ExecError> {
    if !task.enable_execute_command {
        return Err(ExecError::Precondition(format!(
            "task {} was not started with enableExecuteCommand; run it with \
             `--enable-execute-command` (RunTask, StartTask) or from a service that has it",
            task.id
        )));
    }
    if task.desired_status != DesiredStatus::Running || task.last_status != TaskStatus::Running {
        return Err(ExecError::Precondition(format!(
            "task {} is {} (desired {}); only a RUNNING task can be exec'd",
            task.id,
            task.last_status.as_str(),
            task.desired_status.as_str()
        )));
    }
    Ok(())
}

/// A caller's message after the first as input for the agent; `None` for
/// a message with nothing in it.
pub fn input(m: ExecRequest) -> Result<Option<ExecInput>, ExecError> {
    Ok(match m.msg {
        None => None,
        Some(exec_request::Msg::Start(_)) => {
            return Err(invalid("start", "only the first message may be start"))
        }
        Some(exec_request::Msg::Stdin(b)) if b.len() > MAX_STDIN_CHUNK => {
            return Err(invalid(
                "stdin",
                format!("at most {MAX_STDIN_CHUNK} bytes per message"),
            ))
        }
        Some(exec_request::Msg::Stdin(b)) => Some(ExecInput::Stdin(b)),
        Some(exec_request::Msg::Resize(s)) => Some(ExecInput::Resize(term_size("resize", &s)?)),
        Some(exec_request::Msg::Signal(s)) if s.trim().is_empty() || s.len() > 16 => {
            return Err(invalid("signal", format!("{s:?} is not a signal")))
        }
        Some(exec_request::Msg::Signal(s)) => Some(ExecInput::Signal(s)),
        Some(exec_request::Msg::CloseStdin(_)) => Some(ExecInput::CloseStdin),
    })
}

/// What the audit log says of a session: names only, and the command
/// (never stdin or output).
pub fn audit_resource(cluster: &str, task: &str, container: &str, command: &[String]) -> String {
    let mut s = format!("cluster/{cluster} task/{task}");
    if !container.is_empty() {
        s.push_str(&format!(" container/{container}"));
    }
    // Each argument quoted, so spaces inside one stay visible.
    let cmd: Vec<String> = command.iter().map(|a| format!("{a:?}")).collect();
    s.push_str(&format!(" command/[{}]", cmd.join(" ")));
    s
}

/// The caller's view of a session: tells the agent to kill the process
/// when the caller goes away before the end.
struct Feed {
    rx: mpsc::Receiver<ExecFrame>,
    stream_id: u64,
    router: ExecRouter,
    outbound: mpsc::Sender<Outbound>,
    done: bool,
}

impl Drop for Feed {
    fn drop(&mut self) {
        if !self.done {
            self.router.close(self.stream_id);
            let _ = self.outbound.try_send(Outbound::ExecCancel {
                stream_id: self.stream_id,
            });
        }
    }
}

type ExecStream = Pin<Box<dyn Stream<Item = Result<ExecResponse, Status>> + Send>>;

fn response(msg: exec_response::Msg) -> ExecResponse {
    ExecResponse { msg: Some(msg) }
}

fn feed_stream(feed: Feed) -> ExecStream {
    Box::pin(futures::stream::unfold(feed, |mut f| async move {
        if f.done {
            return None;
        }
        let item = match f.rx.recv().await {
            Some(ExecFrame::Stdout(b)) => Ok(response(exec_response::Msg::Stdout(b))),
            Some(ExecFrame::Stderr(b)) => Ok(response(exec_response::Msg::Stderr(b))),
            Some(ExecFrame::Exit(c)) => {
                f.done = true;
                Ok(response(exec_response::Msg::ExitCode(c)))
            }
            Some(ExecFrame::Error(e)) => {
                f.done = true;
                Err(Status::aborted(e))
            }
            None => {
                f.done = true;
                Err(Status::unavailable(
                    "the exec session ended without an exit code (its agent went away)",
                ))
            }
        };
        Some((item, f))
    }))
}

/// Forwards the caller's input to the agent until the caller closes its
/// side or sends something invalid (which ends the session).
async fn pump_input(
    mut inbound: Streaming<ExecRequest>,
    outbound: mpsc::Sender<Outbound>,
    stream_id: u64,
) {
    loop {
        let m = match inbound.message().await {
            Ok(Some(m)) => m,
            // The caller is done sending; its output still flows.
            Ok(None) => return,
            Err(_) => break,
        };
        match input(m) {
            Ok(None) => {}
            Ok(Some(input)) => {
                // Bounded: a process that reads slowly slows its caller.
                if outbound
                    .send(Outbound::ExecInput { stream_id, input })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                tracing::info!(stream = stream_id, cause = %e, "invalid exec input; ending the session");
                break;
            }
        }
    }
    let _ = outbound.send(Outbound::ExecCancel { stream_id }).await;
}

impl ExecApi {
    /// Judges the first message; on success, the task's agent has been
    /// asked to start the process.
    async fn begin(
        &self,
        start: ExecStartRequest,
        who: &Principal,
    ) -> Result<(u64, mpsc::Receiver<ExecFrame>, mpsc::Sender<Outbound>), ExecError> {
        let cluster = cluster_arg(&start.cluster);
        let id = short_id(start.task.trim()).to_owned();
        let resource = audit_resource(&cluster, &id, &start.container, &start.command);
        let res = self.judge(&start, &cluster, &id).await;
        let outcome = match &res {
            Ok(_) => "OK".to_owned(),
            Err(e) => format!("{:?}", Status::from(e.clone()).code()),
        };
        audit(&self.shared.db, who, METHOD, resource, &outcome).await;
        let (task, container, size) = res?;
        let outbound = self
            .shared
            .sessions
            .outbound(&task.instance_id)
            .ok_or_else(|| {
                ExecError::Unavailable(format!(
                    "the agent of container instance {} is not connected, so task {id} cannot \
                     be exec'd now",
                    task.instance_id
                ))
            })?;
        let router = self.shared.execs.clone();
        let (stream_id, rx) = router.open(&task.instance_id);
        let spec = ExecSpec {
            task_arn: self.shared.arn.task(&task.cluster, &task.id),
            container,
            command: start.command,
            interactive: start.interactive,
            tty: start.tty,
            size,
        };
        tracing::info!(task = %task.id, container = %spec.container, token = %who.token_id, stream = stream_id, "exec session");
        if outbound
            .send_timeout(Outbound::ExecStart { stream_id, spec }, SEND_TIMEOUT)
            .await
            .is_err()
        {
            router.close(stream_id);
            return Err(ExecError::Unavailable(format!(
                "the agent of container instance {} did not take the exec request",
                task.instance_id
            )));
        }
        Ok((stream_id, rx, outbound))
    }

    async fn judge(
        &self,
        start: &ExecStartRequest,
        cluster: &str,
        id: &str,
    ) -> Result<(TaskRecord, String, Option<TermSize>), ExecError> {
        let size = validate_start(start)?;
        let task = self
            .shared
            .db
            .task(id)
            .map_err(|e| ExecError::Internal(e.to_string()))?
            .filter(|t| t.cluster == cluster)
            .ok_or_else(|| ExecError::NoTask(id.to_owned()))?;
        let container = pick_container(&task, &start.container)?;
        may_exec(&task)?;
        Ok((task, container, size))
    }
}

#[tonic::async_trait]
impl ExecService for ExecApi {
    type ExecuteCommandStream = ExecStream;

    #[tracing::instrument(skip_all)]
    async fn execute_command(
        &self,
        req: Request<Streaming<ExecRequest>>,
    ) -> Result<Response<Self::ExecuteCommandStream>, Status> {
        let who = req
            .extensions()
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no operator token"))?;
        let mut inbound = req.into_inner();
        let first = tokio::time::timeout(START_TIMEOUT, inbound.message())
            .await
            .map_err(|_| {
                Status::invalid_argument(format!("no start message within {START_TIMEOUT:?}"))
            })??;
        let start = match first.and_then(|m| m.msg) {
            Some(exec_request::Msg::Start(s)) => s,
            _ => return Err(Status::invalid_argument("the first message must be start")),
        };
        let (stream_id, rx, outbound) = self.begin(start, &who).await?;
        tokio::spawn(pump_input(inbound, outbound.clone(), stream_id));
        Ok(Response::new(feed_stream(Feed {
            rx,
            stream_id,
            router: self.shared.execs.clone(),
            outbound,
            done: false,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ContainerRecord;

    fn task(names: &[&str], exec: bool) -> TaskRecord {
        let mut t: TaskRecord = serde_json::from_str(
            r#"{"id":"0123456789abcdef0123456789abcdef","cluster":"default",
            "instance_id":"i1","family":"web","revision":1,"desired_status":"RUNNING",
            "last_status":"RUNNING","health_status":"UNKNOWN","started_by":"","group":"family:web",
            "created_at":1700000000000,"containers":[],
            "reservation":{"cpu_units":0,"memory_mib":0,"ports":[]},"version":2}"#,
        )
        .expect("a task record");
        t.containers = names
            .iter()
            .map(|n| ContainerRecord {
                name: (*n).to_owned(),
                ..Default::default()
            })
            .collect();
        t.enable_execute_command = exec;
        t
    }

    fn start(command: &[&str]) -> ExecStartRequest {
        ExecStartRequest {
            task: "t".into(),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn only_flagged_running_tasks_may_be_execd() {
        assert!(may_exec(&task(&["app"], true)).is_ok());
        let e = may_exec(&task(&["app"], false)).unwrap_err();
        assert!(matches!(e, ExecError::Precondition(_)));
        assert!(e.to_string().contains("enableExecuteCommand"), "{e}");
        assert_eq!(Status::from(e).code(), tonic::Code::FailedPrecondition);
        let mut stopping = task(&["app"], true);
        stopping.desired_status = DesiredStatus::Stopped;
        assert!(matches!(
            may_exec(&stopping),
            Err(ExecError::Precondition(_))
        ));
    }

    #[test]
    fn the_container_is_named_or_the_only_one() {
        assert_eq!(pick_container(&task(&["app"], true), "").unwrap(), "app");
        assert_eq!(
            pick_container(&task(&["app", "side"], true), "side").unwrap(),
            "side"
        );
        let e = pick_container(&task(&["app", "side"], true), "").unwrap_err();
        assert!(e.to_string().contains("app, side"), "{e}");
        assert!(pick_container(&task(&["app"], true), "nope").is_err());
    }

    #[test]
    fn start_messages_are_checked() {
        assert!(validate_start(&start(&["sh"])).is_ok());
        assert!(validate_start(&start(&[])).is_err());
        assert!(validate_start(&start(&[""])).is_err());
        assert!(validate_start(&start(&["a\0b"])).is_err());
        let mut tty = start(&["sh"]);
        tty.tty = true;
        tty.size = Some(TerminalSize {
            width: 80,
            height: 24,
        });
        assert_eq!(
            validate_start(&tty).unwrap(),
            Some(TermSize {
                width: 80,
                height: 24
            })
        );
        tty.size = Some(TerminalSize {
            width: 0,
            height: 24,
        });
        assert!(validate_start(&tty).is_err());
    }

    #[test]
    fn input_after_the_start() {
        let m = |msg| ExecRequest { msg: Some(msg) };
        assert_eq!(
            input(m(exec_request::Msg::Stdin(b"hi".to_vec()))).unwrap(),
            Some(ExecInput::Stdin(b"hi".to_vec()))
        );
        assert_eq!(
            input(m(exec_request::Msg::CloseStdin(true))).unwrap(),
            Some(ExecInput::CloseStdin)
        );
        assert!(input(m(exec_request::Msg::Start(start(&["sh"])))).is_err());
        assert!(input(m(exec_request::Msg::Stdin(vec![0; MAX_STDIN_CHUNK + 1]))).is_err());
        assert!(input(m(exec_request::Msg::Signal(String::new()))).is_err());
        assert_eq!(input(ExecRequest { msg: None }).unwrap(), None);
    }

    #[test]
    fn the_audit_names_the_command_but_nothing_else() {
        let cmd = vec!["sh".to_owned(), "-c".to_owned(), "echo a b".to_owned()];
        assert_eq!(
            audit_resource("default", "abc", "app", &cmd),
            r#"cluster/default task/abc container/app command/["sh" "-c" "echo a b"]"#
        );
    }
}
