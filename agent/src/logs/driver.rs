//! `berth-agent log-driver`: the logging binary containerd's shim starts for
//! a container whose stdio URI is `binary:///path/to/berth-agent?...`.
//!
//! containerd's protocol: the container's stdout and stderr arrive as the
//! read ends of pipes on fds 3 and 4; closing fd 5 tells the shim the logger
//! is ready (the container starts only then). The process runs beside the
//! shim until both pipes reach EOF, so it is independent of the agent: an
//! agent restart loses no output.
//!
//! Lines longer than [`MAX_LINE`] are split (as Docker does at 16 KiB);
//! invalid UTF-8 is replaced. A write error (disk full) is reported on the
//! shim's stderr and the pipes keep draining, so a container never blocks on
//! its own output.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::jsonfile::{RotatingWriter, Stream};

/// Longest line stored whole; longer ones are split into parts.
pub const MAX_LINE: usize = 16 * 1024;

/// The fds containerd's shim hands a logging binary.
const STDOUT_FD: i32 = 3;
const STDERR_FD: i32 = 4;
const READY_FD: i32 = 5;

/// Arguments, passed as the query of the `binary://` URI.
#[derive(Debug, Clone)]
pub struct DriverArgs {
    pub file: PathBuf,
    pub max_bytes: u64,
    pub max_files: u32,
}

impl DriverArgs {
    /// Arguments that keep nothing: the pumps only drain the pipes.
    pub fn discard() -> Self {
        Self {
            file: PathBuf::new(),
            max_bytes: 0,
            max_files: 0,
        }
    }
}

/// Builds the stdio URI that makes the shim run this binary as the logger.
pub fn binary_uri(agent_binary: &Path, args: &DriverArgs) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
    // The shim turns each query pair into two arguments, in map order: every
    // flag is therefore self-contained (`--flag value`).
    format!(
        "binary://{}?log-driver&--file={}&--max-bytes={}&--max-files={}",
        enc(&agent_binary.to_string_lossy()),
        enc(&args.file.to_string_lossy()),
        args.max_bytes,
        args.max_files
    )
}

fn open_fd(fd: i32) -> io::Result<File> {
    File::open(format!("/proc/self/fd/{fd}"))
}

/// Reads `src` line by line into `sink` until EOF.
fn pump(src: impl Read, stream: Stream, sink: &Mutex<Option<RotatingWriter>>) {
    let mut r = BufReader::with_capacity(64 * 1024, src);
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        // read_until with a cap: take at most MAX_LINE bytes per record.
        let done = loop {
            let buf = match r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break true,
            };
            if buf.is_empty() {
                break true;
            }
            let room = MAX_LINE - line.len();
            let take = buf.len().min(room);
            match buf[..take].iter().position(|b| *b == b'\n') {
                Some(i) => {
                    line.extend_from_slice(&buf[..=i]);
                    r.consume(i + 1);
                    break false;
                }
                None => {
                    line.extend_from_slice(&buf[..take]);
                    r.consume(take);
                    if line.len() >= MAX_LINE {
                        break false;
                    }
                }
            }
        };
        if !line.is_empty() {
            let text = String::from_utf8_lossy(&line);
            let mut guard = sink.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(w) = guard.as_mut() {
                if let Err(e) = w.write_line(stream, &text, OffsetDateTime::now_utc()) {
                    eprintln!("berth log-driver: cannot write log: {e}; output is being dropped");
                    *guard = None;
                }
            }
        }
        if done {
            return;
        }
    }
}

/// Runs the driver until the container's output ends.
pub fn run(args: &DriverArgs) -> io::Result<()> {
    let stdout = open_fd(STDOUT_FD)?;
    let stderr = open_fd(STDERR_FD).ok();
    let writer = if args.file.as_os_str().is_empty() {
        None
    } else {
        open_writer(args)
    };
    let sink = Arc::new(Mutex::new(writer));
    // Ready: the shim may start the container now.
    let _ = nix::unistd::close(READY_FD);
    let err_thread = stderr.map(|f| {
        let sink = sink.clone();
        std::thread::spawn(move || pump(f, Stream::Stderr, &sink))
    });
    pump(stdout, Stream::Stdout, &sink);
    if let Some(t) = err_thread {
        let _ = t.join();
    }
    Ok(())
}

fn open_writer(args: &DriverArgs) -> Option<RotatingWriter> {
    match RotatingWriter::open(&args.file, args.max_bytes, args.max_files) {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!(
                "berth log-driver: cannot open {}: {e}; output is being dropped",
                args.file.display()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::jsonfile::{LogReader, ReadOptions};

    #[test]
    fn uri_encodes_paths_and_keeps_flags_self_contained() {
        let uri = binary_uri(
            Path::new("/usr/bin/berth-agent"),
            &DriverArgs {
                file: PathBuf::from("/var/lib/berth/logs/t 1/web.log"),
                max_bytes: 1024,
                max_files: 3,
            },
        );
        assert_eq!(
            uri,
            "binary:///usr/bin/berth-agent?log-driver&--file=/var/lib/berth/logs/t%201/web.log&--max-bytes=1024&--max-files=3"
        );
    }

    #[test]
    fn pump_splits_long_lines_and_keeps_partial_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let sink = Mutex::new(Some(RotatingWriter::open(&p, 1 << 24, 1).unwrap()));
        let mut input = b"short\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend(b"\nbad \xff utf8\nno newline");
        pump(&input[..], Stream::Stdout, &sink);
        let lines = LogReader::new(&p, 1)
            .history(&ReadOptions::default())
            .unwrap();
        let logs: Vec<_> = lines.iter().map(|l| l.log.clone()).collect();
        assert_eq!(logs[0], "short\n");
        assert_eq!(logs[1].len(), MAX_LINE);
        assert_eq!(logs[2], format!("{}\n", "x".repeat(10)));
        assert_eq!(logs[3], "bad \u{fffd} utf8\n");
        assert_eq!(logs[4], "no newline");
    }
}
