//! `AttributeService`: ECS's PutAttributes, DeleteAttributes and
//! ListAttributes on container instances (`targetType` is only
//! `container-instance`).
//!
//! - Names and values follow `berth_proto::names` (as the agent's
//!   configuration and activations do); 1–10 attributes per call; each
//!   names its target (an instance id or ARN) of the request's cluster.
//! - Built-in attributes (`ecs.*`) are the agent's: putting or deleting one
//!   is InvalidArgument (ECS refuses them too).
//! - An unknown target is NotFound (ECS's TargetNotFoundException), and
//!   then nothing of the call applies.
//! - ListAttributes lists every attribute of the cluster's instances that
//!   are not INACTIVE, built-in ones included, by instance then name;
//!   `nextToken` is an offset.

use berth_proto::arn::short_id;
use berth_proto::names::{check_attribute_name, check_attribute_value, is_builtin_attribute};
use berth_proto::v1::{
    attribute_service_server::AttributeService, DeleteAttributesRequest, DeleteAttributesResponse,
    ListAttributesRequest, ListAttributesResponse, PutAttributesRequest, PutAttributesResponse,
    TargetedAttribute,
};
use tonic::{Request, Response, Status};

use super::{cluster_arg, ApiError, Shared};
use crate::db::InstanceAttribute;
use crate::records::InstanceStatus;

/// ECS's only target type.
pub const CONTAINER_INSTANCE: &str = "container-instance";
/// ECS's limit on attributes per PutAttributes and DeleteAttributes.
const MAX_ATTRIBUTES: usize = 10;
const DEFAULT_PAGE: usize = 100;

#[derive(Debug)]
pub struct AttributeApi {
    pub shared: Shared,
}

fn check_target_type(field: &str, t: &str, required: bool) -> Result<(), ApiError> {
    match t {
        CONTAINER_INSTANCE => Ok(()),
        "" if !required => Ok(()),
        "" => Err(ApiError::invalid(
            field,
            format!("required; the only target type is {CONTAINER_INSTANCE}"),
        )),
        other => Err(ApiError::invalid(
            field,
            format!("{other:?} is not a target type; the only one is {CONTAINER_INSTANCE}"),
        )),
    }
}

