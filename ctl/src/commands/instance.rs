//! `berthctl instance ls|describe|drain|activate|deregister|attribute`: the
//! container instances of a cluster, and their custom attributes (ECS's
//! PutAttributes, DeleteAttributes, ListAttributes).

use berth_proto::v1 as pb;
use berth_proto::v1::attribute_service_client::AttributeServiceClient;
use berth_proto::v1::container_instance_service_client::ContainerInstanceServiceClient;
use clap::{Subcommand, ValueEnum};

use super::{ClusterArg, Ctx};
use crate::error::CtlError;
use crate::views::instance::{self as view, ContainerInstancesView};
use crate::views::tag::{self as tag_view, AttributesView};

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// List container instances (JSON: as `aws ecs describe-container-instances`)
    Ls {
        #[command(flatten)]
        cluster: ClusterArg,
        /// Only instances with this status [default: all but INACTIVE]
        #[arg(long, value_enum, ignore_case = true)]
        status: Option<InstanceStatus>,
    },
    /// Describe container instances: resources, attributes, agent
    Describe {
        /// Container instance ids or ARNs
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Drain container instances: DRAINING, no new tasks are placed on them
    /// (standalone tasks already there keep running)
    Drain {
        /// Container instance ids or ARNs
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Activate drained container instances: ACTIVE, they take tasks again
    Activate {
        /// Container instance ids or ARNs
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Deregister a container instance: INACTIVE, its certificates revoked,
    /// its agent disconnected
    Deregister {
        /// Container instance id or ARN
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        cluster: ClusterArg,
        /// Even if tasks that are not STOPPED are placed on it
        #[arg(long)]
        force: bool,
    },
    /// Put, remove and list custom attributes (what `memberOf(attribute:…)` reads)
    #[command(subcommand)]
    Attribute(AttributeCommand),
}

#[derive(Debug, Subcommand)]
pub enum AttributeCommand {
    /// Set attributes on an instance (kept across agent reconnects; `ecs.*` are the agent's)
    Put {
        /// Container instance id or ARN
        #[arg(value_name = "ID")]
        id: String,
        /// NAME or NAME=VALUE (1–10)
        #[arg(value_name = "NAME[=VALUE]", required = true, num_args = 1..=10, value_parser = parse_attribute)]
        attributes: Vec<(String, String)>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Remove custom attributes from an instance
    Rm {
        /// Container instance id or ARN
        #[arg(value_name = "ID")]
        id: String,
        /// Attribute names (1–10)
        #[arg(value_name = "NAME", required = true, num_args = 1..=10)]
        names: Vec<String>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// List the attributes of the cluster's instances, built-in ones included
    Ls {
        /// Only attributes of this name
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Only attributes of this value (needs --name)
        #[arg(long, value_name = "VALUE", requires = "name")]
        value: Option<String>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
}

/// `NAME` (no value) or `NAME=VALUE`.
fn parse_attribute(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once('=').unwrap_or((s, ""));
    if name.is_empty() {
        return Err(format!("{s:?} names no attribute"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// The attribute targets as the API takes them.
fn targeted(
    id: &str,
    attrs: impl IntoIterator<Item = (String, String)>,
) -> Vec<pb::TargetedAttribute> {
    attrs
        .into_iter()
        .map(|(name, value)| pb::TargetedAttribute {
            name,
            value,
            target_type: "container-instance".to_owned(),
            target_id: id.to_owned(),
        })
        .collect()
}

async fn attribute(cmd: AttributeCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let mut client = AttributeServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    let mut table: fn(&AttributesView) -> String = tag_view::attributes_table;
    let v: AttributesView = match cmd {
        AttributeCommand::Put {
            id,
            attributes,
            cluster,
        } => client
            .put_attributes(pb::PutAttributesRequest {
                cluster: ctx.cluster(&cluster),
                attributes: targeted(&id, attributes),
            })
            .await
            .map_err(rpc)?
            .into_inner()
            .attributes
            .into(),
        AttributeCommand::Rm { id, names, cluster } => {
            table = tag_view::removed_sentence;
            client
                .delete_attributes(pb::DeleteAttributesRequest {
                    cluster: ctx.cluster(&cluster),
                    attributes: targeted(&id, names.into_iter().map(|n| (n, String::new()))),
                })
                .await
                .map_err(rpc)?
                .into_inner()
                .attributes
                .into()
        }
        AttributeCommand::Ls {
            name,
            value,
            cluster,
        } => {
            let cluster = ctx.cluster(&cluster);
            let mut all = Vec::new();
            let mut next_token = String::new();
            for _ in 0..MAX_PAGES {
                let page = client
                    .list_attributes(pb::ListAttributesRequest {
                        cluster: cluster.clone(),
                        target_type: "container-instance".to_owned(),
                        attribute_name: name.clone().unwrap_or_default(),
                        attribute_value: value.clone().unwrap_or_default(),
                        max_results: 0,
                        next_token: next_token.clone(),
                    })
                    .await
                    .map_err(&rpc)?
                    .into_inner();
                all.extend(page.attributes);
                if page.next_token.is_empty() || page.next_token == next_token {
                    break;
                }
                next_token = page.next_token;
            }
            all.into()
        }
    };
    ctx.emit(&v, table)
}

/// Sanity bound on pages, should a scheduler keep returning tokens.
const MAX_PAGES: usize = 10_000;

/// ECS's container instance statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InstanceStatus {
    #[value(name = "ACTIVE")]
    Active,
    #[value(name = "DRAINING")]
    Draining,
    #[value(name = "REGISTERING")]
    Registering,
    #[value(name = "DEREGISTERING")]
    Deregistering,
    #[value(name = "REGISTRATION_FAILED")]
    RegistrationFailed,
    #[value(name = "INACTIVE")]
    Inactive,
}

impl InstanceStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Draining => "DRAINING",
            Self::Registering => "REGISTERING",
            Self::Deregistering => "DEREGISTERING",
            Self::RegistrationFailed => "REGISTRATION_FAILED",
            Self::Inactive => "INACTIVE",
        }
    }
}

pub async fn run(cmd: InstanceCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let mut client = ContainerInstanceServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    match cmd {
        InstanceCommand::Ls { cluster, status } => {
            let cluster = ctx.cluster(&cluster);
            let mut arns = Vec::new();
            let mut next_token = String::new();
            for _ in 0..super::MAX_PAGES {
                let page = client
                    .list_container_instances(pb::ListContainerInstancesRequest {
                        cluster: cluster.clone(),
                        status: status
                            .map(InstanceStatus::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        filter: String::new(),
                        max_results: 0,
                        next_token: next_token.clone(),
                    })
                    .await
                    .map_err(&rpc)?
                    .into_inner();
                arns.extend(page.container_instance_arns);
                if page.next_token.is_empty() || page.next_token == next_token {
                    break;
                }
                next_token = page.next_token;
            }
            let mut v = if arns.is_empty() {
                // An empty describe would mean "every instance": ask nothing.
                ContainerInstancesView {
                    container_instances: vec![],
                    failures: vec![],
                }
            } else {
                client
                    .describe_container_instances(pb::DescribeContainerInstancesRequest {
                        cluster,
                        container_instances: arns,
                        ..Default::default()
                    })
                    .await
                    .map_err(&rpc)?
                    .into_inner()
                    .into()
            };
            // An instance deregistered between the two calls is simply not listed.
            v.failures.clear();
            ctx.emit(&v, view::list_table)
        }
        InstanceCommand::Deregister { id, cluster, force } => {
            let i = client
                .deregister_container_instance(pb::DeregisterContainerInstanceRequest {
                    cluster: ctx.cluster(&cluster),
                    container_instance: id,
                    force,
                })
                .await
                .map_err(rpc)?
                .into_inner()
                .container_instance
                .unwrap_or_default();
            let v = ContainerInstancesView::from(pb::DescribeContainerInstancesResponse {
                container_instances: vec![i],
                failures: vec![],
            });
            ctx.emit(&v, view::list_table)
        }
        InstanceCommand::Attribute(cmd) => attribute(cmd, ctx).await,
        InstanceCommand::Drain { ids, cluster } => {
            let cluster = ctx.cluster(&cluster);
            set_state(&mut client, ctx, cluster, ids, InstanceStatus::Draining).await
        }
        InstanceCommand::Activate { ids, cluster } => {
            let cluster = ctx.cluster(&cluster);
            set_state(&mut client, ctx, cluster, ids, InstanceStatus::Active).await
        }
        InstanceCommand::Describe { ids, cluster } => {
            let v: ContainerInstancesView = client
                .describe_container_instances(pb::DescribeContainerInstancesRequest {
                    cluster: ctx.cluster(&cluster),
                    container_instances: ids,
                    ..Default::default()
                })
                .await
                .map_err(rpc)?
                .into_inner()
                .into();
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

/// UpdateContainerInstancesState; prints the changed instances, and fails
/// naming each instance that could not change.
async fn set_state(
    client: &mut ContainerInstanceServiceClient<crate::client::Conn>,
    ctx: &mut Ctx<'_>,
    cluster: String,
    ids: Vec<String>,
    status: InstanceStatus,
) -> Result<(), CtlError> {
    let r = client
        .update_container_instances_state(pb::UpdateContainerInstancesStateRequest {
            cluster,
            container_instances: ids,
            status: status.as_str().to_owned(),
        })
        .await
        .map_err(ctx.rpc_error())?
        .into_inner();
    let v = ContainerInstancesView::from(pb::DescribeContainerInstancesResponse {
        container_instances: r.container_instances,
        failures: r.failures,
    });
    ctx.emit(&v, view::list_table)?;
    if v.failures.is_empty() {
        Ok(())
    } else {
        Err(CtlError::Missing {
            items: v.failures.iter().map(Into::into).collect(),
        })
    }
}
