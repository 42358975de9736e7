//! HAProxy's two unix sockets: the Runtime API (the worker's admin `stats
//! socket`: `set server`, `show info`, `show servers state`) and the master
//! CLI (`-S`: `reload`). One connection per call, commands joined with `;`,
//! the answer read to EOF; every call is bounded by a timeout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Commands per connection (HAProxy reads one line of up to bufsize).
const BATCH: usize = 50;

/// Why a call to a HAProxy socket failed.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot reach HAProxy's socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("HAProxy's socket {path} did not answer within {timeout:?}")]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("HAProxy refused `{command}`: {answer}")]
    Refused { command: String, answer: String },
}

/// Sends `commands` (one line, `;`-separated) and returns the answer.
pub async fn call(socket: &Path, commands: &str) -> Result<String, SocketError> {
    let io = |source| SocketError::Io {
        path: socket.to_owned(),
        source,
    };
    let work = async {
        let mut stream = UnixStream::connect(socket).await.map_err(io)?;
        stream
            .write_all(format!("{commands}\n").as_bytes())
            .await
            .map_err(io)?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.map_err(io)?;
        Ok(answer)
    };
    tokio::time::timeout(CALL_TIMEOUT, work)
        .await
        .map_err(|_| SocketError::Timeout {
            path: socket.to_owned(),
            timeout: CALL_TIMEOUT,
        })?
}

/// Whether an answer to `set server` says it failed. Success answers are
/// empty or say what changed ("IP changed from ...", "no need to change ...").
fn is_refusal(answer: &str) -> bool {
    let a = answer.trim();
    [
        "No such",
        "Unknown",
        "Require",
        "Invalid",
        "invalid",
        "can't",
        "cannot",
        "Permission denied",
        "only supported",
    ]
    .iter()
    .any(|w| a.contains(w))
}

/// Runs `set server` commands in batches; the first refusal is an error
/// (the rest of its batch still ran).
pub async fn run_commands(socket: &Path, commands: &[String]) -> Result<(), SocketError> {
    for batch in commands.chunks(BATCH) {
        let line = batch.join(";");
        let answer = call(socket, &line).await?;
        if is_refusal(&answer) {
            return Err(SocketError::Refused {
                command: line,
                answer: answer.trim().to_owned(),
            });
        }
    }
    Ok(())
}

/// The worker's pid (`show info`), which changes with every reload and
/// restart.
pub async fn worker_pid(socket: &Path) -> Result<u32, SocketError> {
    let answer = call(socket, "show info").await?;
    answer
        .lines()
        .find_map(|l| l.strip_prefix("Pid: "))
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| SocketError::Refused {
            command: "show info".into(),
            answer: answer.chars().take(200).collect(),
        })
}

/// `show servers state`: what the server-state file holds.
pub async fn servers_state(socket: &Path) -> Result<String, SocketError> {
    call(socket, "show servers state").await
}

/// Asks the master to reload (re-exec with the config file as it now is).
pub async fn reload(master: &Path) -> Result<(), SocketError> {
    let answer = call(master, "reload").await?;
    if is_refusal(&answer) {
        return Err(SocketError::Refused {
            command: "reload".into(),
            answer: answer.trim().to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_from_reports_of_change() {
        assert!(!is_refusal(""));
        assert!(!is_refusal(
            "IP changed from '127.0.0.1' to '127.0.0.2', port changed from '1' to '8081' by \
             'stats socket command'\n"
        ));
        assert!(!is_refusal(
            "no need to change the addr, no need to change the port"
        ));
        assert!(is_refusal("No such server.\n"));
        assert!(is_refusal("No such backend.\n"));
        assert!(is_refusal("Unknown command: 'sett'"));
        assert!(is_refusal(
            "Update for the current server address family is only supported through \
             configuration file by 'stats socket command'"
        ));
    }

    #[tokio::test]
    async fn a_call_reads_the_answer_to_eof() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 64];
            let n = s.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"show info\n");
            s.write_all(b"Name: HAProxy\nPid: 4242\n").await.unwrap();
        });
        assert_eq!(worker_pid(&path).await.unwrap(), 4242);
        let err = worker_pid(&dir.path().join("none.sock")).await.unwrap_err();
        assert!(err.to_string().contains("none.sock"), "{err}");
    }
}
