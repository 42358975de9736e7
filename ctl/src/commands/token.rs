//! `berthctl token create|ls|revoke`: operator tokens (admin role).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_proto::v1 as pb;
use berth_proto::v1::token_service_client::TokenServiceClient;
use clap::{Subcommand, ValueEnum};

use super::Ctx;
use crate::error::CtlError;
use crate::views::auth::{self as view, CreatedTokenView, TokenView, TokensView};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once and cannot be shown again
    Create {
        /// A name for people (letters, digits, '-', '_')
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Lifetime, e.g. 30d or 12h [default: never expires]
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
    },
    /// List tokens (never their secrets)
    Ls,
    /// Revoke a token: it stops working at once
    Revoke {
        /// Token id (the part after berth_, as `token ls` shows it)
        id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Everything
    Admin,
    /// Everything but tokens, activations and CA administration
    Operator,
    /// List, describe and logs only
    #[value(name = "read-only")]
    ReadOnly,
}

impl RoleArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::ReadOnly => "read-only",
        }
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn no_token() -> CtlError {
    CtlError::BadResponse {
        what: "the answer holds no token".to_owned(),
    }
}

pub async fn run(cmd: TokenCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let mut client = TokenServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    match cmd {
        TokenCommand::Create {
            name,
            role,
            expires,
        } => {
            let resp = client
                .create_token(pb::CreateTokenRequest {
                    name,
                    role: role.as_str().to_owned(),
                    expires_in: expires.map(|d| prost_types::Duration {
                        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                        nanos: 0,
                    }),
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = CreatedTokenView::new(
                TokenView::new(resp.token.ok_or_else(no_token)?, now_secs()),
                resp.secret,
            );
            ctx.emit(&v, view::created_text)
        }
        TokenCommand::Ls => {
            let now = now_secs();
            let tokens = client
                .list_tokens(pb::ListTokensRequest {})
                .await
                .map_err(rpc)?
                .into_inner()
                .tokens;
            let v = TokensView {
                tokens: tokens.into_iter().map(|t| TokenView::new(t, now)).collect(),
            };
            ctx.emit(&v, view::tokens_table)
        }
        TokenCommand::Revoke { id } => {
            let resp = client
                .revoke_token(pb::RevokeTokenRequest { id })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = TokenView::new(resp.token.ok_or_else(no_token)?, now_secs());
            ctx.emit(&v, view::revoked_text)
        }
    }
}
