//! `TokenService` (admin only, by `api::auth`): create, list and revoke
//! operator tokens. A token's secret is in CreateToken's answer and nowhere
//! else; the store keeps its SHA-256.

use berth_proto::v1::{
    token_service_server::TokenService, CreateTokenRequest, CreateTokenResponse, ListTokensRequest,
    ListTokensResponse, OperatorToken, RevokeTokenRequest, RevokeTokenResponse,
};
use tonic::{Request, Response, Status};

use super::{timestamp, validate_name, ApiError, Shared};
use crate::auth::{Principal, Role, Token};
use crate::records::{now_millis, TokenRecord};

/// The longest lifetime a token can be given (ten years).
const MAX_LIFETIME_SECS: i64 = 10 * 366 * 24 * 3600;

#[derive(Debug)]
pub struct TokenApi {
    pub shared: Shared,
}

pub fn to_proto(t: &TokenRecord) -> OperatorToken {
    OperatorToken {
        id: t.id.clone(),
        name: t.name.clone(),
        role: t.role.as_str().to_owned(),
        created_at: Some(timestamp(t.created_at)),
        expires_at: t.expires_at.map(timestamp),
        revoked_at: t.revoked_at.map(timestamp),
        created_by: t.created_by.clone(),
    }
}

/// The caller, as the auth layer recorded it.
fn caller<T>(req: &Request<T>) -> Result<Principal, ApiError> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ApiError::Unauthenticated("no authenticated caller".into()))
}

#[tonic::async_trait]
impl TokenService for TokenApi {
    #[tracing::instrument(skip_all, fields(name = %req.get_ref().name, role = %req.get_ref().role))]
    async fn create_token(
        &self,
        req: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let by = caller(&req)?;
        let r = req.into_inner();
        validate_name("name", &r.name)?;
        let role = Role::parse(&r.role).ok_or_else(|| {
            ApiError::invalid(
                "role",
                format!("{:?} is not one of admin, operator, read-only", r.role),
            )
        })?;
        let now = now_millis();
        let expires_at = match r.expires_in {
            None => None,
            Some(d) if d.seconds <= 0 || d.seconds > MAX_LIFETIME_SECS => {
                return Err(ApiError::invalid(
                    "expiresIn",
                    "must be more than 0 seconds and at most ten years",
                )
                .into())
            }
            Some(d) => Some(now + d.seconds * 1000),
        };
        let token = Token::generate();
        let rec = self
            .shared
            .db
            .create_token(TokenRecord {
                id: token.id.clone(),
                name: r.name,
                role,
                secret_sha256: token.secret_sha256(),
                created_at: now,
                expires_at,
                revoked_at: None,
                created_by: by.token_name,
                sealed_secret: Some(
                    self.shared
                        .secrets
                        .seal_token_secret(&token.id, token.secret()),
                ),
            })
            .await
            .map_err(ApiError::from)?;
        tracing::info!(token = %rec.id, "operator token created");
        Ok(Response::new(CreateTokenResponse {
            token: Some(to_proto(&rec)),
            secret: token.expose(),
        }))
    }

    async fn list_tokens(
        &self,
        _req: Request<ListTokensRequest>,
    ) -> Result<Response<ListTokensResponse>, Status> {
        let mut tokens = self.shared.db.tokens().map_err(ApiError::from)?;
        tokens.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(Response::new(ListTokensResponse {
            tokens: tokens.iter().map(to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(token = %req.get_ref().id))]
    async fn revoke_token(
        &self,
        req: Request<RevokeTokenRequest>,
    ) -> Result<Response<RevokeTokenResponse>, Status> {
        let id = req.into_inner().id;
        if id.is_empty() {
            return Err(ApiError::invalid("id", "is required").into());
        }
        let rec = self
            .shared
            .db
            .revoke_token(&id)
            .await
            .map_err(ApiError::from)?;
        tracing::info!("operator token revoked");
        Ok(Response::new(RevokeTokenResponse {
            token: Some(to_proto(&rec)),
        }))
    }
}
