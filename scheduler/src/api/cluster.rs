//! `ClusterService`: create, delete, list and describe clusters.

use berth_proto::v1::{
    cluster_service_server::ClusterService, Cluster, CreateClusterRequest, CreateClusterResponse,
    DeleteClusterRequest, DeleteClusterResponse, DescribeClustersRequest, DescribeClustersResponse,
    Failure, ListClustersRequest, ListClustersResponse,
};
use tonic::{Request, Response, Status};

use super::convert::{includes_tags, tags_to_proto, task_counts, validate_tags};
use super::{cluster_arg, timestamp, validate_name, ApiError, Shared};
use crate::paging::{self, paginate, Order, PageRequest};
use crate::records::{ClusterRecord, ClusterStatus, InstanceStatus};

#[derive(Debug)]
pub struct ClusterApi {
    pub shared: Shared,
}

impl ClusterApi {
    /// The cluster on the wire; its tags only when `with_tags`.
    fn to_proto(&self, c: &ClusterRecord, with_tags: bool) -> Result<Cluster, ApiError> {
        let (instances, running, pending, services) = if c.status == ClusterStatus::Active {
            let instances = self
                .shared
                .db
                .instances_of(&c.name)?
                .iter()
                .filter(|i| i.status != InstanceStatus::Inactive)
                .count() as i32;
            let (running, pending) = task_counts(
                self.shared
                    .db
                    .all_tasks()?
                    .iter()
                    .filter(|t| t.cluster == c.name),
            );
            let services = self
                .shared
                .db
                .services_of(&c.name)?
                .iter()
                .filter(|s| s.status == crate::records::ServiceStatus::Active)
                .count() as i32;
            (instances, running, pending, services)
        } else {
            (0, 0, 0, 0)
        };
        Ok(Cluster {
            cluster_arn: self.shared.arn.cluster(&c.name),
            cluster_name: c.name.clone(),
            status: c.status.as_str().to_owned(),
            registered_container_instances_count: instances,
            running_tasks_count: running,
            pending_tasks_count: pending,
            active_services_count: services,
            created_at: Some(timestamp(c.created_at)),
            tags: if with_tags {
                tags_to_proto(&c.tags)
            } else {
                Vec::new()
            },
        })
    }
}

#[tonic::async_trait]
impl ClusterService for ClusterApi {
    #[tracing::instrument(skip_all, fields(cluster = %req.get_ref().cluster_name))]
    async fn create_cluster(
        &self,
        req: Request<CreateClusterRequest>,
    ) -> Result<Response<CreateClusterResponse>, Status> {
        let req = req.into_inner();
        let name = req.cluster_name;
        validate_name("clusterName", &name)?;
        let tags = validate_tags("tags", &req.tags)?;
        let c = match self.shared.db.create_cluster_tagged(&name, &tags).await {
            Ok(c) => {
                tracing::info!("cluster created");
                c
            }
            // ECS's CreateCluster is idempotent: an existing name is returned.
            Err(crate::db::DbError::AlreadyExists { .. }) => self
                .shared
                .db
                .active_cluster(&name)
                .map_err(ApiError::from)?,
            Err(e) => return Err(ApiError::from(e).into()),
        };
        Ok(Response::new(CreateClusterResponse {
            cluster: Some(self.to_proto(&c, true)?),
        }))
    }

    #[tracing::instrument(skip_all, fields(cluster = %req.get_ref().cluster))]
    async fn delete_cluster(
        &self,
        req: Request<DeleteClusterRequest>,
    ) -> Result<Response<DeleteClusterResponse>, Status> {
        let name = cluster_arg(&req.into_inner().cluster);
        let c = self
            .shared
            .db
            .delete_cluster(&name)
            .await
            .map_err(ApiError::from)?;
        tracing::info!("cluster deleted");
        Ok(Response::new(DeleteClusterResponse {
            cluster: Some(self.to_proto(&c, false)?),
        }))
    }

    async fn list_clusters(
        &self,
        req: Request<ListClustersRequest>,
    ) -> Result<Response<ListClustersResponse>, Status> {
        let req = req.into_inner();
        let page = PageRequest::parse(
            "clusters",
            req.max_results,
            &req.next_token,
            paging::DEFAULT_PAGE,
        )
        .map_err(ApiError::from)?;
        let active: Vec<ClusterRecord> = self
            .shared
            .db
            .clusters()
            .map_err(ApiError::from)?
            .into_iter()
            .filter(|c| c.status == ClusterStatus::Active)
            .collect();
        let page = paginate(active, |c| c.name.clone(), Order::Ascending, &page);
        Ok(Response::new(ListClustersResponse {
            cluster_arns: page
                .items
                .iter()
                .map(|c| self.shared.arn.cluster(&c.name))
                .collect(),
            next_token: page.next_token,
        }))
    }

    async fn describe_clusters(
        &self,
        req: Request<DescribeClustersRequest>,
    ) -> Result<Response<DescribeClustersResponse>, Status> {
        let req = req.into_inner();
        let with_tags = includes_tags(
            &req.include,
            &["ATTACHMENTS", "CONFIGURATIONS", "SETTINGS", "STATISTICS"],
        )?;
        let mut names = req.clusters;
        if names.is_empty() {
            names.push("default".to_owned());
        }
        let mut out = DescribeClustersResponse::default();
        for n in names {
            let name = cluster_arg(&n);
            match self.shared.db.cluster(&name).map_err(ApiError::from)? {
                Some(c) => out.clusters.push(self.to_proto(&c, with_tags)?),
                None => out.failures.push(Failure {
                    arn: self.shared.arn.cluster(&name),
                    reason: "MISSING".to_owned(),
                    detail: String::new(),
                }),
            }
        }
        Ok(Response::new(out))
    }
}
