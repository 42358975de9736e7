//! berthctl's one error type: every failure a command can meet, rendered as
//! human sentences with a hint where one helps, and mapped to an exit code.
//!
//! Exit codes: 1 for errors, 2 for usage (clap's own, and arguments clap
//! cannot check such as an invalid endpoint), 3 when the scheduler cannot be
//! reached.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

use tonic::Code;

/// Exit code for errors reported by the scheduler or met locally.
pub const EXIT_ERROR: u8 = 1;
/// Exit code for wrong usage (clap uses it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the scheduler cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

/// The scheduler a request went to, and which setting chose it, for
/// messages about reaching it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    /// "set by BERTH_ENDPOINT", ... as [`crate::client::Origin`] describes itself.
    pub origin: String,
}

/// One resource a describe call could not find, as ECS's `Failure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingItem {
    pub arn: String,
    pub reason: String,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// No connection, or the connection broke (gRPC `Unavailable`).
    #[error("cannot reach the Berth scheduler at {}: {cause}", target.url)]
    Unreachable { target: Target, cause: String },

    /// Something answered HTTP at the endpoint, but not gRPC: not a scheduler.
    #[error("the server at {} is not a Berth scheduler: {message}", target.url)]
    NotAScheduler { target: Target, message: String },

    /// The scheduler took too long (gRPC `DeadlineExceeded`).
    #[error("the Berth scheduler at {} did not answer in time: {message}", target.url)]
    Timeout { target: Target, message: String },

    /// gRPC `InvalidArgument`; one finding per line, each naming its JSON path.
    #[error("invalid request:{}", indented(.findings))]
    InvalidRequest { findings: Vec<String> },

    #[error("not found: {message}")]
    NotFound { message: String },

    #[error("already exists: {message}")]
    AlreadyExists { message: String },

    /// gRPC `FailedPrecondition`: the request is valid but the state forbids it.
    #[error("not possible now: {message}")]
    FailedPrecondition { message: String },

    #[error("permission denied: {message}")]
    PermissionDenied { message: String },

    #[error("not logged in or the token is not valid (berthctl login --endpoint URL --token TOKEN): {message}")]
    Unauthenticated { message: String },

    #[error("the Berth scheduler at {endpoint} does not implement this request: {message}")]
    Unimplemented { endpoint: String, message: String },

    /// Any other status: a fault in the scheduler.
    #[error("the Berth scheduler failed ({code}): {message}")]
    Server { code: String, message: String },

    /// A describe call answered, but some of the requested resources do not exist.
    #[error("{}", missing_text(.items))]
    Missing { items: Vec<MissingItem> },

    /// StartTask/RunTask placed nothing; one failure per instance (or
    /// reason), with ECS's reason.
    #[error("no task started:{}", indented(&.items.iter().map(failure_line).collect::<Vec<_>>()))]
    NotStarted { items: Vec<MissingItem> },

    /// DeleteTaskDefinitions left some revisions; one failure each, with
    /// ECS's reason.
    #[error("not deleted:{}", indented(&.items.iter().map(failure_line).collect::<Vec<_>>()))]
    NotDeleted { items: Vec<MissingItem> },

    /// `task exec`: the remote command ended with a non-zero exit code,
    /// which berthctl exits with (nothing is printed).
    #[error("the command exited with {code}")]
    RemoteExit { code: u8 },

    /// `--wait` saw a task stop, or gave up.
    #[error("{message}")]
    TaskFailed { message: String },

    /// The scheduler answered something berthctl cannot read.
    #[error("unexpected answer from the Berth scheduler: {what}")]
    BadResponse { what: String },

    /// Input berthctl refuses before sending it (an empty secret value, …).
    #[error("{message}")]
    InvalidInput { message: String },

    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },

    /// No cluster CA to trust: berthctl never talks TLS without one.
    #[error("no cluster CA to trust for {endpoint}")]
    NoCa { endpoint: String },

    #[error("invalid CA certificate ({origin}): {reason}")]
    InvalidCa { origin: String, reason: String },

    /// `login` could not fetch and verify the cluster CA.
    #[error("cannot pin the cluster CA of {endpoint}: {reason}")]
    UntrustedCa { endpoint: String, reason: String },

    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: String,
        #[source]
        source: io::Error,
    },

    #[error("cannot write {path}: {source}")]
    WriteFile {
        path: String,
        #[source]
        source: io::Error,
    },

    /// A command that needs something the command line did not give.
    #[error("{0}")]
    Usage(String),

    #[error("invalid config file {}: {reason}", path.display())]
    Config { path: PathBuf, reason: String },

    /// Writing to stdout or stderr failed (a closed pipe is not reported).
    #[error("cannot write output: {0}")]
    Output(#[source] io::Error),
}

