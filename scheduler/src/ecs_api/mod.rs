//! The ECS API: Amazon ECS's own wire protocol, so the aws CLI, boto3 and
//! ECS-aware tools work against Berth unchanged.
//!
//! - Transport: AWS JSON 1.1 over HTTPS on its own listener
//!   (`ecs_api_listen`, default port 7443), with the scheduler's serving
//!   certificate from the cluster CA. `POST /`, `Content-Type:
//!   application/x-amz-json-1.1`, `X-Amz-Target:
//!   AmazonEC2ContainerServiceV20141113.<Operation>` ([`server`]).
//! - Authentication: SigV4 ([`sigv4`]); the access key id is an operator
//!   token's id, the secret access key its secret. The token's role and the
//!   audit log apply as on the gRPC API: each operation is classified by
//!   the gRPC method it calls ([`ops::OPERATIONS`]).
//! - Operations ([`ops`]) convert ECS's request JSON into the gRPC request,
//!   call the gRPC service in-process (so validation and semantics are the
//!   core's, once), and render the answer with [`berth_proto::ecs_json`],
//!   the renderer `berthctl -o json` uses too.
//! - Errors ([`error`]): `{"__type", "message"}`, 400 for client errors, 500
//!   for Berth's; bodies are size- and depth-limited ([`body`]).

pub mod body;
pub mod error;
pub mod ops;
pub mod server;
pub mod sigv4;

pub use error::EcsError;
pub use server::{serve, EcsApi};

/// The `X-Amz-Target` prefix of every ECS operation.
pub const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

/// The content type of requests and answers.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
