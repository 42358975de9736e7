//! `berthctl activation create|ls|revoke`: activations let hosts join a
//! cluster with `berth-agent join` (ECS Anywhere's create-activation).

use std::time::Duration;

use berth_proto::v1 as pb;
use berth_proto::v1::activation_service_client::ActivationServiceClient;
use clap::Subcommand;

use super::{ClusterArg, Ctx};
use crate::client;
use crate::error::CtlError;
use crate::views::activation::{self as view, ActivationResultView, ActivationsView, CreatedView};

#[derive(Debug, Subcommand)]
pub enum ActivationCommand {
    /// Create an activation; prints its id and code (once), the CA fingerprint and the join command
    Create {
        #[command(flatten)]
        cluster: ClusterArg,
        /// How long the code stays valid (at most 30 days)
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
        expires: Duration,
        /// How many hosts may register with it
        #[arg(long, value_name = "N", default_value_t = 1)]
        registration_limit: u32,
        /// A custom attribute every instance registered with it carries (repeatable)
        #[arg(long = "attribute", value_name = "NAME=VALUE", value_parser = attribute)]
        attributes: Vec<(String, String)>,
    },
    /// List activations (every cluster's unless --cluster is given)
    Ls {
        /// Only this cluster's
        #[arg(long, value_name = "NAME")]
        cluster: Option<String>,
    },
    /// Revoke an activation: no more hosts register with it
    Revoke {
        #[arg(value_name = "ACTIVATION_ID")]
        id: String,
    },
}

fn attribute(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        None if !s.is_empty() => Ok((s.to_owned(), String::new())),
        _ => Err(format!("{s:?} is not NAME=VALUE")),
    }
}

pub async fn run(cmd: ActivationCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let mut client = ActivationServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    match cmd {
        ActivationCommand::Create {
            cluster,
            expires,
            registration_limit,
            attributes,
        } => {
            let scheduler = client::endpoint_url(&ctx.settings.endpoint)?;
            let r = client
                .create_activation(pb::CreateActivationRequest {
                    cluster: ctx.cluster(&cluster),
                    expires_in_seconds: expires.as_secs().max(1),
                    registration_limit,
                    attributes: attributes
                        .into_iter()
                        .map(|(name, value)| pb::Attribute { name, value })
                        .collect(),
                })
                .await
                .map_err(rpc)?
                .into_inner();
            ctx.emit(&CreatedView::new(r, &scheduler), view::created_table)
        }
        ActivationCommand::Ls { cluster } => {
            let v = ActivationsView {
                activations: client
                    .list_activations(pb::ListActivationsRequest {
                        cluster: cluster.unwrap_or_default(),
                    })
                    .await
                    .map_err(rpc)?
                    .into_inner()
                    .activations
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            };
            ctx.emit(&v, view::list_table)
        }
        ActivationCommand::Revoke { id } => {
            let a = client
                .revoke_activation(pb::RevokeActivationRequest { activation_id: id })
                .await
                .map_err(rpc)?
                .into_inner()
                .activation
                .unwrap_or_default();
            ctx.emit(
                &ActivationResultView {
                    activation: a.into(),
                },
                view::result_table,
            )
        }
    }
}