fn indented(lines: &[String]) -> String {
    lines.iter().fold(String::new(), |mut s, l| {
        let _ = write!(s, "\n  {l}");
        s
    })
}

/// `ARN: REASON (detail)`, one failure of a start.
pub fn failure_line(m: &MissingItem) -> String {
    let mut s = format!("{}: {}", m.arn, m.reason);
    if !m.detail.is_empty() {
        let _ = write!(s, " ({})", m.detail);
    }
    s
}

fn missing_text(items: &[MissingItem]) -> String {
    let one = |m: &MissingItem| {
        let mut s = format!("{} ({})", m.arn, m.reason);
        if !m.detail.is_empty() {
            let _ = write!(s, ": {}", m.detail);
        }
        s
    };
    match items {
        [m] => format!("not found: {}", one(m)),
        _ => format!(
            "not found:{}",
            indented(&items.iter().map(one).collect::<Vec<_>>())
        ),
    }
}

impl CtlError {
    /// Maps a gRPC status from the scheduler at `target` to an error.
    pub fn from_status(status: tonic::Status, target: &Target) -> Self {
        let message = match status.message().trim() {
            "" => "(no details given)".to_owned(),
            m => m.to_owned(),
        };
        let target = target.clone();
        // tonic's words for an HTTP answer without gRPC in it (a web server,
        // a proxy's error page), whatever code it maps the HTTP status to.
        if message.starts_with("grpc-status header missing") {
            return Self::NotAScheduler { target, message };
        }
        match status.code() {
            Code::InvalidArgument => Self::InvalidRequest {
                findings: message
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
            },
            Code::NotFound => Self::NotFound { message },
            Code::AlreadyExists => Self::AlreadyExists { message },
            Code::FailedPrecondition => Self::FailedPrecondition { message },
            Code::PermissionDenied => Self::PermissionDenied { message },
            Code::Unauthenticated => Self::Unauthenticated { message },
            Code::Unavailable => Self::Unreachable {
                target,
                cause: message,
            },
            Code::DeadlineExceeded => Self::Timeout { target, message },
            Code::Unimplemented => Self::Unimplemented {
                endpoint: target.url,
                message,
            },
            code => Self::Server {
                code: format!("{code:?}"),
                message,
            },
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } | Self::NotAScheduler { .. } => {
                EXIT_UNREACHABLE
            }
            Self::InvalidEndpoint { .. }
            | Self::NoCa { .. }
            | Self::InvalidCa { .. }
            | Self::InvalidInput { .. }
            | Self::Usage(_) => EXIT_USAGE,
            Self::RemoteExit { code } => *code,
            _ => EXIT_ERROR,
        }
    }

    /// A next step for the operator, when there is an obvious one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::UntrustedCa { .. } => Some(
                "compare --ca-fingerprint with the `cluster CA fingerprint` line the \
                 scheduler prints at start"
                    .to_owned(),
            ),
            Self::NoCa { .. } => Some(
                "run `berthctl login`, or pass the CA with --ca-cert FILE or BERTH_CA_CERT \
                 (the scheduler keeps it in <data_dir>/tls/ca.pem)"
                    .to_owned(),
            ),
            Self::Unreachable { target, .. }
            | Self::Timeout { target, .. }
            | Self::NotAScheduler { target, .. } => Some(format!(
                "is the scheduler running there? The endpoint is {}; point berthctl at the \
                 scheduler with --endpoint URL or BERTH_ENDPOINT",
                target.origin
            )),
            Self::PermissionDenied { .. } => Some(
                "the operator token in use is not allowed to do this; ask an administrator \
                 for one that is"
                    .to_owned(),
            ),
            Self::Unauthenticated { .. } => Some(
                "the scheduler requires an operator token: pass one with --token or \
                 BERTH_TOKEN, or save one with `berthctl login`"
                    .to_owned(),
            ),
            Self::Unimplemented { .. } => Some(format!(
                "the scheduler may be older than berthctl {}",
                berth_proto::VERSION
            )),
            _ => None,
        }
    }

    /// Everything to print on stderr: `error: ...` and the hint, if any.
    pub fn render(&self) -> String {
        let mut s = format!("error: {self}");
        if let Some(h) = self.hint() {
            let _ = write!(s, "\nhint: {h}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{expect, Expect};
    use tonic::Status;

    fn check(status: Status, expected: Expect) {
        let target = Target {
            url: "http://127.0.0.1:7400".to_owned(),
            origin: "set by BERTH_ENDPOINT".to_owned(),
        };
        let err = CtlError::from_status(status, &target);
        expected.assert_eq(&format!("[exit {}]\n{}", err.exit_code(), err.render()));
    }

    #[test]
    fn invalid_argument_lists_each_path_on_its_own_line() {
        check(
            Status::invalid_argument(
                "containerDefinitions[0].image: is required\n\
                 containerDefinitions[1].portMappings[0].hostPort: 70000 is not a port\n",
            ),
            expect![[r#"
                [exit 1]
                error: invalid request:
                  containerDefinitions[0].image: is required
                  containerDefinitions[1].portMappings[0].hostPort: 70000 is not a port"#]],
        );
        check(
            Status::invalid_argument("family: must not be empty"),
            expect![[r#"
                [exit 1]
                error: invalid request:
                  family: must not be empty"#]],
        );
    }

    #[test]
    fn maps_every_status_to_a_sentence() {
        check(
            Status::not_found("task definition web:9 does not exist"),
            expect![[r#"
                [exit 1]
                error: not found: task definition web:9 does not exist"#]],
        );
        check(
            Status::already_exists("cluster prod exists"),
            expect![[r#"
                [exit 1]
                error: already exists: cluster prod exists"#]],
        );
        check(
            Status::failed_precondition("cluster prod still has 2 container instances"),
            expect![[r#"
                [exit 1]
                error: not possible now: cluster prod still has 2 container instances"#]],
        );
        check(
            Status::unavailable("tcp connect error"),
            expect![[r#"
                [exit 3]
                error: cannot reach the Berth scheduler at http://127.0.0.1:7400: tcp connect error
                hint: is the scheduler running there? The endpoint is set by BERTH_ENDPOINT; point berthctl at the scheduler with --endpoint URL or BERTH_ENDPOINT"#]],
        );
        check(
            Status::deadline_exceeded("Timeout expired"),
            expect![[r#"
                [exit 3]
                error: the Berth scheduler at http://127.0.0.1:7400 did not answer in time: Timeout expired
                hint: is the scheduler running there? The endpoint is set by BERTH_ENDPOINT; point berthctl at the scheduler with --endpoint URL or BERTH_ENDPOINT"#]],
        );
        check(
            Status::permission_denied("token ops-ro may only read"),
            expect![[r#"
                [exit 1]
                error: permission denied: token ops-ro may only read
                hint: the operator token in use is not allowed to do this; ask an administrator for one that is"#]],
        );
        check(
            Status::unauthenticated("missing token"),
            expect![[r#"
                [exit 1]
                error: not logged in or the token is not valid (berthctl login --endpoint URL --token TOKEN): missing token
                hint: the scheduler requires an operator token: pass one with --token or BERTH_TOKEN, or save one with `berthctl login`"#]],
        );
        check(
            Status::unimplemented(""),
            expect![[r#"
                [exit 1]
                error: the Berth scheduler at http://127.0.0.1:7400 does not implement this request: (no details given)
                hint: the scheduler may be older than berthctl 0.1.0"#]],
        );
        check(
            Status::unimplemented("grpc-status header missing, mapped from HTTP status code 404"),
            expect![[r#"
                [exit 3]
                error: the server at http://127.0.0.1:7400 is not a Berth scheduler: grpc-status header missing, mapped from HTTP status code 404
                hint: is the scheduler running there? The endpoint is set by BERTH_ENDPOINT; point berthctl at the scheduler with --endpoint URL or BERTH_ENDPOINT"#]],
        );
        check(
            Status::internal("store is corrupt"),
            expect![[r#"
                [exit 1]
                error: the Berth scheduler failed (Internal): store is corrupt"#]],
        );
    }

    #[test]
    fn renders_missing_items_and_local_errors() {
        let one = CtlError::Missing {
            items: vec![MissingItem {
                arn: "arn:berth:ecs:local:000000000000:cluster/nope".into(),
                reason: "MISSING".into(),
                detail: String::new(),
            }],
        };
        expect![[r#"
            error: not found: arn:berth:ecs:local:000000000000:cluster/nope (MISSING)"#]]
        .assert_eq(&one.render());
        let two = CtlError::Missing {
            items: vec![
                MissingItem {
                    arn: "a".into(),
                    reason: "MISSING".into(),
                    detail: String::new(),
                },
                MissingItem {
                    arn: "b".into(),
                    reason: "INACTIVE".into(),
                    detail: "deregistered".into(),
                },
            ],
        };
        expect![[r#"
            error: not found:
              a (MISSING)
              b (INACTIVE): deregistered"#]]
        .assert_eq(&two.render());
        let read = CtlError::ReadFile {
            path: "web.json".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        expect![[r#"
            error: cannot read web.json: entity not found"#]]
        .assert_eq(&read.render());
        assert_eq!(read.exit_code(), EXIT_ERROR);
    }
}
