//! One exhaustive mapping from the scheduler's errors to gRPC statuses:
//! NotFound, AlreadyExists, InvalidArgument (with the field paths),
//! FailedPrecondition, Unauthenticated, Unavailable/Internal.

use berth_proto::taskdef::FieldIssue;
use tonic::Status;

use crate::db::DbError;
use crate::secrets::SecretsError;
use crate::snapshot::SnapshotError;
use crate::store::StoreError;

/// The metadata entry of a NotFound status that names the kind of thing
/// not found (`cluster`, `service`, `task`, ...), for the ECS edge.
pub const NOT_FOUND_KIND_METADATA: &str = "berth-not-found-kind";
/// The metadata entry of a FailedPrecondition status that names ECS's
/// refusal ([`crate::db::Refusal`]), for the ECS edge.
pub const REASON_METADATA: &str = "berth-reason";

fn with_metadata(mut status: Status, key: &'static str, value: &str) -> Status {
    if let Ok(v) = value.parse() {
        status.metadata_mut().insert(key, v);
    }
    status
}

/// Errors of the API layer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input that names no field path (a bad reference, say).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// Validation findings, one per JSON path.
    #[error("{}", join(.0))]
    InvalidFields(Vec<FieldIssue>),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// The secret store's key cannot open a value (never carries one).
    #[error(transparent)]
    Secrets(SecretsError),
    #[error(transparent)]
    Db(#[from] DbError),
    /// A snapshot could not be taken.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The event log cannot answer from this cursor.
    #[error(transparent)]
    Events(#[from] crate::events::EventsError),
}

impl From<crate::paging::PageError> for ApiError {
    fn from(e: crate::paging::PageError) -> Self {
        ApiError::invalid(e.field(), e.message())
    }
}

impl From<SecretsError> for ApiError {
    fn from(e: SecretsError) -> Self {
        match e {
            SecretsError::Db(db) => ApiError::Db(db),
            SecretsError::Invalid { field, message } => ApiError::invalid(field, message),
            other => ApiError::Secrets(other),
        }
    }
}

fn join(issues: &[FieldIssue]) -> String {
    issues
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let msg = e.to_string();
        match e {
            ApiError::Invalid { .. } | ApiError::InvalidFields(_) => Status::invalid_argument(msg),
            ApiError::Unauthenticated(_) => Status::unauthenticated(msg),
            ApiError::PermissionDenied(_) => Status::permission_denied(msg),
            ApiError::Secrets(s) => match s {
                SecretsError::Db(_) | SecretsError::Invalid { .. } => Status::internal(msg),
                SecretsError::KeyFile { .. }
                | SecretsError::KeyLength { .. }
                | SecretsError::Undecryptable { .. } => {
                    tracing::error!(cause = %s, "secret store error");
                    Status::internal(msg)
                }
            },
            ApiError::Events(ev) => match ev {
                // The client lost events: it must start again knowingly.
                crate::events::EventsError::Expired { .. } => Status::out_of_range(msg),
                crate::events::EventsError::Ahead { .. } => Status::failed_precondition(msg),
                crate::events::EventsError::Store(s) => ApiError::Db(DbError::Store(s)).into(),
            },
            ApiError::Db(db) => match db {
                DbError::NotFound { kind, .. } => {
                    with_metadata(Status::not_found(msg), NOT_FOUND_KIND_METADATA, kind)
                }
                DbError::AlreadyExists { .. } => Status::already_exists(msg),
                DbError::FailedPrecondition(_) => Status::failed_precondition(msg),
                DbError::Refused { refusal, .. } => with_metadata(
                    Status::failed_precondition(msg),
                    REASON_METADATA,
                    refusal.as_str(),
                ),
                DbError::PermissionDenied(_) => Status::permission_denied(msg),
                DbError::InvalidArgument { .. } => Status::invalid_argument(msg),
                DbError::Contention { .. } => Status::aborted(msg),
                DbError::Unavailable(_) => Status::unavailable(msg),
                DbError::Store(s) => {
                    tracing::error!(cause = %s, "store error");
                    match s {
                        StoreError::Conflict => Status::aborted(msg),
                        StoreError::FlusherGone
                        | StoreError::Backend(_)
                        | StoreError::Io { .. } => {
                            Status::unavailable(format!("the scheduler's store is failing: {s}"))
                        }
                        StoreError::Corrupt { .. }
                        | StoreError::Encode { .. }
                        | StoreError::SchemaTooNew { .. }
                        | StoreError::Export(_) => Status::internal(msg),
                    }
                }
            },
            ApiError::Snapshot(s) => {
                tracing::error!(cause = %s, "snapshot failed");
                Status::internal(msg)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn codes() {
        let s: Status = ApiError::InvalidFields(vec![
            FieldIssue {
                path: "family".into(),
                message: "required".into(),
            },
            FieldIssue {
                path: "containerDefinitions[0].image".into(),
                message: "required".into(),
            },
        ])
        .into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(
            s.message(),
            "family: required\ncontainerDefinitions[0].image: required"
        );
        let nf: Status = ApiError::Db(DbError::NotFound {
            kind: "cluster",
            name: "x".into(),
        })
        .into();
        assert_eq!(nf.code(), Code::NotFound);
        assert_eq!(nf.message(), "cluster \"x\" not found");
        let fp: Status = ApiError::Db(DbError::FailedPrecondition("busy".into())).into();
        assert_eq!(fp.code(), Code::FailedPrecondition);
        let ae: Status = ApiError::Db(DbError::AlreadyExists {
            kind: "cluster",
            name: "x".into(),
        })
        .into();
        assert_eq!(ae.code(), Code::AlreadyExists);
    }
}
