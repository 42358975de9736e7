//! Man pages and shell completions, made from a binary's own clap
//! [`Command`], so they list whatever subcommands and flags the binary has
//! at build time.
//!
//! Each binary hands its parser to [`generate_if_asked`] first thing in
//! `main`: `berth-agent __generate-docs DIR` then writes, under `DIR`, the
//! tree the Debian package ships (`packaging/build-debs` calls it):
//!
//! - `usr/share/man/man<S>/<bin>.<S>`, and one page per subcommand
//!   (`<bin>-<sub>[-<subsub>].<S>`), not gzipped;
//! - `usr/share/bash-completion/completions/<bin>`,
//!   `usr/share/zsh/vendor-completions/_<bin>`,
//!   `usr/share/fish/vendor_completions.d/<bin>.fish`.
//!
//! The word is not a clap subcommand, so it appears in no help, page or
//! completion. `berthctl completion <shell>` prints one script through
//! [`completion`].

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Command, CommandFactory, ValueEnum};

/// The argument (argv\[1\]) that asks a binary for its documentation.
pub const GENERATE_DOCS: &str = "__generate-docs";

/// The manual's name in every page's header.
const MANUAL: &str = "Berth Manual";

/// Why the documentation could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("usage: {bin} {GENERATE_DOCS} DIR")]
    Usage { bin: String },
}

/// The shells whose completion scripts Berth ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    pub const ALL: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

    fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }

    /// Where Debian's shells look for a vendor's completion of `bin`,
    /// relative to `/`.
    pub fn install_path(self, bin: &str) -> PathBuf {
        match self {
            Shell::Bash => Path::new("usr/share/bash-completion/completions").join(bin),
            Shell::Zsh => Path::new("usr/share/zsh/vendor-completions").join(format!("_{bin}")),
            Shell::Fish => {
                Path::new("usr/share/fish/vendor_completions.d").join(format!("{bin}.fish"))
            }
        }
    }
}

/// Writes `shell`'s completion script for `cmd` to `out`.
pub fn completion(cmd: Command, shell: Shell, out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = cmd;
    let bin = cmd.get_name().to_owned();
    // clap_complete writes through `Write` and panics on an I/O error (a
    // closed pipe, say): render into memory, then write.
    let mut buf = Vec::new();
    clap_complete::generate(shell.generator(), &mut cmd, bin, &mut buf);
    out.write_all(&buf)?;
    out.flush()
}

/// Every command of the tree with its page's file name: `cmd` itself and
/// each visible subcommand, depth first (no `help`, no hidden commands).
pub fn pages(cmd: Command) -> Vec<(String, Command)> {
    fn walk(cmd: Command, out: &mut Vec<(String, Command)>) {
        let name = cmd
            .get_display_name()
            .unwrap_or_else(|| cmd.get_name())
            .to_owned();
        let subs: Vec<Command> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .cloned()
            .collect();
        out.push((name, cmd));
        for sub in subs {
            walk(sub, out);
        }
    }
    let mut cmd = cmd.disable_help_subcommand(true);
    // Names each subcommand `<bin>-<sub>` and fills in the global flags.
    cmd.build();
    let mut out = Vec::new();
    walk(cmd, &mut out);
    out
}

/// Renders the man pages of `cmd` and its subcommands, in `section` and
/// dated `date`, into `dir/usr/share/man/man<section>/`. Returns the files
/// written.
pub fn man_pages(
    cmd: Command,
    section: &str,
    date: &str,
    dir: &Path,
) -> Result<Vec<PathBuf>, DocError> {
    let version = cmd.get_version().unwrap_or_default().to_owned();
    let mandir = dir.join(format!("usr/share/man/man{section}"));
    create_dir(&mandir)?;
    let mut written = Vec::new();
    for (name, page) in pages(cmd) {
        let path = mandir.join(format!("{name}.{section}"));
        let mut text = Vec::new();
        clap_mangen::Man::new(page)
            .section(section)
            .date(date)
            .source(format!("Berth {version}"))
            .manual(MANUAL)
            .render(&mut text)
            .and_then(|()| fs::write(&path, text))
            .map_err(|source| DocError::Write {
                path: path.clone(),
                source,
            })?;
        written.push(path);
    }
    Ok(written)
}

/// The date in the pages' header, YYYY-MM-DD: `SOURCE_DATE_EPOCH`'s
/// (reproducible builds; `packaging/build-debs` sets it from the changelog),
/// else today's. (An empty date would shift the header's other fields.)
pub fn page_date(source_date_epoch: Option<&str>) -> String {
    let when = source_date_epoch
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    let d = when.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Writes the bash, zsh and fish completions of `cmd` under `dir` (at
/// [`Shell::install_path`]). Returns the files written.
pub fn completions(cmd: Command, dir: &Path) -> Result<Vec<PathBuf>, DocError> {
    let bin = cmd.get_name().to_owned();
    let mut written = Vec::new();
    for shell in Shell::ALL {
        let path = dir.join(shell.install_path(&bin));
        if let Some(parent) = path.parent() {
            create_dir(parent)?;
        }
        let mut text = Vec::new();
        completion(cmd.clone(), shell, &mut text)
            .and_then(|()| fs::write(&path, text))
            .map_err(|source| DocError::Write {
                path: path.clone(),
                source,
            })?;
        written.push(path);
    }
    Ok(written)
}

fn create_dir(dir: &Path) -> Result<(), DocError> {
    fs::create_dir_all(dir).map_err(|source| DocError::Write {
        path: dir.to_owned(),
        source,
    })
}

/// `<bin> __generate-docs DIR`: man pages (in `section`, dated by
/// `source_date_epoch`, see [`page_date`]) and completions of `C` under
/// `DIR`. Returns the files written.
pub fn generate<C: CommandFactory>(
    section: &str,
    args: &[OsString],
    source_date_epoch: Option<&str>,
) -> Result<Vec<PathBuf>, DocError> {
    let cmd = C::command();
    let [dir] = args else {
        return Err(DocError::Usage {
            bin: cmd.get_name().to_owned(),
        });
    };
    let dir = Path::new(dir);
    let date = page_date(source_date_epoch);
    let mut written = man_pages(cmd.clone(), section, &date, dir)?;
    written.extend(completions(cmd, dir)?);
    Ok(written)
}

/// The hook each binary calls first in `main`: when argv\[1\] is
/// [`GENERATE_DOCS`], writes the documentation (see [`generate`]) and
/// returns the exit code to leave with; otherwise `None`, and `main` goes
/// on.
pub fn generate_if_asked<C: CommandFactory>(section: &str) -> Option<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let (first, rest) = args.split_first()?;
    if first != GENERATE_DOCS {
        return None;
    }
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    Some(match generate::<C>(section, rest, epoch.as_deref()) {
        Ok(files) => {
            let _ = writeln!(io::stderr(), "{GENERATE_DOCS}: wrote {} files", files.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(io::stderr(), "{e}");
            ExitCode::FAILURE
        }
    })
}

#[cfg(test)]
mod tests;
