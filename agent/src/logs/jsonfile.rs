//! json-file logs: one JSON object per line, `{"log":"…\n","stream":"stdout",
//! "time":"2026-11-21T10:00:00.000000000Z"}` (Docker's format, so existing
//! tools read it), rotated by size into `NAME.1` … `NAME.<max_files-1>`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One stored line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// The text, with its trailing newline when it had one.
    pub log: String,
    pub stream: Stream,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
}

/// Appends lines to `path`, rotating when it would grow past `max_bytes`.
#[derive(Debug)]
pub struct RotatingWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    max_files: u32,
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl RotatingWriter {
    /// Opens (appending) `path`. `max_files` counts the live file: 1 means
    /// no rotated copies are kept (the file is truncated when full).
    pub fn open(path: &Path, max_bytes: u64, max_files: u32) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            file,
            size,
            max_bytes: max_bytes.max(1024),
            max_files: max_files.max(1),
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        for n in (1..self.max_files).rev() {
            let from = if n == 1 {
                self.path.clone()
            } else {
                rotated(&self.path, n - 1)
            };
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, n))?;
            }
        }
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }

    /// Writes one line (`text` should end with '\n' unless it is a partial
    /// line cut at the buffer limit).
    pub fn write_line(&mut self, stream: Stream, text: &str, at: OffsetDateTime) -> io::Result<()> {
        let line = LogLine {
            log: text.to_owned(),
            stream,
            time: at,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        if self.size > 0 && self.size + bytes.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(&bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Only the last N lines (of the whole history); None = all.
    pub tail: Option<usize>,
    /// Only lines at or after this time.
    pub since: Option<OffsetDateTime>,
}

/// Reads a container's log history and, for `follow`, what is appended
/// later, across rotations.
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    max_files: u32,
    /// Position in the live file and its identity, for following.
    pos: u64,
    ino: Option<u64>,
}

fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

fn parse_lines(reader: impl BufRead, since: Option<OffsetDateTime>, out: &mut Vec<LogLine>) {
    for line in reader.lines().map_while(Result::ok) {
        // A torn last line (the writer mid-write) or foreign junk is skipped.
        if let Ok(l) = serde_json::from_str::<LogLine>(&line) {
            if since.is_none_or(|s| l.time >= s) {
                out.push(l);
            }
        }
    }
}

impl LogReader {
    pub fn new(path: &Path, max_files: u32) -> Self {
        Self {
            path: path.to_owned(),
            max_files: max_files.max(1),
            pos: 0,
            ino: None,
        }
    }

    /// Everything stored now (oldest first), filtered; remembers where the
    /// live file ended so [`LogReader::follow`] continues from there.
    pub fn history(&mut self, opts: &ReadOptions) -> io::Result<Vec<LogLine>> {
        let mut out = Vec::new();
        for n in (1..self.max_files.max(2) + 8).rev() {
            // Rotated copies beyond max_files may exist from a larger
            // earlier setting; read whatever is there, oldest first.
            let p = rotated(&self.path, n);
            if let Ok(f) = File::open(&p) {
                parse_lines(BufReader::new(f), opts.since, &mut out);
            }
        }
        match File::open(&self.path) {
            Ok(f) => {
                self.ino = inode(&self.path);
                let mut r = BufReader::new(f);
                let mut buf = Vec::new();
                // Read only complete lines; a torn tail is read by follow.
                let mut consumed = 0u64;
                loop {
                    buf.clear();
                    let n = r.read_until(b'\n', &mut buf)?;
                    if n == 0 || buf.last() != Some(&b'\n') {
                        break;
                    }
                    consumed += n as u64;
                    parse_lines(&buf[..], opts.since, &mut out);
                }
                self.pos = consumed;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.pos = 0;
                self.ino = None;
            }
            Err(e) => return Err(e),
        }
        if let Some(t) = opts.tail {
            let skip = out.len().saturating_sub(t);
            out.drain(..skip);
        }
        Ok(out)
    }

    /// Complete lines appended since the last call (or since `history`).
    /// A rotation (new inode or a shorter file) restarts at the top of the
    /// new live file.
    pub fn follow(&mut self) -> io::Result<Vec<LogLine>> {
        let ino = inode(&self.path);
        let len = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if ino != self.ino || len < self.pos {
            // Rotated: finish the old file (now NAME.1) first.
            let mut out = Vec::new();
            if self.ino.is_some() {
                let old = rotated(&self.path, 1);
                if inode(&old) == self.ino {
                    if let Ok(mut f) = File::open(&old) {
                        f.seek(SeekFrom::Start(self.pos))?;
                        parse_lines(BufReader::new(f), None, &mut out);
                    }
                }
            }
            self.ino = ino;
            self.pos = 0;
            out.extend(self.follow_live()?);
            return Ok(out);
        }
        self.follow_live()
    }

    fn follow_live(&mut self) -> io::Result<Vec<LogLine>> {
        let mut out = Vec::new();
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        f.seek(SeekFrom::Start(self.pos))?;
        let mut r = BufReader::new(f);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = r.read_until(b'\n', &mut buf)?;
            if n == 0 || buf.last() != Some(&b'\n') {
                break;
            }
            self.pos += n as u64;
            parse_lines(&buf[..], None, &mut out);
        }
        Ok(out)
    }
}

