//! `berthctl cluster create|ls|describe|delete`.

use berth_proto::v1 as pb;
use berth_proto::v1::cluster_service_client::ClusterServiceClient;
use clap::Subcommand;

use super::{ClusterArg, Ctx};
use crate::error::CtlError;
use crate::views::cluster::{self as view, ClusterResultView, ClustersView};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create a cluster (creating one that exists returns it, as ECS does)
    Create {
        /// Cluster name
        name: String,
    },
    /// List clusters with their counts (JSON: shaped as `aws ecs describe-clusters`)
    Ls,
    /// Describe clusters (default: the current cluster)
    Describe {
        /// Cluster names or ARNs
        #[arg(value_name = "NAME", conflicts_with = "cluster")]
        names: Vec<String>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Delete a cluster that has no instances or services left
    Delete {
        /// Cluster name or ARN
        name: String,
    },
}

pub async fn run(cmd: ClusterCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let mut client = ClusterServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    match cmd {
        ClusterCommand::Create { name } => {
            let resp = client
                .create_cluster(pb::CreateClusterRequest {
                    cluster_name: name,
                    ..Default::default()
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = ClusterResultView::from_proto(resp.cluster).ok_or_else(no_cluster)?;
            ctx.emit(&v, view::result_sentence("created"))
        }
        ClusterCommand::Delete { name } => {
            let resp = client
                .delete_cluster(pb::DeleteClusterRequest { cluster: name })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = ClusterResultView::from_proto(resp.cluster).ok_or_else(no_cluster)?;
            ctx.emit(&v, view::result_sentence("deleted"))
        }
        ClusterCommand::Ls => {
            let mut arns = Vec::new();
            let mut next_token = String::new();
            for _ in 0..super::MAX_PAGES {
                let page = client
                    .list_clusters(pb::ListClustersRequest {
                        max_results: 0,
                        next_token: next_token.clone(),
                    })
                    .await
                    .map_err(&rpc)?
                    .into_inner();
                arns.extend(page.cluster_arns);
                if page.next_token.is_empty() || page.next_token == next_token {
                    break;
                }
                next_token = page.next_token;
            }
            let mut v = if arns.is_empty() {
                // An empty describe would mean `default`: ask nothing.
                ClustersView {
                    clusters: vec![],
                    failures: vec![],
                }
            } else {
                describe(&mut client, arns, vec![], &rpc).await?
            };
            // A cluster deleted between the two calls is simply not listed.
            v.failures.clear();
            ctx.emit(&v, view::list_table)
        }
        ClusterCommand::Describe { names, cluster } => {
            let names = if names.is_empty() {
                vec![ctx.cluster(&cluster)]
            } else {
                names
            };
            let v = describe(&mut client, names, vec!["TAGS".to_owned()], &rpc).await?;
            ctx.emit(&v, view::describe_table)?;
            if v.failures.is_empty() {
                Ok(())
            } else {
                Err(CtlError::Missing {
                    items: v.failures.iter().map(Into::into).collect(),
                })
            }
        }
    }
}

async fn describe(
    client: &mut ClusterServiceClient<crate::client::Conn>,
    clusters: Vec<String>,
    include: Vec<String>,
    rpc: &impl Fn(tonic::Status) -> CtlError,
) -> Result<ClustersView, CtlError> {
    Ok(client
        .describe_clusters(pb::DescribeClustersRequest { clusters, include })
        .await
        .map_err(rpc)?
        .into_inner()
        .into())
}

fn no_cluster() -> CtlError {
    CtlError::BadResponse {
        what: "the answer holds no cluster".to_owned(),
    }
}
