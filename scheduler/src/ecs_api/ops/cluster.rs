//! CreateCluster, DeleteCluster, DescribeClusters, ListClusters.

use berth_proto::v1 as pb;
use berth_proto::v1::cluster_service_server::ClusterService;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{at_most, next, status, Ctx};
use crate::api::cluster::ClusterApi;
use crate::ecs_api::error::EcsError;
use berth_proto::ecs_json as render;

fn api(ctx: &Ctx<'_>) -> ClusterApi {
    ClusterApi {
        shared: ctx.shared(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateIn {
    cluster_name: Option<String>,
    #[serde(default)]
    tags: Vec<super::resource::TagIn>,
}

pub async fn create(ctx: &mut Ctx<'_>, i: CreateIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::CreateClusterRequest {
        // ECS creates `default` when no name is given.
        cluster_name: i.cluster_name.unwrap_or_else(|| "default".to_owned()),
        tags: super::resource::tags_in(i.tags),
    });
    let out = api(ctx)
        .create_cluster(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({"cluster": out.cluster.as_ref().map(render::cluster)}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteIn {
    cluster: String,
}

pub async fn delete(ctx: &mut Ctx<'_>, i: DeleteIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::DeleteClusterRequest { cluster: i.cluster });
    let out = api(ctx)
        .delete_cluster(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({"cluster": out.cluster.as_ref().map(render::cluster)}))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeIn {
    #[serde(default)]
    clusters: Vec<String>,
    #[serde(default)]
    include: Vec<String>,
}

pub async fn describe(ctx: &mut Ctx<'_>, i: DescribeIn) -> Result<Value, EcsError> {
    at_most("clusters", i.clusters.len(), 100)?;
    let req = ctx.grpc(pb::DescribeClustersRequest {
        clusters: i.clusters,
        include: i.include,
    });
    let out = api(ctx)
        .describe_clusters(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({
        "clusters": out.clusters.iter().map(render::cluster).collect::<Vec<_>>(),
        "failures": out.failures.iter().map(render::failure).collect::<Vec<_>>(),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListIn {
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn list(ctx: &mut Ctx<'_>, i: ListIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::ListClustersRequest {
        max_results: i.max_results.unwrap_or_default(),
        next_token: i.next_token.unwrap_or_default(),
    });
    let out = api(ctx)
        .list_clusters(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({"clusterArns": out.cluster_arns, "nextToken": next(out.next_token)}))
}
