//! `ContainerInstanceService`: list and describe container instances with
//! ECS's resource shapes (CPU, MEMORY, PORTS, PORTS_UDP), drain and
//! activate them (ECS's UpdateContainerInstancesState), and deregister
//! them (INACTIVE, certificates revoked, agent stream closed).

use berth_proto::arn::short_id;
use berth_proto::v1::{
    container_instance_service_server::ContainerInstanceService, Attribute, ContainerInstance,
    DeregisterContainerInstanceRequest, DeregisterContainerInstanceResponse,
    DescribeContainerInstancesRequest, DescribeContainerInstancesResponse, Failure,
    ListContainerInstancesRequest, ListContainerInstancesResponse, Resource,
    UpdateContainerInstancesStateRequest, UpdateContainerInstancesStateResponse,
};
use tonic::{Request, Response, Status};

use super::convert::{includes_tags, tags_to_proto, task_counts};
use super::{cluster_arg, timestamp, ApiError, Shared};
use crate::agent_link::Outbound;
use crate::db::DbError;
use crate::paging::{paginate, Order, PageRequest, DEFAULT_PAGE};
use crate::placement::cql;
use crate::placement::engine::Node;
use crate::records::{AllocationRecord, HostResources, InstanceRecord, InstanceStatus};

#[derive(Debug)]
pub struct ContainerInstanceApi {
    pub shared: Shared,
}

fn integer(name: &str, v: i64) -> Resource {
    Resource {
        name: name.to_owned(),
        r#type: "INTEGER".to_owned(),
        integer_value: v,
        string_set_value: vec![],
    }
}

fn string_set(name: &str, ports: &[u16]) -> Resource {
    Resource {
        name: name.to_owned(),
        r#type: "STRINGSET".to_owned(),
        integer_value: 0,
        string_set_value: ports.iter().map(u16::to_string).collect(),
    }
}

/// ECS's registeredResources: what the host offers, ports it never gives out.
pub fn registered_resources(r: &HostResources) -> Vec<Resource> {
    vec![
        integer("CPU", r.cpu_units),
        integer("MEMORY", r.memory_mib),
        string_set("PORTS", &r.reserved_tcp_ports),
        string_set("PORTS_UDP", &r.reserved_udp_ports),
    ]
}

/// ECS's remainingResources: what is left of CPU and memory, and the ports
/// taken (the host's reserved ones plus those its tasks hold).
pub fn remaining_resources(r: &HostResources, a: &AllocationRecord) -> Vec<Resource> {
    let taken = |reserved: &[u16], allocated: &[u16]| {
        let mut v: Vec<u16> = reserved.iter().chain(allocated).copied().collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    vec![
        integer("CPU", r.cpu_units - a.cpu_units),
        integer("MEMORY", r.memory_mib - a.memory_mib),
        string_set("PORTS", &taken(&r.reserved_tcp_ports, &a.tcp_ports)),
        string_set("PORTS_UDP", &taken(&r.reserved_udp_ports, &a.udp_ports)),
    ]
}

impl ContainerInstanceApi {
    pub fn to_proto(&self, i: &InstanceRecord) -> Result<ContainerInstance, ApiError> {
        let live = self.shared.sessions.liveness(&i.id);
        let registered = registered_resources(&i.resources);
        let alloc = self.shared.db.allocation_of(&i.id)?;
        let (running, pending) = task_counts(self.shared.db.live_tasks_of_instance(&i.id)?.iter());
        Ok(ContainerInstance {
            container_instance_arn: self.shared.arn.container_instance(&i.cluster, &i.id),
            id: i.id.clone(),
            cluster_arn: self.shared.arn.cluster(&i.cluster),
            ec2_instance_id: i.hostname.clone(),
            status: i.status.as_str().to_owned(),
            agent_connected: live.connected,
            agent_version: i.agent_version.clone(),
            remaining_resources: remaining_resources(&i.resources, &alloc),
            registered_resources: registered,
            attributes: i
                .attributes
                .iter()
                .map(|(name, value)| Attribute {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            running_tasks_count: running,
            pending_tasks_count: pending,
            registered_at: Some(timestamp(i.registered_at)),
            last_heartbeat_at: live.last_heartbeat_at.map(timestamp),
            hostname: i.hostname.clone(),
            tags: tags_to_proto(&i.tags),
            address: i.address.map(|a| a.to_string()).unwrap_or_default(),
        })
    }

    fn members(&self, cluster: &str, status: &str) -> Result<Vec<InstanceRecord>, ApiError> {
        self.shared.db.active_cluster(cluster)?;
        let filter = match status {
            "" => None,
            s => Some(InstanceStatus::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "status",
                    format!("{s:?} is not one of ACTIVE, DRAINING, INACTIVE"),
                )
            })?),
        };
        Ok(self
            .shared
            .db
            .instances_of(cluster)?
            .into_iter()
            .filter(|i| match filter {
                Some(f) => i.status == f,
                None => i.status != InstanceStatus::Inactive,
            })
            .collect())
    }
}

