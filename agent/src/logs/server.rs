//! Serves the scheduler's log requests (`berthctl task logs`) from the
//! json-files the log driver writes: history with tail/since, then, when
//! following, new lines until the task has stopped and its files are drained
//! or the request is cancelled.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::jsonfile::{LogLine, LogReader, ReadOptions};
use crate::runtime::report::{Reporter, TaskStatus};

/// How often a followed file is polled for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(250);
/// Entries per chunk sent to the scheduler.
const CHUNK: usize = 500;

/// Where a container's log lives: `<dir>/<task id>/<container>.log`.
pub fn log_path(dir: &Path, task_id: &str, container: &str) -> PathBuf {
    dir.join(task_id).join(format!("{container}.log"))
}

/// A request from the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    pub id: u64,
    pub task_arn: String,
    /// None: every container of the task.
    pub container: Option<String>,
    pub follow: bool,
    pub tail: Option<usize>,
    pub since: Option<OffsetDateTime>,
}

/// What the session forwards from the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogCommand {
    Read(LogRequest),
    Cancel(u64),
}

/// One part of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub request_id: u64,
    /// (container, line)
    pub entries: Vec<(String, LogLine)>,
    pub eof: bool,
    pub error: String,
}

/// Answers log requests; one task per request.
#[derive(Debug, Clone)]
pub struct LogServer {
    pub dir: PathBuf,
    pub max_files: u32,
    pub reporter: Reporter,
}

impl LogServer {
    /// Runs until `cancel` fires or the command channel closes.
    pub async fn run(
        self,
        mut commands: mpsc::Receiver<LogCommand>,
        chunks: mpsc::Sender<LogChunk>,
        cancel: CancellationToken,
    ) {
        let mut running: HashMap<u64, CancellationToken> = HashMap::new();
        loop {
            let cmd = tokio::select! {
                () = cancel.cancelled() => return,
                c = commands.recv() => match c { Some(c) => c, None => return },
            };
            running.retain(|_, t| !t.is_cancelled());
            match cmd {
                LogCommand::Cancel(id) => {
                    if let Some(t) = running.remove(&id) {
                        t.cancel();
                    }
                }
                LogCommand::Read(req) => {
                    let token = cancel.child_token();
                    running.insert(req.id, token.clone());
                    let server = self.clone();
                    let chunks = chunks.clone();
                    tokio::spawn(async move {
                        let id = req.id;
                        let done = token.clone();
                        server.serve(req, &chunks, token).await;
                        done.cancel();
                        tracing::debug!(request = id, "log request finished");
                    });
                }
            }
        }
    }

