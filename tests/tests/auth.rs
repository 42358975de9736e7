//! Operator tokens through the real binaries: the bootstrap token printed
//! once, `berthctl login` pinning the CA and writing a 0600 config, `token
//! create|ls|revoke`, a read-only token refused every change, an operator
//! token refused tokens and activations, and `audit ls`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::os::unix::fs::PermissionsExt as _;

use berth_tests::{ctl, ctl_env, json, ok_stdout, Scheduler};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn login_tokens_roles_and_audit_through_berthctl() {
    let dir = tempfile::tempdir().unwrap();
    let s = Scheduler::start(&dir.path().join("data")).await;
    let ep = s.endpoint();
    let ca = s.ca_path();

    // No token, or a wrong one: not logged in.
    for out in [
        ctl(&ep, &ca, &["cluster", "ls"], None),
        s.ctl_as(&berth_tests::generate_token(), &["cluster", "ls"]),
    ] {
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).starts_with("error: not logged in or the token is not valid"),
            "{}",
            stderr(&out)
        );
    }
    // `version` needs no token.
    ok_stdout(&ctl(&ep, &ca, &["version"], None));

    // login pins the CA by its fingerprint and checks the token before
    // writing anything.
    let fingerprint = berth_proto::trust::fingerprint_pem(&s.ca_pem()).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = home.join(".config/berth/config.toml");
    let bad = ctl_env(
        &[
            "login",
            "--endpoint",
            &ep,
            "--token",
            &berth_tests::generate_token(),
            "--ca-fingerprint",
            &fingerprint,
        ],
        None,
        Some(&home),
        &[],
    );
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(!config.exists());
    // A fingerprint that is not the scheduler's CA's: nothing is trusted.
    let wrong = ctl_env(
        &[
            "login",
            "--endpoint",
            &ep,
            "--token",
            &s.admin_token,
            "--ca-fingerprint",
            &format!("sha256:{}", "ab".repeat(32)),
        ],
        None,
        Some(&home),
        &[],
    );
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains("refusing to trust it"),
        "{}",
        stderr(&wrong)
    );
    assert!(!config.exists());
    // No fingerprint and no CA: a usage error (exit 2).
    let none = ctl_env(
        &["login", "--endpoint", &ep, "--token", &s.admin_token],
        None,
        Some(&home),
        &[],
    );
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    assert!(!config.exists());
    let out = ok_stdout(&ctl_env(
        &[
            "login",
            "--endpoint",
            &ep,
            "--token",
            &s.admin_token,
            "--ca-fingerprint",
            &fingerprint,
        ],
        None,
        Some(&home),
        &[],
    ));
    assert!(out.starts_with(&format!("logged in to {ep}")), "{out}");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&s.admin_token), "{text}");
    assert!(text.contains(&fingerprint), "{text}");
    assert!(text.contains("BEGIN CERTIFICATE"), "{text}");
    // From now on the config file is enough.
    let as_logged_in = |args: &[&str]| ctl_env(args, None, Some(&home), &[]);
    ok_stdout(&as_logged_in(&["cluster", "ls"]));

    // A read-only token: reads work, every change is refused with the
    // server's message.
    let created = ok_stdout(&as_logged_in(&[
        "token",
        "create",
        "ci",
        "--role",
        "read-only",
    ]));
    let ro = created.lines().next().unwrap().to_owned();
    assert!(ro.starts_with("berth_"), "{created}");
    ok_stdout(&s.ctl_as(&ro, &["cluster", "ls"]));
    ok_stdout(&s.ctl_as(&ro, &["taskdef", "ls"]));
    for args in [
        &["cluster", "create", "x"][..],
        &["cluster", "delete", "x"],
        &["taskdef", "deregister", "web:1"],
        &["task", "stop", "abc"],
        &["token", "ls"],
        &["token", "create", "y", "--role", "admin"],
        &["activation", "create"],
        &["activation", "ls"],
        &["instance", "deregister", "abc"],
    ] {
        let out = s.ctl_as(&ro, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).starts_with("error: permission denied: ") && stderr(&out).contains("role"),
            "{args:?}: {}",
            stderr(&out)
        );
    }

    // An operator token may change things, but not tokens or activations.
    let op = ok_stdout(&as_logged_in(&[
        "token", "create", "ops", "--role", "operator",
    ]));
    let op = op.lines().next().unwrap().to_owned();
    ok_stdout(&s.ctl_as(&op, &["cluster", "create", "ops"]));
    for args in [
        &["token", "ls"][..],
        &["activation", "create", "--cluster", "ops"],
        &["activation", "ls"],
    ] {
        let out = s.ctl_as(&op, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).starts_with("error: permission denied: ")
                && stderr(&out).contains("admin"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    ok_stdout(&as_logged_in(&["activation", "ls"]));

    // token ls shows it; revoke stops it at once.
    let tokens = json(&as_logged_in(&["token", "ls", "-o", "json"]));
    let ci = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci")
        .unwrap()
        .clone();
    assert_eq!(ci["role"], "read-only");
    assert_eq!(ci["status"], "ACTIVE");
    let id = ci["id"].as_str().unwrap();
    let table = ok_stdout(&as_logged_in(&["token", "ls"]));
    assert!(
        table.lines().any(|l| l.starts_with(id) && l.contains("ci")),
        "{table}"
    );
    assert!(!table.contains(&ro), "{table}");
    ok_stdout(&as_logged_in(&["token", "revoke", id]));
    let out = s.ctl_as(&ro, &["cluster", "ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not logged in or the token is not valid"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("revoked"), "{}", stderr(&out));

    // The audit log shows the calls, who made them, and no reads.
    let audit = ok_stdout(&as_logged_in(&["audit", "ls", "--since", "1h"]));
    assert!(audit.contains("TokenService/CreateToken"), "{audit}");
    assert!(audit.contains("TokenService/RevokeToken"), "{audit}");
    assert!(audit.contains(&format!("token/{id}")), "{audit}");
    assert!(audit.contains("ci ("), "{audit}");
    assert!(audit.contains("PermissionDenied"), "{audit}");
    assert!(!audit.contains("ListClusters"), "{audit}");
    let events = json(&as_logged_in(&[
        "audit", "ls", "--limit", "1", "-o", "json",
    ]));
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["method"], "/berth.v1.TokenService/RevokeToken");
    assert_eq!(events[0]["tokenName"], "bootstrap");
}

#[tokio::test]
async fn without_a_configured_token_one_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    // An empty BERTH_BOOTSTRAP_TOKEN counts as unset.
    let mut s =
        Scheduler::start_with(&dir.path().join("data"), &[("BERTH_BOOTSTRAP_TOKEN", "")]).await;
    let log = s.log_text();
    let printed: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("bootstrap admin token: "))
        .collect();
    assert_eq!(printed.len(), 1, "{log}");
    let token = printed[0].trim().to_owned();
    ok_stdout(&s.ctl_as(&token, &["token", "ls"]));
    // Not again after a restart; the token still works.
    s.restart().await;
    let log = s.log_text();
    assert_eq!(log.matches("bootstrap admin token: ").count(), 1, "{log}");
    let out = ok_stdout(&s.ctl_as(&token, &["token", "ls"]));
    assert!(out.contains("bootstrap"), "{out}");
}
