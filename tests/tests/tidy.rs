//! The project's standing rules, as a test over the whole workspace:
//! every Rust source file opens with a `//!` doc; no test is skipped
//! (the ignore attribute) or passes by panicking (the should_panic
//! attribute); no todo/unimplemented macros in non-test code.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name()
                .is_some_and(|n| n == "target" || n == "testdata")
            {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn workspace_rules_hold() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for krate in [
        "proto",
        "scheduler",
        "agent",
        "ctl",
        "clidoc",
        "tests",
        "testkit",
    ] {
        rust_files(&root.join(krate), &mut files);
    }
    assert!(
        files.len() > 20,
        "found only {} files under {}",
        files.len(),
        root.display()
    );
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        if !text.trim_start().starts_with("//!") {
            problems.push(format!("{rel}: must open with a //! doc"));
        }
        for banned in [concat!("#[", "ignore"), concat!("#[", "should_panic")] {
            if text.contains(banned) {
                problems.push(format!("{rel}: uses {banned}]"));
            }
        }
        let is_test_file = rel.contains("/tests/") || rel.starts_with("tests/");
        if !is_test_file {
            for banned in [concat!("todo", "!("), concat!("unimplemented", "!(")] {
                if text.contains(banned) {
                    problems.push(format!("{rel}: contains {banned}"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "project rules broken:\n{}",
        problems.join("\n")
    );
}
