//! TagResource, UntagResource, ListTagsForResource, PutAttributes,
//! DeleteAttributes, ListAttributes: ECS's JSON ⇄ `TagService` and
//! `AttributeService`. Unknown resources come back as
//! ResourceNotFoundException, unknown targets as TargetNotFoundException
//! (the core's NotFound kinds `resource` and `target`).

use berth_proto::v1 as pb;
use berth_proto::v1::attribute_service_server::AttributeService;
use berth_proto::v1::tag_service_server::TagService;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{next, status, Ctx};
use crate::api::attribute::AttributeApi;
use crate::api::tags::TagApi;
use crate::ecs_api::error::EcsError;

fn tags_api(ctx: &Ctx<'_>) -> TagApi {
    TagApi {
        shared: ctx.shared(),
    }
}

fn attributes_api(ctx: &Ctx<'_>) -> AttributeApi {
    AttributeApi {
        shared: ctx.shared(),
    }
}

/// ECS's `Tag` (`value` may be absent).
#[derive(Debug, Deserialize)]
pub struct TagIn {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

/// ECS's tags as the core takes them.
pub(super) fn tags_in(tags: Vec<TagIn>) -> Vec<pb::Tag> {
    tags.into_iter()
        .map(|t| pb::Tag {
            key: t.key,
            value: t.value,
        })
        .collect()
}

/// Tags in ECS's JSON.
pub fn tags_json(tags: &[pb::Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"key": t.key, "value": t.value}))
            .collect(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagResourceIn {
    resource_arn: String,
    #[serde(default)]
    tags: Vec<TagIn>,
}

pub async fn tag(ctx: &mut Ctx<'_>, i: TagResourceIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::TagResourceRequest {
        resource_arn: i.resource_arn,
        tags: tags_in(i.tags),
    });
    tags_api(ctx).tag_resource(req).await.map_err(status)?;
    Ok(json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UntagResourceIn {
    resource_arn: String,
    #[serde(default)]
    tag_keys: Vec<String>,
}

pub async fn untag(ctx: &mut Ctx<'_>, i: UntagResourceIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::UntagResourceRequest {
        resource_arn: i.resource_arn,
        tag_keys: i.tag_keys,
    });
    tags_api(ctx).untag_resource(req).await.map_err(status)?;
    Ok(json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTagsIn {
    resource_arn: String,
}

pub async fn list_tags(ctx: &mut Ctx<'_>, i: ListTagsIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::ListTagsForResourceRequest {
        resource_arn: i.resource_arn,
    });
    let out = tags_api(ctx)
        .list_tags_for_resource(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({"tags": tags_json(&out.tags)}))
}

/// ECS's `Attribute`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeIn {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    target_type: String,
    #[serde(default)]
    target_id: String,
}

fn attributes_in(attrs: Vec<AttributeIn>) -> Vec<pb::TargetedAttribute> {
    attrs
        .into_iter()
        .map(|a| pb::TargetedAttribute {
            name: a.name,
            value: a.value,
            target_type: a.target_type,
            target_id: a.target_id,
        })
        .collect()
}

fn attributes_json(attrs: &[pb::TargetedAttribute]) -> Value {
    Value::Array(
        attrs
            .iter()
            .map(|a| {
                let mut v = json!({
                    "name": a.name,
                    "targetType": a.target_type,
                    "targetId": a.target_id,
                });
                if !a.value.is_empty() {
                    v["value"] = json!(a.value);
                }
                v
            })
            .collect(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributesIn {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    attributes: Vec<AttributeIn>,
}

pub async fn put_attributes(ctx: &mut Ctx<'_>, i: AttributesIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::PutAttributesRequest {
        cluster: i.cluster,
        attributes: attributes_in(i.attributes),
    });
    let out = attributes_api(ctx)
        .put_attributes(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({"attributes": attributes_json(&out.attributes)}))
}

pub async fn delete_attributes(ctx: &mut Ctx<'_>, i: AttributesIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::DeleteAttributesRequest {
        cluster: i.cluster,
        attributes: attributes_in(i.attributes),
    });
    let out = attributes_api(ctx)
        .delete_attributes(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({"attributes": attributes_json(&out.attributes)}))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAttributesIn {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    target_type: String,
    #[serde(default)]
    attribute_name: String,
    #[serde(default)]
    attribute_value: String,
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn list_attributes(ctx: &mut Ctx<'_>, i: ListAttributesIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::ListAttributesRequest {
        cluster: i.cluster,
        target_type: i.target_type,
        attribute_name: i.attribute_name,
        attribute_value: i.attribute_value,
        max_results: i.max_results.unwrap_or_default(),
        next_token: i.next_token.unwrap_or_default(),
    });
    let out = attributes_api(ctx)
        .list_attributes(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({
        "attributes": attributes_json(&out.attributes),
        "nextToken": next(out.next_token),
    }))
}