/// RFC 3339 with nanoseconds, as Docker writes it.
pub fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn t(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn lines_are_docker_json_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let mut w = RotatingWriter::open(&p, 1 << 20, 3).unwrap();
        w.write_line(Stream::Stdout, "hello\n", t(0)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["log"], "hello\n");
        assert_eq!(v["stream"], "stdout");
        assert_eq!(v["time"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn rotation_keeps_at_most_max_files_and_reading_spans_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let mut w = RotatingWriter::open(&p, 1024, 3).unwrap();
        for i in 0..200 {
            w.write_line(Stream::Stdout, &format!("line {i:04}\n"), t(i))
                .unwrap();
        }
        assert!(p.exists() && rotated(&p, 1).exists() && rotated(&p, 2).exists());
        assert!(
            !rotated(&p, 3).exists(),
            "max_files=3 keeps 2 rotated copies"
        );
        let total: u64 = [p.clone(), rotated(&p, 1), rotated(&p, 2)]
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert!(total <= 3 * 1024);
        let lines = LogReader::new(&p, 3)
            .history(&ReadOptions::default())
            .unwrap();
        // Contiguous and ordered: the newest ones survive.
        let nums: Vec<u32> = lines
            .iter()
            .map(|l| l.log.trim().trim_start_matches("line ").parse().unwrap())
            .collect();
        assert_eq!(*nums.last().unwrap(), 199);
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
    }

    #[test]
    fn tail_and_since() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let mut w = RotatingWriter::open(&p, 1 << 20, 2).unwrap();
        for i in 0..10 {
            let s = if i % 2 == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            w.write_line(s, &format!("{i}\n"), t(i)).unwrap();
        }
        let mut r = LogReader::new(&p, 2);
        let tail = r
            .history(&ReadOptions {
                tail: Some(3),
                since: None,
            })
            .unwrap();
        assert_eq!(
            tail.iter().map(|l| l.log.as_str()).collect::<Vec<_>>(),
            ["7\n", "8\n", "9\n"]
        );
        assert_eq!(tail[0].stream, Stream::Stderr);
        let since = r
            .history(&ReadOptions {
                tail: None,
                since: Some(t(0) + Duration::seconds(8)),
            })
            .unwrap();
        assert_eq!(since.len(), 2);
    }

    #[test]
    fn follow_sees_appends_and_survives_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let mut w = RotatingWriter::open(&p, 2048, 3).unwrap();
        w.write_line(Stream::Stdout, "first\n", t(0)).unwrap();
        let mut r = LogReader::new(&p, 3);
        assert_eq!(r.history(&ReadOptions::default()).unwrap().len(), 1);
        assert!(r.follow().unwrap().is_empty());
        let mut seen = Vec::new();
        for i in 0..100 {
            w.write_line(Stream::Stdout, &format!("n{i}\n"), t(i))
                .unwrap();
            if i % 7 == 0 {
                seen.extend(r.follow().unwrap());
            }
        }
        seen.extend(r.follow().unwrap());
        let got: Vec<_> = seen.iter().map(|l| l.log.trim().to_owned()).collect();
        let want: Vec<_> = (0..100).map(|i| format!("n{i}")).collect();
        assert_eq!(got, want, "every appended line exactly once, in order");
    }

    #[test]
    fn torn_last_line_waits_for_completion() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        std::fs::write(&p, "{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\"2023-11-14T22:13:20Z\"}\n{\"log\":\"b").unwrap();
        let mut r = LogReader::new(&p, 1);
        assert_eq!(r.history(&ReadOptions::default()).unwrap().len(), 1);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"\\n\",\"stream\":\"stderr\",\"time\":\"2023-11-14T22:13:21Z\"}\n")
            .unwrap();
        let more = r.follow().unwrap();
        assert_eq!(more.len(), 1);
        assert_eq!(more[0].log, "b\n");
    }
}
