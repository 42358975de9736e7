//! ECS's errors on the wire: `{"__type": "<Shape>", "message": "..."}` with
//! 400 for client errors and 500 for server errors (the Smithy defaults ECS
//! uses), and the mapping of Berth's gRPC statuses onto ECS's exception
//! shapes. The core says what went wrong (a status code and, where ECS
//! distinguishes more, a `berth-reason` metadata entry); this edge only
//! names it the way ECS does.

use serde_json::json;
use tonic::Code;

use crate::api::error::{NOT_FOUND_KIND_METADATA, REASON_METADATA};

/// One error answer of the ECS API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct EcsError {
    /// The exception shape's name, e.g. `ClusterNotFoundException`.
    pub code: &'static str,
    pub message: String,
    pub status: u16,
}

impl EcsError {
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status,
        }
    }

    /// `InvalidParameterException` (400): a value the operation refuses.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", 400, message)
    }

    /// `ClientException` (400): ECS's catch-all for a request that cannot be served.
    pub fn client(message: impl Into<String>) -> Self {
        Self::new("ClientException", 400, message)
    }

    /// `ServerException` (500): Berth's fault.
    pub fn server(message: impl Into<String>) -> Self {
        Self::new("ServerException", 500, message)
    }

    /// The JSON body of the answer.
    pub fn body(&self) -> Vec<u8> {
        json!({"__type": self.code, "message": self.message})
            .to_string()
            .into_bytes()
    }

    /// Maps a status from Berth's gRPC services (called in-process) to the
    /// exception ECS answers in the same situation.
    pub fn from_status(status: &tonic::Status) -> Self {
        let message = status.message().to_owned();
        let meta = |key: &str| {
            status
                .metadata()
                .get(key)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => Self::invalid(message),
            Code::NotFound => match meta(NOT_FOUND_KIND_METADATA).as_str() {
                "cluster" => Self::new("ClusterNotFoundException", 400, message),
                "service" => Self::new("ServiceNotFoundException", 400, message),
                "service deployment" => {
                    Self::new("ServiceDeploymentNotFoundException", 400, message)
                }
                "resource" => Self::new("ResourceNotFoundException", 400, message),
                "target" => Self::new("TargetNotFoundException", 400, message),
                // Unknown tasks, instances and definitions: ECS answers
                // InvalidParameterException / ClientException for these.
                "task" | "container instance" => Self::invalid(message),
                _ => Self::client(message),
            },
            Code::AlreadyExists => Self::invalid(message),
            Code::FailedPrecondition => match meta(REASON_METADATA).as_str() {
                "ClusterContainsContainerInstances" => {
                    Self::new("ClusterContainsContainerInstancesException", 400, message)
                }
                "ClusterContainsServices" => {
                    Self::new("ClusterContainsServicesException", 400, message)
                }
                "ClusterContainsTasks" => Self::new("ClusterContainsTasksException", 400, message),
                "ServiceNotActive" => Self::new("ServiceNotActiveException", 400, message),
                "ServiceScaledAboveZero" => Self::invalid(message),
                _ => Self::client(message),
            },
            Code::PermissionDenied => Self::new("AccessDeniedException", 400, message),
            Code::Unauthenticated => Self::new("UnrecognizedClientException", 400, message),
            // Contention and a full queue: botocore retries ThrottlingException.
            Code::Aborted | Code::ResourceExhausted => {
                Self::new("ThrottlingException", 400, message)
            }
            Code::Unavailable => Self::new("ServiceUnavailableException", 503, message),
            Code::Unimplemented => Self::client(message),
            _ => Self::server(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(code: Code, key: &'static str, value: &'static str) -> tonic::Status {
        let mut s = tonic::Status::new(code, "m");
        s.metadata_mut()
            .insert(key, tonic::metadata::MetadataValue::from_static(value));
        s
    }

    #[test]
    fn statuses_map_to_ecs_exceptions() {
        let cases = [
            (
                tonic::Status::invalid_argument("m"),
                "InvalidParameterException",
                400,
            ),
            (
                with(Code::NotFound, NOT_FOUND_KIND_METADATA, "cluster"),
                "ClusterNotFoundException",
                400,
            ),
            (
                with(Code::NotFound, NOT_FOUND_KIND_METADATA, "service"),
                "ServiceNotFoundException",
                400,
            ),
            (
                with(Code::NotFound, NOT_FOUND_KIND_METADATA, "task"),
                "InvalidParameterException",
                400,
            ),
            (tonic::Status::not_found("m"), "ClientException", 400),
            (
                with(
                    Code::FailedPrecondition,
                    REASON_METADATA,
                    "ClusterContainsServices",
                ),
                "ClusterContainsServicesException",
                400,
            ),
            (
                tonic::Status::failed_precondition("m"),
                "ClientException",
                400,
            ),
            (
                tonic::Status::permission_denied("m"),
                "AccessDeniedException",
                400,
            ),
            (tonic::Status::aborted("m"), "ThrottlingException", 400),
            (
                tonic::Status::unavailable("m"),
                "ServiceUnavailableException",
                503,
            ),
            (tonic::Status::internal("m"), "ServerException", 500),
        ];
        for (status, code, http) in cases {
            let e = EcsError::from_status(&status);
            assert_eq!((e.code, e.status), (code, http), "{status:?}");
            assert_eq!(e.message, "m");
        }
    }

    #[test]
    fn the_body_names_the_shape_and_the_message() {
        let e = EcsError::client("no \"x\"");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(
            v,
            json!({"__type": "ClientException", "message": "no \"x\""})
        );
    }
}