/// The request's attributes as instance attributes. `with_values`: check
/// the values too (DeleteAttributes ignores them).
fn validate(
    attrs: &[TargetedAttribute],
    with_values: bool,
) -> Result<Vec<InstanceAttribute>, ApiError> {
    if attrs.is_empty() || attrs.len() > MAX_ATTRIBUTES {
        return Err(ApiError::invalid(
            "attributes",
            format!(
                "between 1 and {MAX_ATTRIBUTES} attributes, got {}",
                attrs.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(attrs.len());
    for (i, a) in attrs.iter().enumerate() {
        let path = |f: &str| format!("attributes[{i}].{f}");
        check_attribute_name(&a.name)
            .map_err(|e| ApiError::invalid(&path("name"), e.to_string()))?;
        if is_builtin_attribute(&a.name) {
            return Err(ApiError::invalid(
                &path("name"),
                format!(
                    "{:?}: `ecs.` attributes are reported by the agent and cannot be set or \
                     deleted",
                    a.name
                ),
            ));
        }
        if with_values {
            check_attribute_value(&a.value)
                .map_err(|e| ApiError::invalid(&path("value"), e.to_string()))?;
        }
        check_target_type(&path("targetType"), &a.target_type, false)?;
        let id = short_id(a.target_id.trim());
        if id.is_empty() {
            return Err(ApiError::invalid(
                &path("targetId"),
                "required: a container instance id or ARN",
            ));
        }
        out.push(InstanceAttribute {
            instance_id: id.to_owned(),
            name: a.name.clone(),
            value: if with_values {
                a.value.clone()
            } else {
                String::new()
            },
        });
    }
    Ok(out)
}

impl AttributeApi {
    fn to_proto(&self, cluster: &str, a: InstanceAttribute) -> TargetedAttribute {
        TargetedAttribute {
            name: a.name,
            value: a.value,
            target_type: CONTAINER_INSTANCE.to_owned(),
            target_id: self.shared.arn.container_instance(cluster, &a.instance_id),
        }
    }
}

#[tonic::async_trait]
impl AttributeService for AttributeApi {
    #[tracing::instrument(skip_all, fields(cluster = %req.get_ref().cluster))]
    async fn put_attributes(
        &self,
        req: Request<PutAttributesRequest>,
    ) -> Result<Response<PutAttributesResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let attrs = validate(&req.attributes, true)?;
        self.shared
            .db
            .active_cluster(&cluster)
            .map_err(ApiError::from)?;
        self.shared
            .db
            .put_attributes(&cluster, &attrs)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(count = attrs.len(), "attributes put");
        Ok(Response::new(PutAttributesResponse {
            attributes: attrs
                .into_iter()
                .map(|a| self.to_proto(&cluster, a))
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(cluster = %req.get_ref().cluster))]
    async fn delete_attributes(
        &self,
        req: Request<DeleteAttributesRequest>,
    ) -> Result<Response<DeleteAttributesResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let attrs = validate(&req.attributes, false)?;
        self.shared
            .db
            .active_cluster(&cluster)
            .map_err(ApiError::from)?;
        self.shared
            .db
            .delete_attributes(&cluster, &attrs)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(count = attrs.len(), "attributes deleted");
        Ok(Response::new(DeleteAttributesResponse {
            attributes: attrs
                .into_iter()
                .map(|a| self.to_proto(&cluster, a))
                .collect(),
        }))
    }

    async fn list_attributes(
        &self,
        req: Request<ListAttributesRequest>,
    ) -> Result<Response<ListAttributesResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        check_target_type("targetType", &req.target_type, true)?;
        if !req.attribute_value.is_empty() && req.attribute_name.is_empty() {
            return Err(ApiError::invalid(
                "attributeValue",
                "needs attributeName: a value is matched only with a name",
            )
            .into());
        }
        let page = match req.max_results {
            0 => DEFAULT_PAGE,
            n @ 1..=100 => n as usize,
            n => {
                return Err(
                    ApiError::invalid("maxResults", format!("{n} is not within 1–100")).into(),
                )
            }
        };
        let start = match req.next_token.as_str() {
            "" => 0,
            t => t
                .parse::<usize>()
                .map_err(|_| ApiError::invalid("nextToken", "not a token this scheduler issued"))?,
        };
        let db = &self.shared.db;
        db.active_cluster(&cluster).map_err(ApiError::from)?;
        let mut all = Vec::new();
        for i in db.instances_of(&cluster).map_err(ApiError::from)? {
            if i.status == InstanceStatus::Inactive {
                continue;
            }
            for (name, value) in &i.attributes {
                if !req.attribute_name.is_empty() && *name != req.attribute_name {
                    continue;
                }
                if !req.attribute_value.is_empty() && *value != req.attribute_value {
                    continue;
                }
                all.push(InstanceAttribute {
                    instance_id: i.id.clone(),
                    name: name.clone(),
                    value: value.clone(),
                });
            }
        }
        let end = (start + page).min(all.len());
        let next_token = if end < all.len() {
            end.to_string()
        } else {
            String::new()
        };
        let attributes = all
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .cloned()
            .map(|a| self.to_proto(&cluster, a))
            .collect();
        Ok(Response::new(ListAttributesResponse {
            attributes,
            next_token,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &str, value: &str, target: &str) -> TargetedAttribute {
        TargetedAttribute {
            name: name.into(),
            value: value.into(),
            target_type: String::new(),
            target_id: target.into(),
        }
    }

    fn field(r: Result<Vec<InstanceAttribute>, ApiError>) -> String {
        match r {
            Err(ApiError::Invalid { field, .. }) => field,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn validation_names_the_field() {
        let ok = validate(
            &[attr(
                "rack",
                "r1",
                "arn:berth:ecs:local:0:container-instance/default/abc",
            )],
            true,
        )
        .unwrap();
        assert_eq!(ok[0].instance_id, "abc");
        assert_eq!(field(validate(&[], true)), "attributes");
        assert_eq!(
            field(validate(&vec![attr("a", "", "i"); 11], true)),
            "attributes"
        );
        assert_eq!(
            field(validate(
                &[attr("a", "", "i"), attr("bad name", "", "i")],
                true
            )),
            "attributes[1].name"
        );
        assert_eq!(
            field(validate(&[attr("ecs.os-type", "linux", "i")], true)),
            "attributes[0].name"
        );
        assert_eq!(
            field(validate(&[attr("a", " x", "i")], true)),
            "attributes[0].value"
        );
        assert!(
            validate(&[attr("a", " x", "i")], false).is_ok(),
            "values are ignored by deletions"
        );
        assert_eq!(
            field(validate(&[attr("a", "", "")], true)),
            "attributes[0].targetId"
        );
        let mut wrong = attr("a", "", "i");
        wrong.target_type = "task".into();
        assert_eq!(field(validate(&[wrong], true)), "attributes[0].targetType");
    }
}
