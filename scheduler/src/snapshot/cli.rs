//! `berth-scheduler snapshot save|restore|inspect`.
//!
//! `save` talks to the running scheduler's API (`SnapshotService`) with an
//! admin token, with berthctl's flags and variables (`--endpoint` /
//! `BERTH_ENDPOINT`, `--token` / `BERTH_TOKEN`, `--ca-cert` /
//! `BERTH_CA_CERT`): the running scheduler holds sled's exclusive lock on
//! its data dir, so no second process can open it, and the API is where
//! the store's commits can be paused for a consistent view. A stopped
//! scheduler's data dir needs no snapshot: copy the directory. `restore`
//! and `inspect` work on files only and need no scheduler.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth_proto::auth::BearerToken;
use berth_proto::v1::snapshot_service_client::SnapshotServiceClient;
use berth_proto::v1::SaveSnapshotRequest;
use clap::{Args, Subcommand};

use super::{Inspected, SnapshotError};

/// Exit code of a usage fault (no token, no CA), as for bad configuration.
const EXIT_USAGE: u8 = 64;
/// berthctl's default endpoint.
const DEFAULT_ENDPOINT: &str = "https://127.0.0.1:7400";

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save a snapshot of a running scheduler, through its API (admin token)
    Save {
        /// The snapshot file to write (mode 0600; replaced atomically)
        file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Restore a snapshot into an empty data directory (no scheduler running on it)
    Restore {
        /// The snapshot file
        file: PathBuf,
        /// The data directory to create; it must not exist or be empty
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Verify a snapshot (checksum included) and show what it holds
    Inspect {
        /// The snapshot file
        file: PathBuf,
    },
}

/// How to reach the scheduler's API, as berthctl does.
#[derive(Clone, Args)]
pub struct ApiArgs {
    /// Scheduler URL
    #[arg(long, env = "BERTH_ENDPOINT", default_value = DEFAULT_ENDPOINT, value_name = "URL")]
    pub endpoint: String,
    /// The cluster CA to trust: a PEM file (e.g. <data_dir>/tls/ca.pem) or the PEM itself
    #[arg(long, env = "BERTH_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<String>,
    /// Admin token, berth_<id>_<secret>
    #[arg(
        long,
        env = "BERTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

impl std::fmt::Debug for ApiArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: its presence only.
        f.debug_struct("ApiArgs")
            .field("endpoint", &self.endpoint)
            .field("ca_cert", &self.ca_cert)
            .field("token", &self.token.as_ref().map(|_| berth_proto::REDACTED))
            .finish()
    }
}

/// Failures of the snapshot commands.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    ReadCa {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Trust(#[from] berth_proto::trust::TrustError),
    #[error("cannot reach the scheduler at {endpoint}: {cause}")]
    Connect { endpoint: String, cause: String },
    #[error("the scheduler at {endpoint} refused the snapshot: {code:?}: {message}")]
    Refused {
        endpoint: String,
        code: tonic::Code,
        message: String,
    },
    #[error(transparent)]
    Save(#[from] berth_proto::snapshot::SaveError),
    #[error("the saved snapshot {} does not verify, so it was removed: {source}", path.display())]
    Verify {
        path: PathBuf,
        #[source]
        source: SnapshotError,
    },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("writing the output: {0}")]
    Output(#[source] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            _ => 1,
        }
    }
}

