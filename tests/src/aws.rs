//! The real AWS clients against a scheduler's ECS API
//! ([`Scheduler::ecs_endpoint`]): Debian's aws CLI v2 (`awscli`, always run
//! as `/usr/bin/aws`, never whatever `aws` is first on `PATH`) and boto3
//! from the virtualenv `scripts/install-deps --tests` makes (`/opt/berth-test-venv`,
//! or the Python named by `BERTH_TEST_PYTHON`).
//!
//! Credentials are an operator token's halves ([`access_keys`]). Each
//! [`Aws`] runs its clients in an isolated environment: only `PATH`, a
//! fresh `HOME`, the credentials, region `us-east-1`, the scheduler's CA as
//! `AWS_CA_BUNDLE`, no config or credentials file, no pager, no instance
//! metadata, and one attempt per call (`AWS_MAX_ATTEMPTS=1`: a failure
//! shows at once instead of being retried). The CLI's waiters poll every
//! second: `HOME/.aws/models` carries ECS's own `waiters-2.json` from the
//! installed CLI with only `delay` and `maxAttempts` changed (see
//! [`WAITER_DELAY_S`]). Every run has a hard limit (coreutils `timeout`)
//! that fails the test.
//!
//! A missing client fails the test with the install step
//! (`scripts/install-deps`); nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::Scheduler;

/// Debian's aws CLI v2. This machine may have other `aws` commands on
/// `PATH` (a pip-installed v1); the tests always name this one.
pub const AWS_CLI: &str = "/usr/bin/aws";

/// ECS's waiter model as the Debian package installs it; the tests copy it
/// with shorter delays.
pub const AWS_CLI_ECS_WAITERS: &str =
    "/usr/lib/python3/dist-packages/awscli/botocore/data/ecs/2014-11-13/waiters-2.json";

/// Where `scripts/install-deps` puts the test virtualenv with boto3.
pub const VENV_PYTHON: &str = "/opt/berth-test-venv/bin/python";

/// The CLI waiters' delay between polls, in seconds.
pub const WAITER_DELAY_S: u64 = 1;

/// The CLI waiters' attempts: with [`WAITER_DELAY_S`], how long a wait may
/// take before it fails.
pub const WAITER_MAX_ATTEMPTS: u64 = 90;

/// The AWS credentials of an operator token `berth_<id>_<secret>`: (access
/// key id, secret access key).
pub fn access_keys(token: &str) -> (String, String) {
    let rest = token
        .strip_prefix("berth_")
        .unwrap_or_else(|| panic!("{token:?} is not an operator token berth_<id>_<secret>"));
    let (id, secret) = rest
        .split_once('_')
        .unwrap_or_else(|| panic!("{token:?} is not an operator token berth_<id>_<secret>"));
    (id.to_owned(), secret.to_owned())
}

/// The Python with boto3: `BERTH_TEST_PYTHON`, else the install-deps venv.
pub fn python() -> PathBuf {
    let p = std::env::var_os("BERTH_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(VENV_PYTHON));
    assert!(
        p.exists(),
        "{} is missing: the ECS API tests run boto3 from the test virtualenv; \
         run scripts/install-deps --tests (as root) to create it, or point BERTH_TEST_PYTHON \
         at a Python with boto3",
        p.display()
    );
    let import = Command::new(&p)
        .args(["-c", "import boto3"])
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", p.display()));
    assert!(
        import.status.success(),
        "{} has no boto3 ({}): run scripts/install-deps --tests (as root), which installs the pinned \
         boto3 into {VENV_PYTHON}'s virtualenv",
        p.display(),
        String::from_utf8_lossy(&import.stderr).trim()
    );
    p
}

/// Fails the test unless Debian's aws CLI is installed (call it before
/// starting anything, so a missing client fails at once).
pub fn require_cli() {
    assert!(
        Path::new(AWS_CLI).exists(),
        "{AWS_CLI} is missing: the ECS API tests run Debian's aws CLI v2; \
         run scripts/install-deps --tests (as root), which installs the awscli package"
    );
}

/// What a client run printed, and how it ended.
#[derive(Debug)]
pub struct AwsOut {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl AwsOut {
    /// stdout as JSON; panics with both streams when the run failed.
    pub fn json(&self) -> Value {
        assert!(self.status.success(), "client failed: {self}");
        if self.stdout.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("client printed no JSON ({e}): {self}"))
    }

    /// The AWS error code of a failed CLI run (`An error occurred (Code)
    /// when calling …`); panics when the run succeeded or shows none.
    pub fn error_code(&self) -> String {
        assert!(
            !self.status.success(),
            "expected the call to fail, it succeeded: {self}"
        );
        self.stderr
            .split_once("An error occurred (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(code, _)| code.to_owned())
            .unwrap_or_else(|| panic!("no AWS error code in the CLI's output: {self}"))
    }
}

impl std::fmt::Display for AwsOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            crate::cluster::tail(&self.stderr, 60)
        )
    }
}

