//! How an operator token travels: `authorization: Bearer berth_<id>_<secret>`
//! metadata on every call, added by [`BearerToken`] (a tonic client
//! interceptor shared by `berthctl` and the tests). What a token means is the
//! scheduler's business (`berth_scheduler::auth`).

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The metadata key carrying the token (lower case, as gRPC requires).
pub const AUTHORIZATION: &str = "authorization";
/// The scheme before the token in [`AUTHORIZATION`].
pub const BEARER: &str = "Bearer ";

/// A client interceptor that adds `authorization: Bearer <token>` to every
/// call, or nothing when there is no token.
#[derive(Debug, Clone, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl BearerToken {
    /// `None`, or a token with characters that cannot go into metadata,
    /// sends no header (the scheduler then answers Unauthenticated).
    pub fn new(token: Option<&str>) -> Self {
        Self(token.and_then(|t| format!("{BEARER}{}", t.trim()).parse().ok()))
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert(AUTHORIZATION, v.clone());
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_header_only_when_there_is_a_token() {
        let mut with = BearerToken::new(Some("berth_ab_cd\n"));
        let r = with.call(Request::new(())).unwrap();
        assert_eq!(
            r.metadata().get(AUTHORIZATION).unwrap().to_str().unwrap(),
            "Bearer berth_ab_cd"
        );
        let r = BearerToken::new(None).call(Request::new(())).unwrap();
        assert!(r.metadata().get(AUTHORIZATION).is_none());
        assert!(!BearerToken::new(Some("bad\u{1}token")).is_set());
    }
}