/// Runs a snapshot command, printing to stdout and errors to stderr.
pub async fn main(cmd: SnapshotCommand) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match run(cmd, &mut out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-scheduler snapshot: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

pub async fn run(cmd: SnapshotCommand, out: &mut dyn Write) -> Result<(), CliError> {
    let text = match cmd {
        SnapshotCommand::Save { file, api } => {
            let saved = save(&api, &file).await?;
            format!(
                "saved a snapshot of {} to {}\n{}{}",
                api.endpoint,
                file.display(),
                describe(&saved),
                KEY_REMINDER
            )
        }
        SnapshotCommand::Restore { file, data_dir } => {
            let (f, d) = (file.clone(), data_dir.clone());
            let restored = tokio::task::spawn_blocking(move || super::restore(&f, &d)).await??;
            let secrets = restored
                .tables
                .get(crate::store::Table::Secrets.name())
                .copied()
                .unwrap_or(0);
            format!(
                "restored {} into {}\n{}{}",
                file.display(),
                data_dir.display(),
                describe(&restored),
                restore_reminder(&data_dir, secrets)
            )
        }
        SnapshotCommand::Inspect { file } => {
            let f = file.clone();
            let inspected = tokio::task::spawn_blocking(move || super::inspect(&f)).await??;
            format!("{}: verified\n{}", file.display(), describe(&inspected))
        }
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}

const KEY_REMINDER: &str = "note: the secrets key (secrets.key) is not in the snapshot; \
back it up separately, apart from the snapshot\n";

fn restore_reminder(data_dir: &Path, secrets: u64) -> String {
    format!(
        "IMPORTANT: the secrets key is not in the snapshot. Before starting the scheduler, copy \
the original data dir's secrets.key (or the file secrets.key_file names) to {} with mode 0600; \
without it the {secrets} stored secret(s) cannot be opened, and a scheduler started without \
it creates a new key.\n",
        data_dir
            .join(crate::config::SECRETS_KEY_FILE_NAME)
            .display()
    )
}

/// What a snapshot holds, as the commands print it.
pub fn describe(s: &Inspected) -> String {
    let mut text = format!(
        "  created {} by berth {}, store schema version {}\n  {} bytes, {} records\n",
        s.header.created_at,
        s.header.berth_version,
        s.header.schema_version,
        s.counts.bytes,
        s.counts.records
    );
    for (table, n) in &s.tables {
        text.push_str(&format!("    {table:<18} {n}\n"));
    }
    if s.files.is_empty() {
        text.push_str("  no cluster CA\n");
    } else {
        text.push_str(&format!("  cluster CA: {}\n", s.files.join(", ")));
    }
    text
}

/// `berth-scheduler snapshot save`: streams the snapshot from the API to
/// `file`, then verifies it.
pub async fn save(api: &ApiArgs, file: &Path) -> Result<Inspected, CliError> {
    let token = api.token.as_deref().ok_or_else(|| {
        CliError::Usage("no admin token: pass --token or set BERTH_TOKEN".to_owned())
    })?;
    let ca = api.ca_cert.as_deref().ok_or_else(|| {
        CliError::Usage(
            "no CA to trust: pass --ca-cert (the scheduler's <data_dir>/tls/ca.pem) or set BERTH_CA_CERT"
                .to_owned(),
        )
    })?;
    let ca_pem = if ca.trim_start().starts_with("-----BEGIN") {
        ca.to_owned()
    } else {
        std::fs::read_to_string(ca).map_err(|source| CliError::ReadCa {
            path: ca.to_owned(),
            source,
        })?
    };
    berth_proto::trust::install_crypto_provider();
    let channel = berth_proto::trust::endpoint(&api.endpoint, &ca_pem, None)?
        .connect()
        .await
        .map_err(|e| CliError::Connect {
            endpoint: api.endpoint.clone(),
            cause: berth_proto::errors::error_chain(&e),
        })?;
    let mut client =
        SnapshotServiceClient::with_interceptor(channel, BearerToken::new(Some(token)))
            // The chunks are small; this only lifts tonic's 4 MiB default.
            .max_decoding_message_size(64 * 1024 * 1024);
    let mut stream = client
        .save_snapshot(SaveSnapshotRequest {})
        .await
        .map_err(|s| CliError::Refused {
            endpoint: api.endpoint.clone(),
            code: s.code(),
            message: s.message().to_owned(),
        })?
        .into_inner();
    berth_proto::snapshot::save_stream(&mut stream, file).await?;
    let path = file.to_owned();
    tokio::task::spawn_blocking(move || match super::inspect(&path) {
        Ok(i) => Ok(i),
        Err(source) => {
            let _ = std::fs::remove_file(&path);
            Err(CliError::Verify { path, source })
        }
    })
    .await?
}
