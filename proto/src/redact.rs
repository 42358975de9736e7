//! Hand-written `Debug` for the generated messages that carry secret values
//! (`build.rs` switches their derived `Debug` off): every field but the
//! value, which shows as `<redacted>`. A `{:?}` of a `DesiredTask`, a
//! request or an error can then never print a secret.

use std::fmt;

use crate::v1::{PutSecretRequest, RepositoryCredentials, SecretValue, SnapshotChunk};

/// What a redacted field shows.
pub const REDACTED: &str = "<redacted>";

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretValue")
            .field("container_name", &self.container_name)
            .field("name", &self.name)
            .field("value", &format_args!("{REDACTED}"))
            .finish()
    }
}

impl fmt::Debug for RepositoryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepositoryCredentials")
            .field("container_name", &self.container_name)
            .field("username", &self.username)
            .field("password", &format_args!("{REDACTED}"))
            .finish()
    }
}

impl fmt::Debug for PutSecretRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutSecretRequest")
            .field("name", &self.name)
            .field("value", &format_args!("{REDACTED}"))
            .finish()
    }
}

/// A snapshot's bytes hold the cluster CA's key: their length only.
impl fmt::Debug for SnapshotChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotChunk")
            .field("data", &format_args!("<{} bytes>", self.data.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::DesiredTask;

    #[test]
    fn debug_never_shows_values() {
        let task = DesiredTask {
            task_arn: "t".into(),
            secrets: vec![SecretValue {
                container_name: "web".into(),
                name: "DB_PASSWORD".into(),
                value: "hunter2".into(),
            }],
            repository_credentials: vec![RepositoryCredentials {
                container_name: "web".into(),
                username: "robot".into(),
                password: "pa55word".into(),
            }],
            ..Default::default()
        };
        let text = format!("{task:?} {task:#?}");
        assert!(
            !text.contains("hunter2") && !text.contains("pa55word"),
            "{text}"
        );
        assert!(
            text.contains("DB_PASSWORD") && text.contains("robot"),
            "{text}"
        );
        assert!(text.contains(REDACTED));
        let put = PutSecretRequest {
            name: "db".into(),
            value: b"hunter2".to_vec(),
        };
        let text = format!("{put:?}");
        assert_eq!(
            text,
            r#"PutSecretRequest { name: "db", value: <redacted> }"#
        );
    }
}
