//! `berthctl secret put|ls|rm`.
//!
//! The value is read from `--from-file` (exactly its bytes) or standard
//! input (one trailing newline dropped, so `echo VALUE |` stores `VALUE`).
//! It is sent once, never printed, and `ls` shows names and versions only.

use std::io::{IsTerminal as _, Read};

use berth_proto::v1 as pb;
use berth_proto::v1::secret_service_client::SecretServiceClient;
use clap::Subcommand;

use super::Ctx;
use crate::error::CtlError;
use crate::views::secret::{self as view, SecretView, SecretsView};

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a secret, or store a new version of it; prints NAME and VERSION
    ///
    /// The value comes from --from-file, or else from standard input (a
    /// trailing newline is dropped). Reference it from a task definition by
    /// name in `secrets[].valueFrom` or `repositoryCredentials.credentialsParameter`
    /// (the latter holding `{"username": …, "password": …}`).
    Put {
        /// Name: 1–512 of letters, digits and `_.-/`
        name: String,
        /// Read the value from this file, byte for byte
        #[arg(long, value_name = "FILE")]
        from_file: Option<String>,
    },
    /// List secrets: names, versions and times, never values
    Ls,
    /// Delete a secret (tasks already running keep their values)
    Rm {
        /// Secret name
        name: String,
    },
}

/// A secret's bytes (a stored secret's value, a webhook's signing secret):
/// the file's, or standard input's without one trailing newline. Empty is
/// refused with the sentence `empty` makes of where it came from.
pub(super) fn read_secret_input(
    from_file: Option<&str>,
    stdin: &mut dyn Read,
    empty: impl FnOnce(&str) -> String,
) -> Result<Vec<u8>, CtlError> {
    let (what, value) = match from_file {
        Some(path) => (
            path.to_owned(),
            std::fs::read(path).map_err(|source| CtlError::ReadFile {
                path: path.to_owned(),
                source,
            })?,
        ),
        None => {
            let mut v = Vec::new();
            stdin
                .read_to_end(&mut v)
                .map_err(|source| CtlError::ReadFile {
                    path: "standard input".to_owned(),
                    source,
                })?;
            if v.ends_with(b"\n") {
                v.pop();
                if v.ends_with(b"\r") {
                    v.pop();
                }
            }
            ("standard input".to_owned(), v)
        }
    };
    if value.is_empty() {
        return Err(CtlError::InvalidInput {
            message: empty(&what),
        });
    }
    Ok(value)
}

/// The value to store (`secret put`).
fn read_value(from_file: Option<&str>, stdin: &mut dyn Read) -> Result<Vec<u8>, CtlError> {
    read_secret_input(from_file, stdin, |what| {
        format!(
            "the secret's value from {what} is empty; pipe the value in or use --from-file FILE"
        )
    })
}

pub async fn run(cmd: SecretCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    // Read the value before connecting, so a bad file is reported first.
    let value = match &cmd {
        SecretCommand::Put { from_file, .. } => {
            let stdin = std::io::stdin();
            if from_file.is_none() && stdin.is_terminal() {
                ctx.note("Reading the secret's value from the terminal; end it with Ctrl-D.")?;
            }
            Some(read_value(from_file.as_deref(), &mut stdin.lock())?)
        }
        _ => None,
    };
    let mut client = SecretServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    match cmd {
        SecretCommand::Put { name, .. } => {
            let resp = client
                .put_secret(pb::PutSecretRequest {
                    name,
                    value: value.unwrap_or_default(),
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = SecretView::from(resp.secret.ok_or_else(no_secret)?);
            ctx.emit(&v, view::put_sentence)
        }
        SecretCommand::Ls => {
            let resp = client
                .list_secrets(pb::ListSecretsRequest {})
                .await
                .map_err(rpc)?
                .into_inner();
            let v = SecretsView::from(resp);
            ctx.emit(&v, view::list_table)
        }
        SecretCommand::Rm { name } => {
            let resp = client
                .delete_secret(pb::DeleteSecretRequest { name })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = SecretView::from(resp.secret.ok_or_else(no_secret)?);
            ctx.emit(&v, view::rm_sentence)
        }
    }
}

fn no_secret() -> CtlError {
    CtlError::BadResponse {
        what: "the answer holds no secret".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_from_stdin_lose_one_newline_and_empty_ones_are_refused() {
        let read = |input: &[u8]| read_value(None, &mut &input[..]);
        assert_eq!(read(b"hunter2\n").unwrap(), b"hunter2");
        assert_eq!(read(b"hunter2\r\n").unwrap(), b"hunter2");
        assert_eq!(read(b"two\nlines\n\n").unwrap(), b"two\nlines\n");
        assert_eq!(read(b"exact").unwrap(), b"exact");
        for empty in [&b""[..], b"\n"] {
            let e = read(empty).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
            assert!(e.render().contains("is empty"), "{}", e.render());
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("v");
        std::fs::write(&f, b"from-file\n").unwrap();
        let path = f.display().to_string();
        assert_eq!(
            read_value(Some(&path), &mut &b""[..]).unwrap(),
            b"from-file\n"
        );
        let missing = dir.path().join("nope").display().to_string();
        assert!(read_value(Some(&missing), &mut &b""[..]).is_err());
    }
}
