//! `berthctl tag ls|add|rm ARN`: ECS's resource tags (ListTagsForResource,
//! TagResource, UntagResource) on clusters, services, tasks, task
//! definitions and container instances, named by their ARNs. `add` and
//! `rm` print the tags the resource has afterwards.

use berth_proto::v1 as pb;
use berth_proto::v1::tag_service_client::TagServiceClient;
use clap::Subcommand;

use super::Ctx;
use crate::error::CtlError;
use crate::views::tag::{self as view, TagsView};

#[derive(Debug, Subcommand)]
pub enum TagCommand {
    /// List a resource's tags (JSON: as `aws ecs list-tags-for-resource`)
    Ls {
        /// The resource's ARN (cluster, service, task, task definition, container instance)
        #[arg(value_name = "ARN")]
        arn: String,
    },
    /// Add tags to a resource; a key it has already gets the new value
    Add {
        #[arg(value_name = "ARN")]
        arn: String,
        /// KEY=VALUE (VALUE may be empty)
        #[arg(value_name = "KEY=VALUE", required = true, value_parser = parse_tag)]
        tags: Vec<pb::Tag>,
    },
    /// Remove tags from a resource by key (keys it does not have are ignored)
    Rm {
        #[arg(value_name = "ARN")]
        arn: String,
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },
}

/// `KEY=VALUE`, split at the first `=`.
pub fn parse_tag(s: &str) -> Result<pb::Tag, String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    Ok(pb::Tag {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

pub async fn run(cmd: TagCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let mut client = TagServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    let arn = match cmd {
        TagCommand::Ls { arn } => arn,
        TagCommand::Add { arn, tags } => {
            client
                .tag_resource(pb::TagResourceRequest {
                    resource_arn: arn.clone(),
                    tags,
                })
                .await
                .map_err(&rpc)?;
            arn
        }
        TagCommand::Rm { arn, keys } => {
            client
                .untag_resource(pb::UntagResourceRequest {
                    resource_arn: arn.clone(),
                    tag_keys: keys,
                })
                .await
                .map_err(&rpc)?;
            arn
        }
    };
    let tags = client
        .list_tags_for_resource(pb::ListTagsForResourceRequest { resource_arn: arn })
        .await
        .map_err(&rpc)?
        .into_inner()
        .tags;
    ctx.emit(&TagsView::from(tags), view::tags_table)
}