    fn containers(&self, req: &LogRequest) -> Result<Vec<String>, String> {
        let report = self.reporter.get(&req.task_arn);
        let task_id = berth_proto::arn::short_id(&req.task_arn);
        let all: Vec<String> = match &report {
            Some(r) => r.containers.iter().map(|c| c.name.clone()).collect(),
            None => {
                // A task this agent no longer supervises may still have files.
                let dir = self.dir.join(task_id);
                let mut names: Vec<String> = std::fs::read_dir(&dir)
                    .map_err(|_| format!("task {} has no logs on this host", req.task_arn))?
                    .flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.strip_suffix(".log").map(str::to_owned)
                    })
                    .collect();
                names.sort();
                names
            }
        };
        match &req.container {
            Some(c) if all.contains(c) => Ok(vec![c.clone()]),
            Some(c) => Err(format!("task {} has no container {c:?}", req.task_arn)),
            None => Ok(all),
        }
    }

    async fn send(chunks: &mpsc::Sender<LogChunk>, chunk: LogChunk) -> bool {
        chunks.send(chunk).await.is_ok()
    }

    async fn serve(
        &self,
        req: LogRequest,
        chunks: &mpsc::Sender<LogChunk>,
        cancel: CancellationToken,
    ) {
        let names = match self.containers(&req) {
            Ok(n) => n,
            Err(error) => {
                Self::send(
                    chunks,
                    LogChunk {
                        request_id: req.id,
                        entries: vec![],
                        eof: true,
                        error,
                    },
                )
                .await;
                return;
            }
        };
        let task_id = berth_proto::arn::short_id(&req.task_arn).to_owned();
        let opts = ReadOptions {
            tail: req.tail,
            since: req.since,
        };
        let mut readers: Vec<(String, LogReader)> = names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    LogReader::new(&log_path(&self.dir, &task_id, n), self.max_files),
                )
            })
            .collect();
        // History of all containers, merged by time.
        let mut history = Vec::new();
        for (name, r) in &mut readers {
            match r.history(&opts) {
                Ok(lines) => history.extend(lines.into_iter().map(|l| (name.clone(), l))),
                Err(e) => {
                    tracing::warn!(task = %req.task_arn, container = %name, cause = %e, "cannot read log")
                }
            }
        }
        history.sort_by_key(|(_, l)| l.time);
        for part in history.chunks(CHUNK) {
            if cancel.is_cancelled()
                || !Self::send(
                    chunks,
                    LogChunk {
                        request_id: req.id,
                        entries: part.to_vec(),
                        eof: false,
                        error: String::new(),
                    },
                )
                .await
            {
                return;
            }
        }
        if req.follow {
            loop {
                let stopped = self
                    .reporter
                    .get(&req.task_arn)
                    .is_none_or(|r| r.status == TaskStatus::Stopped);
                let mut fresh = Vec::new();
                for (name, r) in &mut readers {
                    if let Ok(lines) = r.follow() {
                        fresh.extend(lines.into_iter().map(|l| (name.clone(), l)));
                    }
                }
                fresh.sort_by_key(|(_, l)| l.time);
                for part in fresh.chunks(CHUNK) {
                    if !Self::send(
                        chunks,
                        LogChunk {
                            request_id: req.id,
                            entries: part.to_vec(),
                            eof: false,
                            error: String::new(),
                        },
                    )
                    .await
                    {
                        return;
                    }
                }
                // A stopped task's files are final once a poll finds nothing.
                if stopped && fresh.is_empty() {
                    break;
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(FOLLOW_POLL) => {}
                }
            }
        }
        Self::send(
            chunks,
            LogChunk {
                request_id: req.id,
                entries: vec![],
                eof: true,
                error: String::new(),
            },
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::jsonfile::{RotatingWriter, Stream};
    use crate::runtime::report::TaskReport;

    const ARN: &str = "arn:berth:ecs:local:0:task/default/t1";

    fn write(dir: &Path, container: &str, lines: &[(&str, i64)]) -> RotatingWriter {
        let mut w = RotatingWriter::open(&log_path(dir, "t1", container), 1 << 20, 2).unwrap();
        for (l, s) in lines {
            let t = OffsetDateTime::from_unix_timestamp(1_700_000_000 + s).unwrap();
            w.write_line(Stream::Stdout, &format!("{l}\n"), t).unwrap();
        }
        w
    }

    async fn collect(rx: &mut mpsc::Receiver<LogChunk>) -> (Vec<String>, String) {
        let mut out = Vec::new();
        loop {
            let c = rx.recv().await.unwrap();
            out.extend(
                c.entries
                    .iter()
                    .map(|(n, l)| format!("{n}:{}", l.log.trim())),
            );
            if c.eof {
                return (out, c.error);
            }
        }
    }

    #[tokio::test]
    async fn history_merges_containers_by_time_and_follow_ends_when_stopped() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "web", &[("w1", 1), ("w2", 3)]);
        let mut side = write(dir.path(), "side", &[("s1", 2)]);
        let reporter = Reporter::default();
        let mut report = TaskReport::new(
            ARN,
            [("web".into(), "a".into()), ("side".into(), "b".into())],
        );
        report.status = TaskStatus::Running;
        reporter.publish(report.clone());
        let server = LogServer {
            dir: dir.path().to_owned(),
            max_files: 2,
            reporter: reporter.clone(),
        };
        let (cmd_tx, cmd_rx) = mpsc::channel(4);
        let (chunk_tx, mut chunk_rx) = mpsc::channel(16);
        let cancel = CancellationToken::new();
        tokio::spawn(server.run(cmd_rx, chunk_tx, cancel.clone()));

        cmd_tx
            .send(LogCommand::Read(LogRequest {
                id: 1,
                task_arn: ARN.into(),
                container: None,
                follow: false,
                tail: None,
                since: None,
            }))
            .await
            .unwrap();
        assert_eq!(
            collect(&mut chunk_rx).await.0,
            ["web:w1", "side:s1", "web:w2"]
        );

        cmd_tx
            .send(LogCommand::Read(LogRequest {
                id: 2,
                task_arn: ARN.into(),
                container: Some("side".into()),
                follow: true,
                tail: Some(1),
                since: None,
            }))
            .await
            .unwrap();
        let first = chunk_rx.recv().await.unwrap();
        assert_eq!(first.entries.len(), 1);
        side.write_line(Stream::Stderr, "s2\n", OffsetDateTime::now_utc())
            .unwrap();
        let next = chunk_rx.recv().await.unwrap();
        assert_eq!(next.entries[0].1.log, "s2\n");
        report.status = TaskStatus::Stopped;
        reporter.publish(report);
        let end = chunk_rx.recv().await.unwrap();
        assert!(end.eof && end.error.is_empty());

        cmd_tx
            .send(LogCommand::Read(LogRequest {
                id: 3,
                task_arn: ARN.into(),
                container: Some("nope".into()),
                follow: false,
                tail: None,
                since: None,
            }))
            .await
            .unwrap();
        let (_, err) = collect(&mut chunk_rx).await;
        assert!(err.contains("no container \"nope\""), "{err}");
        cancel.cancel();
    }
}
