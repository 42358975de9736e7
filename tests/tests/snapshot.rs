//! Backups through the real binaries: `berthctl snapshot save` and
//! `berth-scheduler snapshot save` (with berthctl's variables) against a
//! running scheduler, `berth-scheduler snapshot inspect` and `restore`, and
//! a scheduler started on the restored data dir answering the same token
//! with the same data.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::Path;
use std::process::{Command, Output};

use berth_tests::{bin, ok_stdout, Scheduler};

const WRAPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/describe-web.json");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `berth-scheduler snapshot ARGS` with a clean environment plus `env`.
fn snapshot(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin("berth-scheduler"))
        .arg("snapshot")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn snapshots_through_both_command_lines_restore_into_a_working_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let s = Scheduler::start(&dir.path().join("data")).await;
    ok_stdout(&s.ctl(&["cluster", "create", "prod"]));
    assert_eq!(
        ok_stdout(&s.ctl(&["taskdef", "register", "-f", WRAPPED]))
            .lines()
            .next(),
        Some("web:1")
    );

    let by_ctl = dir.path().join("ctl.snap");
    let out = s.ctl(&["snapshot", "save", p(&by_ctl)]);
    assert!(ok_stdout(&out).contains("saved a snapshot"));
    assert!(text(&out.stderr).contains("secrets.key"), "{out:?}");

    let endpoint = s.endpoint();
    let ca = s.ca_path();
    let env = [
        ("BERTH_ENDPOINT", endpoint.as_str()),
        ("BERTH_CA_CERT", p(&ca)),
        ("BERTH_TOKEN", s.admin_token.as_str()),
    ];
    let by_scheduler = dir.path().join("scheduler.snap");
    let out = snapshot(&["save", p(&by_scheduler)], &env);
    let said = ok_stdout(&out);
    assert!(
        said.contains("cluster CA: tls/ca.pem, tls/ca.key"),
        "{said}"
    );
    assert!(said.contains("secrets.key"), "{said}");
    // No token: a usage fault, and no file.
    let out = snapshot(&["save", p(&dir.path().join("no.snap"))], &env[..2]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(text(&out.stderr).contains("BERTH_TOKEN"), "{out:?}");
    assert!(!dir.path().join("no.snap").exists());

    for file in [&by_ctl, &by_scheduler] {
        let said = ok_stdout(&snapshot(&["inspect", p(file)], &[]));
        assert!(said.contains("verified"), "{said}");
        assert!(said.contains("task_definitions"), "{said}");
    }

    let restored = dir.path().join("restored");
    let out = snapshot(&["restore", p(&by_ctl), "--data-dir", p(&restored)], &[]);
    let said = ok_stdout(&out);
    assert!(
        said.contains("IMPORTANT") && said.contains("secrets.key"),
        "{said}"
    );
    let out = snapshot(&["restore", p(&by_ctl), "--data-dir", p(&restored)], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stderr).contains("not empty"), "{out:?}");

    // The restored store has the tokens: the bootstrap token is ignored
    // and the original admin token works.
    let other = berth_tests::generate_token();
    let mut r =
        Scheduler::start_with(&restored, &[("BERTH_BOOTSTRAP_TOKEN", other.as_str())]).await;
    let clusters = ok_stdout(&r.ctl_as(&s.admin_token, &["cluster", "ls"]));
    assert!(clusters.contains("prod"), "{clusters}");
    assert_eq!(
        ok_stdout(&r.ctl_as(&s.admin_token, &["taskdef", "register", "-f", WRAPPED]))
            .lines()
            .next(),
        Some("web:2")
    );
    assert!(!r.ctl_as(&other, &["cluster", "ls"]).status.success());
    assert_eq!(r.ca_pem(), s.ca_pem());
    r.terminate();
}