/// The aws CLI and boto3, signed with one operator token's keys, against
/// one scheduler's ECS API.
#[derive(Debug)]
pub struct Aws {
    pub endpoint: String,
    ca: PathBuf,
    key_id: String,
    secret: String,
    /// The clients' HOME (holds the waiter model).
    home: tempfile::TempDir,
    /// The hard limit of one run.
    pub limit: Duration,
}

impl Aws {
    /// Clients signing with `token`'s keys.
    pub fn new(sched: &Scheduler, token: &str) -> Self {
        let (id, secret) = access_keys(token);
        Self::with_keys(sched, &id, &secret)
    }

    /// Clients signing with any access key id and secret (wrong ones too).
    pub fn with_keys(sched: &Scheduler, key_id: &str, secret: &str) -> Self {
        require_cli();
        let home = tempfile::tempdir().unwrap();
        write_fast_waiters(home.path());
        Self {
            endpoint: sched.ecs_endpoint(),
            ca: sched.ca_path(),
            key_id: key_id.to_owned(),
            secret: secret.to_owned(),
            home,
            limit: Duration::from_secs(120),
        }
    }

    /// The isolated environment both clients run with.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.arg("--kill-after=5")
            .arg(self.limit.as_secs().to_string())
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", self.home.path())
            .env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CA_BUNDLE", &self.ca)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_PAGER", "")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_RETRY_MODE", "standard")
            .env(
                "AWS_DATA_PATH",
                self.home.path().join(".aws").join("models"),
            )
            .env("BERTH_ECS_ENDPOINT", &self.endpoint)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn finish(&self, what: &str, mut cmd: Command) -> AwsOut {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let out = AwsOut {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        // timeout(1): 124 when the limit ran out, 137 when KILL followed.
        assert!(
            !matches!(out.status.code(), Some(124 | 137)),
            "{what} did not finish within {:?}: {out}",
            self.limit
        );
        out
    }

    /// `aws <args> --endpoint-url … --output json`, as it ran.
    pub fn run(&self, args: &[&str]) -> AwsOut {
        let mut cmd = self.command(Path::new(AWS_CLI));
        cmd.args(args)
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .args(["--output", "json"])
            .args(["--cli-connect-timeout", "5", "--cli-read-timeout", "30"]);
        self.finish(&format!("aws {}", args.join(" ")), cmd)
    }

    /// `aws <args>`'s JSON; panics when it fails.
    pub fn ok(&self, args: &[&str]) -> Value {
        self.run(args).json()
    }

    /// The AWS error code `aws <args>` fails with; panics when it succeeds.
    pub fn err(&self, args: &[&str]) -> String {
        self.run(args).error_code()
    }

    /// Runs the Python `script` (with boto3) with `args`, in the same
    /// environment; `BERTH_ECS_ENDPOINT` is the endpoint to use.
    pub fn python(&self, script: &Path, args: &[&str]) -> AwsOut {
        let python = python();
        let mut cmd = self.command(&python);
        cmd.arg(script).args(args);
        self.finish(&format!("{} {}", python.display(), script.display()), cmd)
    }
}

/// ECS's waiter model from the installed CLI with a short delay, where the
/// CLI's loader looks before its own data (`HOME/.aws/models`).
fn write_fast_waiters(home: &Path) {
    let text = std::fs::read_to_string(AWS_CLI_ECS_WAITERS).unwrap_or_else(|e| {
        panic!(
            "{AWS_CLI_ECS_WAITERS}: {e}; the ECS API tests need Debian's awscli package \
             (scripts/install-deps --tests)"
        )
    });
    let mut model: Value = serde_json::from_str(&text).unwrap();
    let waiters = model["waiters"]
        .as_object_mut()
        .expect("waiters-2.json has waiters");
    for w in waiters.values_mut() {
        w["delay"] = WAITER_DELAY_S.into();
        w["maxAttempts"] = WAITER_MAX_ATTEMPTS.into();
    }
    let dir = home
        .join(".aws")
        .join("models")
        .join("ecs")
        .join("2014-11-13");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("waiters-2.json"),
        serde_json::to_string_pretty(&model).unwrap(),
    )
    .unwrap();
}
