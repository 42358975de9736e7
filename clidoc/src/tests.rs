//! The page list follows the command tree; every file lands where Debian
//! looks for it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use super::*;
use clap::{Parser, Subcommand};

/// A tool.
#[derive(Debug, Parser)]
#[command(name = "tool", version = "1.2.3")]
struct Cli {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Snapshots of the store
    #[command(subcommand)]
    Snapshot(Snap),
    /// Runs it
    Run,
    /// Not for people
    #[command(hide = true)]
    Secret,
}

#[derive(Debug, Subcommand)]
enum Snap {
    /// Saves one
    Save,
    /// Restores one
    Restore,
}

#[test]
fn one_page_per_visible_command_depth_first() {
    let names: Vec<String> = pages(Cli::command()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "tool",
            "tool-snapshot",
            "tool-snapshot-save",
            "tool-snapshot-restore",
            "tool-run"
        ]
    );
}

#[test]
fn generate_writes_pages_and_completions_where_debian_looks() {
    let dir = tempfile::tempdir().unwrap();
    let args = [dir.path().as_os_str().to_owned()];
    let files = generate::<Cli>("8", &args, Some("1796464800")).unwrap();
    let mut rel: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string())
        .collect();
    rel.sort();
    assert_eq!(
        rel,
        [
            "usr/share/bash-completion/completions/tool",
            "usr/share/fish/vendor_completions.d/tool.fish",
            "usr/share/man/man8/tool-run.8",
            "usr/share/man/man8/tool-snapshot-restore.8",
            "usr/share/man/man8/tool-snapshot-save.8",
            "usr/share/man/man8/tool-snapshot.8",
            "usr/share/man/man8/tool.8",
            "usr/share/zsh/vendor-completions/_tool",
        ]
    );
    let page =
        fs::read_to_string(dir.path().join("usr/share/man/man8/tool-snapshot-save.8")).unwrap();
    assert!(
        page.contains(r#".TH tool-snapshot-save 8 2026-12-05 "Berth 1.2.3" "Berth Manual""#),
        "{page}"
    );
    assert!(page.contains("Saves one"), "{page}");
    let bash = fs::read_to_string(
        dir.path()
            .join("usr/share/bash-completion/completions/tool"),
    )
    .unwrap();
    assert!(bash.contains("complete -F _tool"), "{bash}");
    assert!(bash.contains("snapshot"), "{bash}");
}

#[test]
fn generate_needs_exactly_one_directory() {
    let err = generate::<Cli>("1", &[], None).unwrap_err();
    assert_eq!(err.to_string(), "usage: tool __generate-docs DIR");
}

#[test]
fn completion_scripts_name_the_binary() {
    for (shell, needle) in [
        (Shell::Bash, "complete -F _tool"),
        (Shell::Zsh, "#compdef tool"),
        (Shell::Fish, "complete -c tool"),
    ] {
        let mut out = Vec::new();
        completion(Cli::command(), shell, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(needle), "{shell:?}: {text}");
    }
}

#[test]
fn page_date_comes_from_source_date_epoch() {
    assert_eq!(page_date(Some("1796464800")), "2026-12-05");
    assert_eq!(page_date(Some("0")), "1970-01-01");
    // Unset or garbage: today, still a date.
    assert_eq!(page_date(Some("soon")).len(), 10);
    assert_eq!(page_date(None).len(), 10);
}