#[tonic::async_trait]
impl ContainerInstanceService for ContainerInstanceApi {
    async fn list_container_instances(
        &self,
        req: Request<ListContainerInstancesRequest>,
    ) -> Result<Response<ListContainerInstancesResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let page = PageRequest::parse(
            "container-instances",
            req.max_results,
            &req.next_token,
            DEFAULT_PAGE,
        )
        .map_err(ApiError::from)?;
        let filter = match req.filter.trim() {
            "" => None,
            src => Some(cql::parse(src).map_err(|e| ApiError::invalid("filter", e.to_string()))?),
        };
        let mut members = self.members(&cluster, &req.status)?;
        if let Some(expr) = &filter {
            let mut kept = Vec::with_capacity(members.len());
            for i in members {
                let alloc = self
                    .shared
                    .db
                    .allocation_of(&i.id)
                    .map_err(ApiError::from)?;
                let connected = self.shared.sessions.liveness(&i.id).connected;
                if expr.eval(&Node::from_records(&i, alloc, connected)) {
                    kept.push(i);
                }
            }
            members = kept;
        }
        let page = paginate(members, |i| i.id.clone(), Order::Ascending, &page);
        Ok(Response::new(ListContainerInstancesResponse {
            container_instance_arns: page
                .items
                .iter()
                .map(|i| self.shared.arn.container_instance(&i.cluster, &i.id))
                .collect(),
            next_token: page.next_token,
        }))
    }

    async fn describe_container_instances(
        &self,
        req: Request<DescribeContainerInstancesRequest>,
    ) -> Result<Response<DescribeContainerInstancesResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let with_tags = includes_tags(&req.include, &["CONTAINER_INSTANCE_HEALTH"])?;
        let to_proto = |i: &InstanceRecord| {
            let mut out = self.to_proto(i)?;
            // ECS returns tags only when asked (`include: ["TAGS"]`).
            if !with_tags {
                out.tags.clear();
            }
            Ok::<_, ApiError>(out)
        };
        let mut out = DescribeContainerInstancesResponse::default();
        if req.container_instances.is_empty() {
            out.container_instances = self
                .members(&cluster, "")?
                .iter()
                .map(to_proto)
                .collect::<Result<_, _>>()?;
            return Ok(Response::new(out));
        }
        self.shared
            .db
            .active_cluster(&cluster)
            .map_err(ApiError::from)?;
        for wanted in &req.container_instances {
            let id = short_id(wanted);
            match self.shared.db.instance(id).map_err(ApiError::from)? {
                Some(i) if i.cluster == cluster => out.container_instances.push(to_proto(&i)?),
                _ => out.failures.push(Failure {
                    arn: self.shared.arn.container_instance(&cluster, id),
                    reason: "MISSING".to_owned(),
                    detail: String::new(),
                }),
            }
        }
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all, fields(instance = %req.get_ref().container_instance))]
    async fn deregister_container_instance(
        &self,
        req: Request<DeregisterContainerInstanceRequest>,
    ) -> Result<Response<DeregisterContainerInstanceResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let id = short_id(req.container_instance.trim());
        if id.is_empty() {
            return Err(ApiError::invalid("containerInstance", "required").into());
        }
        match self.shared.db.instance(id).map_err(ApiError::from)? {
            Some(i) if i.cluster == cluster => {}
            _ => {
                return Err(ApiError::Db(DbError::NotFound {
                    kind: "container instance",
                    name: format!("{cluster}/{id}"),
                })
                .into())
            }
        }
        let rec = self
            .shared
            .db
            .deregister_instance(id, req.force)
            .await
            .map_err(ApiError::from)?;
        if let Some(tx) = self.shared.sessions.open_stream(id) {
            let _ = tx
                .send(Outbound::Close {
                    reason: format!("container instance {id} was deregistered"),
                })
                .await;
        }
        tracing::info!(instance = %id, revoked = rec.cert_serials.len(), "container instance deregistered");
        Ok(Response::new(DeregisterContainerInstanceResponse {
            container_instance: Some(self.to_proto(&rec)?),
        }))
    }

    #[tracing::instrument(skip_all, fields(status = %req.get_ref().status))]
    async fn update_container_instances_state(
        &self,
        req: Request<UpdateContainerInstancesStateRequest>,
    ) -> Result<Response<UpdateContainerInstancesStateResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let status = match req.status.as_str() {
            "ACTIVE" => InstanceStatus::Active,
            "DRAINING" => InstanceStatus::Draining,
            s => {
                return Err(ApiError::invalid(
                    "status",
                    format!("{s:?} is not one of ACTIVE, DRAINING"),
                )
                .into())
            }
        };
        if req.container_instances.is_empty() || req.container_instances.len() > MAX_STATE_UPDATES {
            return Err(ApiError::invalid(
                "containerInstances",
                format!(
                    "between 1 and {MAX_STATE_UPDATES} container instances, got {}",
                    req.container_instances.len()
                ),
            )
            .into());
        }
        for (i, wanted) in req.container_instances.iter().enumerate() {
            if short_id(wanted.trim()).is_empty() {
                return Err(ApiError::invalid(&format!("containerInstances[{i}]"), "empty").into());
            }
        }
        self.shared
            .db
            .active_cluster(&cluster)
            .map_err(ApiError::from)?;
        let mut out = UpdateContainerInstancesStateResponse::default();
        for wanted in &req.container_instances {
            let id = short_id(wanted.trim());
            let failure = |reason: &str, detail: String| Failure {
                arn: self.shared.arn.container_instance(&cluster, id),
                reason: reason.to_owned(),
                detail,
            };
            match self.shared.db.instance(id).map_err(ApiError::from)? {
                Some(i) if i.cluster == cluster => {}
                _ => {
                    out.failures.push(failure("MISSING", String::new()));
                    continue;
                }
            }
            match self.shared.db.set_instance_status(id, status).await {
                Ok(rec) => {
                    tracing::info!(instance = %id, status = rec.status.as_str(), "container instance state updated");
                    out.container_instances.push(self.to_proto(&rec)?);
                }
                Err(DbError::FailedPrecondition(detail)) => {
                    out.failures.push(failure("INACTIVE", detail));
                }
                Err(DbError::NotFound { .. }) => {
                    out.failures.push(failure("MISSING", String::new()));
                }
                Err(e) => return Err(ApiError::from(e).into()),
            }
        }
        Ok(Response::new(out))
    }
}

/// ECS takes at most 10 container instances per UpdateContainerInstancesState.
const MAX_STATE_UPDATES: usize = 10;
