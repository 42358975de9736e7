//! The ECS-compatible HTTP API's pure building blocks (AWS JSON 1.1 + SigV4):
//! [`sigv4`] verifies a request's AWS Signature Version 4, [`body`] parses its
//! JSON 1.1 body under size and depth limits. Neither does I/O.

pub mod body;
pub mod sigv4;
