//! `TagService`: ECS's TagResource, UntagResource and ListTagsForResource
//! for clusters, services, tasks, task definitions and container instances.
//!
//! The resource is a full ECS ARN ([`ResourceArn`]; malformed:
//! InvalidArgument at `resourceArn`), its record must exist (NotFound
//! otherwise, ECS's ResourceNotFoundException). Tags follow ECS's rules
//! (`berth_proto::names::check_tags`), and a resource holds at most 50.
//! As in ECS, an empty `tags` or `tagKeys` list changes nothing and is no
//! error.

use berth_proto::arn::ResourceArn;
use berth_proto::names::{check_tag_key, MAX_TAGS};
use berth_proto::v1::{
    tag_service_server::TagService, ListTagsForResourceRequest, ListTagsForResourceResponse,
    TagResourceRequest, TagResourceResponse, UntagResourceRequest, UntagResourceResponse,
};
use tonic::{Request, Response, Status};

use super::convert::{tags_to_proto, validate_tags};
use super::{ApiError, Shared};

#[derive(Debug)]
pub struct TagApi {
    pub shared: Shared,
}

fn parse_arn(s: &str) -> Result<ResourceArn, ApiError> {
    if s.trim().is_empty() {
        return Err(ApiError::invalid("resourceArn", "required"));
    }
    ResourceArn::parse(s.trim()).map_err(|e| ApiError::invalid("resourceArn", e.to_string()))
}

#[tonic::async_trait]
impl TagService for TagApi {
    #[tracing::instrument(skip_all, fields(resource = %req.get_ref().resource_arn))]
    async fn tag_resource(
        &self,
        req: Request<TagResourceRequest>,
    ) -> Result<Response<TagResourceResponse>, Status> {
        let req = req.into_inner();
        let resource = parse_arn(&req.resource_arn)?;
        let tags = validate_tags("tags", &req.tags)?;
        let after = self
            .shared
            .db
            .tag_resource(&resource, &tags)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(added = tags.len(), total = after.len(), "resource tagged");
        Ok(Response::new(TagResourceResponse {}))
    }

    #[tracing::instrument(skip_all, fields(resource = %req.get_ref().resource_arn))]
    async fn untag_resource(
        &self,
        req: Request<UntagResourceRequest>,
    ) -> Result<Response<UntagResourceResponse>, Status> {
        let req = req.into_inner();
        let resource = parse_arn(&req.resource_arn)?;
        // ECS's bounds: 0–50 keys.
        if req.tag_keys.len() > MAX_TAGS {
            return Err(ApiError::invalid(
                "tagKeys",
                format!("{} keys; at most {MAX_TAGS}", req.tag_keys.len()),
            )
            .into());
        }
        for (i, k) in req.tag_keys.iter().enumerate() {
            check_tag_key(k)
                .map_err(|e| ApiError::invalid(&format!("tagKeys[{i}]"), e.to_string()))?;
        }
        let after = self
            .shared
            .db
            .untag_resource(&resource, &req.tag_keys)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(
            keys = req.tag_keys.len(),
            total = after.len(),
            "resource untagged"
        );
        Ok(Response::new(UntagResourceResponse {}))
    }

    async fn list_tags_for_resource(
        &self,
        req: Request<ListTagsForResourceRequest>,
    ) -> Result<Response<ListTagsForResourceResponse>, Status> {
        let resource = parse_arn(&req.into_inner().resource_arn)?;
        let tags = self.shared.db.tags_of(&resource).map_err(ApiError::from)?;
        Ok(Response::new(ListTagsForResourceResponse {
            tags: tags_to_proto(&tags),
        }))
    }
}
