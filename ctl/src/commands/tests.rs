//! The commands against a fake scheduler: a real tonic server on loopback
//! with canned, in-memory answers. What is checked is berthctl's side: the
//! requests it makes, what it prints on stdout and stderr, and exit codes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use berth_proto::v1 as pb;
use berth_proto::v1::attribute_service_server::{AttributeService, AttributeServiceServer};
use berth_proto::v1::audit_service_server::{AuditService, AuditServiceServer};
use berth_proto::v1::cluster_service_server::{ClusterService, ClusterServiceServer};
use berth_proto::v1::container_instance_service_server::{
    ContainerInstanceService, ContainerInstanceServiceServer,
};
use berth_proto::v1::service_service_server::{ServiceService, ServiceServiceServer};
use berth_proto::v1::system_service_server::{SystemService, SystemServiceServer};
use berth_proto::v1::tag_service_server::{TagService, TagServiceServer};
use berth_proto::v1::target_group_service_server::{TargetGroupService, TargetGroupServiceServer};
use berth_proto::v1::task_definition_service_server::{
    TaskDefinitionService, TaskDefinitionServiceServer,
};
use clap::Parser;
use expect_test::{expect, Expect};
use tonic::{Request, Response, Status};

use crate::cli::Cli;
use crate::env::Env;

const PREFIX: &str = "arn:berth:ecs:local:000000000000";

#[derive(Default)]
struct State {
    clusters: BTreeMap<String, pb::Cluster>,
    /// family → revisions (JSON text, status)
    taskdefs: BTreeMap<String, Vec<(String, String)>>,
    list_requests: Vec<pb::ListTaskDefinitionsRequest>,
    describe_instance_requests: Vec<pb::DescribeContainerInstancesRequest>,
    state_requests: Vec<pb::UpdateContainerInstancesStateRequest>,
    /// ARN → tags
    tags: BTreeMap<String, Vec<pb::Tag>>,
    attributes: Vec<pb::TargetedAttribute>,
    /// name → target group
    target_groups: BTreeMap<String, pb::TargetGroup>,
    create_group_requests: Vec<pb::CreateTargetGroupRequest>,
    modify_group_requests: Vec<pb::ModifyTargetGroupRequest>,
    create_service_requests: Vec<pb::CreateServiceRequest>,
    update_service_requests: Vec<pb::UpdateServiceRequest>,
    /// Oldest first.
    audit: Vec<pb::AuditEvent>,
    audit_requests: Vec<pb::ListAuditEventsRequest>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<State>>);

impl Fake {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }
}

/// A page of one item of `all` after `token` (the index of the last one
/// returned), and the token of the next page: the fake scheduler pages as
/// thinly as it can, so that berthctl's listings must follow every token.
fn one_per_page(all: &[String], token: &str) -> Result<(Vec<String>, String), Status> {
    let start = match token {
        "" => 0,
        t => {
            t.parse::<usize>()
                .map_err(|_| Status::invalid_argument("nextToken: invalid"))?
                + 1
        }
    };
    let page: Vec<String> = all.iter().skip(start).take(1).cloned().collect();
    let next = if start + 1 < all.len() {
        start.to_string()
    } else {
        String::new()
    };
    Ok((page, next))
}

fn cluster(name: &str, status: &str) -> pb::Cluster {
    pb::Cluster {
        cluster_arn: format!("{PREFIX}:cluster/{name}"),
        cluster_name: name.to_owned(),
        status: status.to_owned(),
        ..Default::default()
    }
}

fn taskdef(family: &str, revision: usize, json: &str, status: &str) -> pb::TaskDefinition {
    pb::TaskDefinition {
        task_definition_arn: format!("{PREFIX}:task-definition/{family}:{revision}"),
        family: family.to_owned(),
        revision: i32::try_from(revision).unwrap(),
        status: status.to_owned(),
        json: json.to_owned(),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl ClusterService for Fake {
    async fn create_cluster(
        &self,
        r: Request<pb::CreateClusterRequest>,
    ) -> Result<Response<pb::CreateClusterResponse>, Status> {
        let name = r.into_inner().cluster_name;
        let c = cluster(&name, "ACTIVE");
        self.state().clusters.insert(name, c.clone());
        Ok(Response::new(pb::CreateClusterResponse {
            cluster: Some(c),
        }))
    }

    async fn delete_cluster(
        &self,
        r: Request<pb::DeleteClusterRequest>,
    ) -> Result<Response<pb::DeleteClusterResponse>, Status> {
        let name = berth_proto::arn::cluster_name(&r.into_inner().cluster).to_owned();
        match self.state().clusters.remove(&name) {
            Some(_) => Ok(Response::new(pb::DeleteClusterResponse {
                cluster: Some(cluster(&name, "INACTIVE")),
            })),
            None => Err(Status::not_found(format!("cluster {name} does not exist"))),
        }
    }

    async fn list_clusters(
        &self,
        r: Request<pb::ListClustersRequest>,
    ) -> Result<Response<pb::ListClustersResponse>, Status> {
        // One cluster per page, so that berthctl must follow the tokens.
        let all: Vec<String> = self
            .state()
            .clusters
            .values()
            .map(|c| c.cluster_arn.clone())
            .collect();
        let (page, next_token) = one_per_page(&all, &r.into_inner().next_token)?;
        Ok(Response::new(pb::ListClustersResponse {
            cluster_arns: page,
            next_token,
        }))
    }

    async fn describe_clusters(
        &self,
        r: Request<pb::DescribeClustersRequest>,
    ) -> Result<Response<pb::DescribeClustersResponse>, Status> {
        let mut names = r.into_inner().clusters;
        if names.is_empty() {
            names.push("default".to_owned());
        }
        let state = self.state();
        let mut resp = pb::DescribeClustersResponse::default();
        for n in names {
            match state.clusters.get(berth_proto::arn::cluster_name(&n)) {
                Some(c) => resp.clusters.push(c.clone()),
                None => resp.failures.push(pb::Failure {
                    arn: format!("{PREFIX}:cluster/{n}"),
                    reason: "MISSING".to_owned(),
                    detail: String::new(),
                }),
            }
        }
        Ok(Response::new(resp))
    }
}

#[tonic::async_trait]
impl TaskDefinitionService for Fake {
    async fn register_task_definition(
        &self,
        r: Request<pb::RegisterTaskDefinitionRequest>,
    ) -> Result<Response<pb::RegisterTaskDefinitionResponse>, Status> {
        let text = r.into_inner().task_definition_json;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Status::invalid_argument(format!("$: not JSON: {e}")))?;
        let def = value.get("taskDefinition").unwrap_or(&value);
        let mut findings = Vec::new();
        let family = def
            .get("family")
            .and_then(|f| f.as_str())
            .unwrap_or_default();
        if family.is_empty() {
            findings.push("family: is required".to_owned());
        }
        for (i, c) in def["containerDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if c.get("image").is_none() {
                findings.push(format!("containerDefinitions[{i}].image: is required"));
            }
        }
        if !findings.is_empty() {
            return Err(Status::invalid_argument(findings.join("\n")));
        }
        let mut warnings = Vec::new();
        if def.get("taskRoleArn").is_some() {
            warnings.push(pb::FieldMessage {
                path: "taskRoleArn".to_owned(),
                message: "stored, but IAM roles have no effect off AWS".to_owned(),
            });
        }
        let mut state = self.state();
        let revisions = state.taskdefs.entry(family.to_owned()).or_default();
        let revision = revisions.len() + 1;
        let mut stored = def.clone();
        stored["revision"] = revision.into();
        stored["status"] = "ACTIVE".into();
        revisions.push((stored.to_string(), "ACTIVE".to_owned()));
        Ok(Response::new(pb::RegisterTaskDefinitionResponse {
            task_definition: Some(taskdef(family, revision, &stored.to_string(), "ACTIVE")),
            warnings,
        }))
    }

    async fn describe_task_definition(
        &self,
        r: Request<pb::DescribeTaskDefinitionRequest>,
    ) -> Result<Response<pb::DescribeTaskDefinitionResponse>, Status> {
        let wanted = berth_proto::arn::TaskDefRef::parse(&r.into_inner().task_definition)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let state = self.state();
        let revisions = state
            .taskdefs
            .get(&wanted.family)
            .cloned()
            .unwrap_or_default();
        let found = match wanted.revision {
            Some(rev) => revisions
                .get(rev as usize - 1)
                .map(|(j, s)| (rev as usize, j.clone(), s.clone())),
            None => revisions
                .iter()
                .enumerate()
                .rev()
                .find(|(_, (_, s))| s == "ACTIVE")
                .map(|(i, (j, s))| (i + 1, j.clone(), s.clone())),
        };
        let (rev, json, status) = found
            .ok_or_else(|| Status::not_found(format!("task definition {wanted} does not exist")))?;
        Ok(Response::new(pb::DescribeTaskDefinitionResponse {
            task_definition: Some(taskdef(&wanted.family, rev, &json, &status)),
            ..Default::default()
        }))
    }

    async fn list_task_definitions(
        &self,
        r: Request<pb::ListTaskDefinitionsRequest>,
    ) -> Result<Response<pb::ListTaskDefinitionsResponse>, Status> {
        let req = r.into_inner();
        let mut state = self.state();
        state.list_requests.push(req.clone());
        let status = if req.status.is_empty() {
            "ACTIVE"
        } else {
            req.status.as_str()
        };
        let all: Vec<String> = state
            .taskdefs
            .iter()
            .filter(|(f, _)| req.family_prefix.is_empty() || **f == req.family_prefix)
            .flat_map(|(f, revs)| {
                revs.iter()
                    .enumerate()
                    .filter(|(_, (_, s))| s == status)
                    .map(move |(i, _)| format!("{PREFIX}:task-definition/{f}:{}", i + 1))
            })
            .collect();
        // Pages of two, so that berthctl has to follow next_token.
        let start: usize = req.next_token.parse().unwrap_or(0);
        let end = (start + 2).min(all.len());
        Ok(Response::new(pb::ListTaskDefinitionsResponse {
            task_definition_arns: all[start..end].to_vec(),
            next_token: if end < all.len() {
                end.to_string()
            } else {
                String::new()
            },
        }))
    }

    async fn list_task_definition_families(
        &self,
        r: Request<pb::ListTaskDefinitionFamiliesRequest>,
    ) -> Result<Response<pb::ListTaskDefinitionFamiliesResponse>, Status> {
        let req = r.into_inner();
        let prefix = req.family_prefix.clone();
        let families = self
            .state()
            .taskdefs
            .keys()
            .filter(|f| f.starts_with(&prefix))
            .cloned()
            .collect::<Vec<_>>();
        let (families, next_token) = one_per_page(&families, &req.next_token)?;
        Ok(Response::new(pb::ListTaskDefinitionFamiliesResponse {
            families,
            next_token,
        }))
    }

    async fn deregister_task_definition(
        &self,
        r: Request<pb::DeregisterTaskDefinitionRequest>,
    ) -> Result<Response<pb::DeregisterTaskDefinitionResponse>, Status> {
        let wanted = berth_proto::arn::TaskDefRef::parse(&r.into_inner().task_definition)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let rev = wanted.revision.unwrap_or(0) as usize;
        let mut state = self.state();
        let entry = state
            .taskdefs
            .get_mut(&wanted.family)
            .and_then(|revs| revs.get_mut(rev.wrapping_sub(1)))
            .ok_or_else(|| Status::not_found(format!("task definition {wanted} does not exist")))?;
        entry.1 = "INACTIVE".to_owned();
        Ok(Response::new(pb::DeregisterTaskDefinitionResponse {
            task_definition: Some(taskdef(&wanted.family, rev, &entry.0, "INACTIVE")),
        }))
    }

    async fn delete_task_definitions(
        &self,
        r: Request<pb::DeleteTaskDefinitionsRequest>,
    ) -> Result<Response<pb::DeleteTaskDefinitionsResponse>, Status> {
        let mut out = pb::DeleteTaskDefinitionsResponse::default();
        let mut state = self.state();
        for name in r.into_inner().task_definitions {
            let wanted = berth_proto::arn::TaskDefRef::parse(&name)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            let rev = wanted.revision.unwrap_or(0) as usize;
            let arn = format!("{PREFIX}:task-definition/{wanted}");
            match state
                .taskdefs
                .get_mut(&wanted.family)
                .and_then(|revs| revs.get_mut(rev.wrapping_sub(1)))
            {
                Some(entry) if entry.1 != "ACTIVE" => {
                    entry.1 = "DELETE_IN_PROGRESS".to_owned();
                    out.task_definitions.push(taskdef(
                        &wanted.family,
                        rev,
                        &entry.0,
                        "DELETE_IN_PROGRESS",
                    ));
                }
                Some(_) => out.failures.push(pb::Failure {
                    arn,
                    reason: "The specified task definition is still in ACTIVE status. Please \
                             deregister the target and try again."
                        .to_owned(),
                    detail: String::new(),
                }),
                None => out.failures.push(pb::Failure {
                    arn,
                    reason: "The specified task definition does not exist.".to_owned(),
                    detail: String::new(),
                }),
            }
        }
        Ok(Response::new(out))
    }
}

#[tonic::async_trait]
impl TagService for Fake {
    async fn tag_resource(
        &self,
        r: Request<pb::TagResourceRequest>,
    ) -> Result<Response<pb::TagResourceResponse>, Status> {
        let r = r.into_inner();
        let mut state = self.state();
        let tags = state.tags.entry(r.resource_arn).or_default();
        for t in r.tags {
            tags.retain(|old| old.key != t.key);
            tags.push(t);
        }
        Ok(Response::new(pb::TagResourceResponse {}))
    }

    async fn untag_resource(
        &self,
        r: Request<pb::UntagResourceRequest>,
    ) -> Result<Response<pb::UntagResourceResponse>, Status> {
        let r = r.into_inner();
        let mut state = self.state();
        let tags = state.tags.entry(r.resource_arn).or_default();
        tags.retain(|t| !r.tag_keys.contains(&t.key));
        Ok(Response::new(pb::UntagResourceResponse {}))
    }

    async fn list_tags_for_resource(
        &self,
        r: Request<pb::ListTagsForResourceRequest>,
    ) -> Result<Response<pb::ListTagsForResourceResponse>, Status> {
        let arn = r.into_inner().resource_arn;
        let tags = self
            .state()
            .tags
            .get(&arn)
            .cloned()
            .ok_or_else(|| Status::not_found("The specified resource is not found."))?;
        Ok(Response::new(pb::ListTagsForResourceResponse { tags }))
    }
}

#[tonic::async_trait]
impl AttributeService for Fake {
    async fn put_attributes(
        &self,
        r: Request<pb::PutAttributesRequest>,
    ) -> Result<Response<pb::PutAttributesResponse>, Status> {
        let attributes = r.into_inner().attributes;
        let mut state = self.state();
        for a in &attributes {
            state
                .attributes
                .retain(|old| (&old.target_id, &old.name) != (&a.target_id, &a.name));
            state.attributes.push(a.clone());
        }
        Ok(Response::new(pb::PutAttributesResponse { attributes }))
    }

    async fn delete_attributes(
        &self,
        r: Request<pb::DeleteAttributesRequest>,
    ) -> Result<Response<pb::DeleteAttributesResponse>, Status> {
        let attributes = r.into_inner().attributes;
        let mut state = self.state();
        for a in &attributes {
            state
                .attributes
                .retain(|old| (&old.target_id, &old.name) != (&a.target_id, &a.name));
        }
        Ok(Response::new(pb::DeleteAttributesResponse { attributes }))
    }

    async fn list_attributes(
        &self,
        r: Request<pb::ListAttributesRequest>,
    ) -> Result<Response<pb::ListAttributesResponse>, Status> {
        let r = r.into_inner();
        if r.target_type != "container-instance" {
            return Err(Status::invalid_argument("targetType: required"));
        }
        let attributes = self
            .state()
            .attributes
            .iter()
            .filter(|a| r.attribute_name.is_empty() || a.name == r.attribute_name)
            .filter(|a| r.attribute_value.is_empty() || a.value == r.attribute_value)
            .cloned()
            .collect();
        Ok(Response::new(pb::ListAttributesResponse {
            attributes,
            next_token: String::new(),
        }))
    }
}

#[tonic::async_trait]
impl ContainerInstanceService for Fake {
    async fn deregister_container_instance(
        &self,
        _r: Request<pb::DeregisterContainerInstanceRequest>,
    ) -> Result<Response<pb::DeregisterContainerInstanceResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn update_container_instances_state(
        &self,
        r: Request<pb::UpdateContainerInstancesStateRequest>,
    ) -> Result<Response<pb::UpdateContainerInstancesStateResponse>, Status> {
        let req = r.into_inner();
        self.state().state_requests.push(req.clone());
        let mut resp = pb::UpdateContainerInstancesStateResponse::default();
        for id in req.container_instances {
            if berth_proto::arn::short_id(&id) == "4f1c9a7e" {
                resp.container_instances.push(node_a(&req.status));
            } else {
                resp.failures.push(pb::Failure {
                    arn: format!("{PREFIX}:container-instance/default/{id}"),
                    reason: "MISSING".to_owned(),
                    detail: String::new(),
                });
            }
        }
        Ok(Response::new(resp))
    }

    async fn list_container_instances(
        &self,
        r: Request<pb::ListContainerInstancesRequest>,
    ) -> Result<Response<pb::ListContainerInstancesResponse>, Status> {
        let req = r.into_inner();
        if req.cluster != "default" {
            return Err(Status::not_found(format!(
                "cluster {} does not exist",
                req.cluster
            )));
        }
        Ok(Response::new(pb::ListContainerInstancesResponse {
            container_instance_arns: vec![format!("{PREFIX}:container-instance/default/4f1c9a7e")],
            next_token: String::new(),
        }))
    }

    async fn describe_container_instances(
        &self,
        r: Request<pb::DescribeContainerInstancesRequest>,
    ) -> Result<Response<pb::DescribeContainerInstancesResponse>, Status> {
        let req = r.into_inner();
        self.state().describe_instance_requests.push(req.clone());
        let mut resp = pb::DescribeContainerInstancesResponse::default();
        for id in req.container_instances {
            if berth_proto::arn::short_id(&id) == "4f1c9a7e" {
                resp.container_instances.push(node_a("ACTIVE"));
            } else {
                resp.failures.push(pb::Failure {
                    arn: format!("{PREFIX}:container-instance/default/{id}"),
                    reason: "MISSING".to_owned(),
                    detail: String::new(),
                });
            }
        }
        Ok(Response::new(resp))
    }
}

/// The fake's one container instance, `4f1c9a7e` on node-a, with `status`.
fn node_a(status: &str) -> pb::ContainerInstance {
    pb::ContainerInstance {
        container_instance_arn: format!("{PREFIX}:container-instance/default/4f1c9a7e"),
        id: "4f1c9a7e".to_owned(),
        cluster_arn: format!("{PREFIX}:cluster/default"),
        ec2_instance_id: "node-a".to_owned(),
        hostname: "node-a".to_owned(),
        status: status.to_owned(),
        agent_connected: true,
        agent_version: "0.1.0".to_owned(),
        registered_resources: vec![pb::Resource {
            name: "CPU".to_owned(),
            r#type: "INTEGER".to_owned(),
            integer_value: 2048,
            string_set_value: vec![],
        }],
        remaining_resources: vec![pb::Resource {
            name: "CPU".to_owned(),
            r#type: "INTEGER".to_owned(),
            integer_value: 1024,
            string_set_value: vec![],
        }],
        running_tasks_count: 1,
        address: "10.0.0.7".to_owned(),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl SystemService for Fake {
    async fn version(
        &self,
        _: Request<pb::VersionRequest>,
    ) -> Result<Response<pb::VersionResponse>, Status> {
        Ok(Response::new(pb::VersionResponse {
            version: "0.1.0".to_owned(),
            git_commit: "3f2a9c1".to_owned(),
        }))
    }
}

const TG_PREFIX: &str = "arn:berth:elasticloadbalancing:local:000000000000:targetgroup";

impl Fake {
    /// The group named by `s`, a name or an ARN.
    fn group(&self, s: &str) -> Result<pb::TargetGroup, Status> {
        let name = berth_proto::arn::target_group_name(s);
        self.state()
            .target_groups
            .get(name)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("target group {s} does not exist")))
    }
}

/// ELB's defaults over what a request gives (the fake checks nothing).
fn merge_check(base: &mut pb::HealthCheck, hc: Option<pb::HealthCheck>) {
    let Some(hc) = hc else { return };
    let text = |b: &mut String, v: String| {
        if !v.is_empty() {
            *b = v;
        }
    };
    let num = |b: &mut u32, v: u32| {
        if v != 0 {
            *b = v;
        }
    };
    text(&mut base.protocol, hc.protocol);
    text(&mut base.path, hc.path);
    text(&mut base.port, hc.port);
    text(&mut base.matcher, hc.matcher);
    num(&mut base.interval_seconds, hc.interval_seconds);
    num(&mut base.timeout_seconds, hc.timeout_seconds);
    num(&mut base.healthy_threshold, hc.healthy_threshold);
    num(&mut base.unhealthy_threshold, hc.unhealthy_threshold);
}

type Snapshots =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::TargetsSnapshot, Status>> + Send>>;

#[tonic::async_trait]
impl TargetGroupService for Fake {
    async fn create_target_group(
        &self,
        r: Request<pb::CreateTargetGroupRequest>,
    ) -> Result<Response<pb::CreateTargetGroupResponse>, Status> {
        let req = r.into_inner();
        self.state().create_group_requests.push(req.clone());
        if req.port == 0 {
            return Err(Status::invalid_argument("port: 0 is not a port (1–65535)"));
        }
        let protocol = if req.protocol.is_empty() {
            "HTTP".to_owned()
        } else {
            req.protocol.clone()
        };
        let mut hc = pb::HealthCheck {
            protocol: protocol.clone(),
            path: "/".into(),
            port: "traffic-port".into(),
            interval_seconds: 30,
            timeout_seconds: 5,
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            matcher: "200".into(),
        };
        if protocol == "TCP" {
            (hc.path, hc.matcher, hc.timeout_seconds) = (String::new(), String::new(), 10);
        }
        merge_check(&mut hc, req.health_check);
        let g = pb::TargetGroup {
            target_group_arn: format!("{TG_PREFIX}/{}/0123456789abcdef", req.name),
            target_group_name: req.name.clone(),
            protocol,
            port: req.port,
            health_check: Some(hc),
            deregistration_delay_seconds: req.deregistration_delay_seconds.unwrap_or(300),
            slow_start_seconds: req.slow_start_seconds.unwrap_or(0),
            service_arns: vec![],
            created_at: None,
            target_type: "instance".into(),
        };
        self.state().target_groups.insert(req.name, g.clone());
        Ok(Response::new(pb::CreateTargetGroupResponse {
            target_group: Some(g),
        }))
    }

    async fn describe_target_groups(
        &self,
        r: Request<pb::DescribeTargetGroupsRequest>,
    ) -> Result<Response<pb::DescribeTargetGroupsResponse>, Status> {
        let names = r.into_inner().target_groups;
        let target_groups = if names.is_empty() {
            self.state().target_groups.values().cloned().collect()
        } else {
            names
                .iter()
                .map(|n| self.group(n))
                .collect::<Result<_, _>>()?
        };
        Ok(Response::new(pb::DescribeTargetGroupsResponse {
            target_groups,
        }))
    }

    async fn modify_target_group(
        &self,
        r: Request<pb::ModifyTargetGroupRequest>,
    ) -> Result<Response<pb::ModifyTargetGroupResponse>, Status> {
        let req = r.into_inner();
        self.state().modify_group_requests.push(req.clone());
        let mut g = self.group(&req.target_group)?;
        let mut hc = g.health_check.take().unwrap_or_default();
        merge_check(&mut hc, req.health_check);
        g.health_check = Some(hc);
        if let Some(d) = req.deregistration_delay_seconds {
            g.deregistration_delay_seconds = d;
        }
        if let Some(s) = req.slow_start_seconds {
            g.slow_start_seconds = s;
        }
        self.state()
            .target_groups
            .insert(g.target_group_name.clone(), g.clone());
        Ok(Response::new(pb::ModifyTargetGroupResponse {
            target_group: Some(g),
        }))
    }

    async fn delete_target_group(
        &self,
        r: Request<pb::DeleteTargetGroupRequest>,
    ) -> Result<Response<pb::DeleteTargetGroupResponse>, Status> {
        let g = self.group(&r.into_inner().target_group)?;
        if let Some(s) = g.service_arns.first() {
            return Err(Status::failed_precondition(format!(
                "target group {} is in use by service {s}",
                g.target_group_name
            )));
        }
        self.state().target_groups.remove(&g.target_group_name);
        Ok(Response::new(pb::DeleteTargetGroupResponse {}))
    }

    async fn describe_target_health(
        &self,
        r: Request<pb::DescribeTargetHealthRequest>,
    ) -> Result<Response<pb::DescribeTargetHealthResponse>, Status> {
        self.group(&r.into_inner().target_group)?;
        Ok(Response::new(crate::views::target_group::tests::health()))
    }

    type WatchTargetsStream = Snapshots;

    async fn watch_targets(
        &self,
        r: Request<pb::WatchTargetsRequest>,
    ) -> Result<Response<Snapshots>, Status> {
        for n in &r.into_inner().target_groups {
            self.group(n)?;
        }
        // Two snapshots (the second adds a target), then the stream ends.
        let group = crate::views::target_group::tests::group();
        let mut targets = crate::views::target_group::tests::health().target_health_descriptions;
        let second = pb::TargetsSnapshot {
            groups: vec![pb::TargetGroupTargets {
                target_group: Some(group.clone()),
                targets: targets.clone(),
            }],
        };
        targets.truncate(1);
        let first = pb::TargetsSnapshot {
            groups: vec![pb::TargetGroupTargets {
                target_group: Some(group),
                targets,
            }],
        };
        Ok(Response::new(Box::pin(tokio_stream::iter([
            Ok::<_, Status>(first),
            Ok(second),
        ]))))
    }
}

/// The fake's service: `web`, with what the last create or update gave.
fn web_service(lbs: Vec<pb::LoadBalancer>, dns: Option<pb::ServiceDiscovery>) -> pb::Service {
    // The scheduler's default name: the service's.
    let dns = dns
        .filter(|d| !d.namespace.is_empty())
        .map(|d| pb::ServiceDiscovery {
            name: if d.name.is_empty() {
                "web".into()
            } else {
                d.name
            },
            ..d
        });
    pb::Service {
        service_arn: format!("{PREFIX}:service/default/web"),
        service_name: "web".into(),
        cluster_arn: format!("{PREFIX}:cluster/default"),
        status: "ACTIVE".into(),
        task_definition: format!("{PREFIX}:task-definition/web:1"),
        desired_count: 2,
        scheduling_strategy: "REPLICA".into(),
        load_balancers: lbs,
        service_discovery: dns,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl ServiceService for Fake {
    async fn create_service(
        &self,
        r: Request<pb::CreateServiceRequest>,
    ) -> Result<Response<pb::CreateServiceResponse>, Status> {
        let req = r.into_inner();
        self.state().create_service_requests.push(req.clone());
        Ok(Response::new(pb::CreateServiceResponse {
            service: Some(web_service(req.load_balancers, req.service_discovery)),
        }))
    }

    async fn update_service(
        &self,
        r: Request<pb::UpdateServiceRequest>,
    ) -> Result<Response<pb::UpdateServiceResponse>, Status> {
        let req = r.into_inner();
        self.state().update_service_requests.push(req.clone());
        let lbs = req
            .load_balancers
            .map(|l| l.load_balancers)
            .unwrap_or_default();
        Ok(Response::new(pb::UpdateServiceResponse {
            service: Some(web_service(lbs, req.service_discovery)),
        }))
    }

    async fn delete_service(
        &self,
        _r: Request<pb::DeleteServiceRequest>,
    ) -> Result<Response<pb::DeleteServiceResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn describe_services(
        &self,
        _r: Request<pb::DescribeServicesRequest>,
    ) -> Result<Response<pb::DescribeServicesResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn list_services(
        &self,
        _r: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn list_service_deployments(
        &self,
        _r: Request<pb::ListServiceDeploymentsRequest>,
    ) -> Result<Response<pb::ListServiceDeploymentsResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn describe_service_deployments(
        &self,
        _r: Request<pb::DescribeServiceDeploymentsRequest>,
    ) -> Result<Response<pb::DescribeServiceDeploymentsResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }
}

/// A test CA and a serving certificate for 127.0.0.1 signed by it (PEMs).
struct TestPki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> &'static TestPki {
    static PKI: std::sync::OnceLock<TestPki> = std::sync::OnceLock::new();
    PKI.get_or_init(|| {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::default();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        TestPki {
            ca_pem: ca_cert.pem(),
            cert_pem: server.pem(),
            key_pem: key.serialize_pem(),
        }
    })
}

/// Pages back from the most recent event, at most 2 a page (whatever the
/// limit), each page oldest first; the token is the index of the oldest
/// event returned.
#[tonic::async_trait]
impl AuditService for Fake {
    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let r = req.into_inner();
        let mut st = self.state();
        st.audit_requests.push(r.clone());
        let end = match r.next_token.as_str() {
            "" => st.audit.len(),
            t => t
                .parse::<usize>()
                .map_err(|_| Status::invalid_argument("nextToken: invalid"))?,
        };
        let size = usize::try_from(r.limit).unwrap().clamp(1, 2);
        let start = end.saturating_sub(size);
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: st.audit[start..end].to_vec(),
            next_token: if start > 0 {
                start.to_string()
            } else {
                String::new()
            },
        }))
    }
}

/// Serves `fake` over TLS on a loopback port; returns the endpoint URL.
async fn serve(fake: Fake) -> String {
    berth_proto::trust::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = tonic::transport::ServerTlsConfig::new().identity(
        tonic::transport::Identity::from_pem(&pki().cert_pem, &pki().key_pem),
    );
    let server = tonic::transport::Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(ClusterServiceServer::new(fake.clone()))
        .add_service(TaskDefinitionServiceServer::new(fake.clone()))
        .add_service(ContainerInstanceServiceServer::new(fake.clone()))
        .add_service(TagServiceServer::new(fake.clone()))
        .add_service(AttributeServiceServer::new(fake.clone()))
        .add_service(TargetGroupServiceServer::new(fake.clone()))
        .add_service(ServiceServiceServer::new(fake.clone()))
        .add_service(AuditServiceServer::new(fake.clone()))
        .add_service(SystemServiceServer::new(fake))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);
    format!("https://{addr}")
}

/// Runs `berthctl --endpoint <endpoint> <args>` in-process, as `main` would.
async fn berthctl(endpoint: &str, args: &[&str]) -> Outcome {
    let argv = ["berthctl", "--endpoint", endpoint]
        .into_iter()
        .chain(args.iter().copied());
    let cli = Cli::try_parse_from(argv).unwrap();
    let env = Env::from_pairs([("HOME", "/nonexistent"), ("BERTH_CA_CERT", &pki().ca_pem)]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = super::run(cli, &env, &mut out, &mut err).await;
    let mut stderr = String::from_utf8(err).unwrap();
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            stderr.push_str(&e.render());
            stderr.push('\n');
            e.exit_code()
        }
    };
    Outcome {
        code,
        stdout: String::from_utf8(out).unwrap(),
        stderr,
    }
}

struct Outcome {
    code: u8,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn check(&self, expected: Expect) {
        let mut text = format!("[exit {}]\n{}", self.code, self.stdout);
        if !self.stderr.is_empty() {
            text.push_str("--- stderr\n");
            text.push_str(&self.stderr);
        }
        expected.assert_eq(&text);
    }
}

const WEB: &str = r#"{"taskDefinition": {"family": "web", "taskRoleArn": "arn:aws:iam::1:role/x",
  "containerDefinitions": [{"name": "app", "image": "nginx:1.25", "memory": 128,
  "portMappings": [{"containerPort": 80, "hostPort": 0}]}]}}"#;

fn web_file(dir: &tempfile::TempDir) -> String {
    let p = dir.path().join("web.json");
    std::fs::write(&p, WEB).unwrap();
    p.display().to_string()
}

#[tokio::test]
async fn cluster_lifecycle() {
    let url = serve(Fake::default()).await;
    berthctl(&url, &["cluster", "ls"]).await.check(expect![[r#"
        [exit 0]
        NAME  STATUS  INSTANCES  RUNNING  PENDING  SERVICES
    "#]]);
    berthctl(&url, &["cluster", "create", "default"])
        .await
        .check(expect![[r#"
        [exit 0]
        created cluster default (arn:berth:ecs:local:000000000000:cluster/default)
    "#]]);
    berthctl(&url, &["cluster", "create", "prod"]).await;
    berthctl(&url, &["cluster", "ls"]).await.check(expect![[r#"
        [exit 0]
        NAME     STATUS  INSTANCES  RUNNING  PENDING  SERVICES
        default  ACTIVE  0          0        0        0
        prod     ACTIVE  0          0        0        0
    "#]]);
    berthctl(&url, &["-o", "json", "cluster", "describe"])
        .await
        .check(expect![[r#"
            [exit 0]
            {
              "clusters": [
                {
                  "clusterArn": "arn:berth:ecs:local:000000000000:cluster/default",
                  "clusterName": "default",
                  "status": "ACTIVE",
                  "registeredContainerInstancesCount": 0,
                  "runningTasksCount": 0,
                  "pendingTasksCount": 0,
                  "activeServicesCount": 0,
                  "statistics": [],
                  "tags": [],
                  "settings": [
                    {
                      "name": "containerInsights",
                      "value": "disabled"
                    }
                  ],
                  "capacityProviders": [],
                  "defaultCapacityProviderStrategy": []
                }
              ],
              "failures": []
            }
        "#]]);
    berthctl(&url, &["cluster", "describe", "prod", "nope"])
        .await
        .check(expect![[r#"
        [exit 1]
        Name:                 prod
        ARN:                  arn:berth:ecs:local:000000000000:cluster/prod
        Status:               ACTIVE
        Created at:           -
        Container instances:  0
        Running tasks:        0
        Pending tasks:        0
        Active services:      0
        --- stderr
        error: not found: arn:berth:ecs:local:000000000000:cluster/nope (MISSING)
    "#]]);
    berthctl(&url, &["cluster", "delete", "prod"])
        .await
        .check(expect![[r#"
        [exit 0]
        deleted cluster prod (arn:berth:ecs:local:000000000000:cluster/prod)
    "#]]);
    berthctl(&url, &["cluster", "delete", "prod"])
        .await
        .check(expect![[r#"
        [exit 1]
        --- stderr
        error: not found: cluster prod does not exist
    "#]]);
}

#[tokio::test]
async fn taskdef_register_prints_the_reference_first_and_warnings_on_stderr() {
    let url = serve(Fake::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = web_file(&dir);
    berthctl(&url, &["taskdef", "register", "-f", &file])
        .await
        .check(expect![[r#"
        [exit 0]
        web:1
        arn:berth:ecs:local:000000000000:task-definition/web:1
        --- stderr
        warning: taskRoleArn: stored, but IAM roles have no effect off AWS
    "#]]);
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"containerDefinitions": [{"name": "a"}, {"name": "b"}]}"#,
    )
    .unwrap();
    berthctl(
        &url,
        &["taskdef", "register", "-f", &bad.display().to_string()],
    )
    .await
    .check(expect![[r#"
            [exit 1]
            --- stderr
            error: invalid request:
              family: is required
              containerDefinitions[0].image: is required
              containerDefinitions[1].image: is required
        "#]]);
    let missing = berthctl(&url, &["taskdef", "register", "-f", "/nonexistent/x.json"]).await;
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr,
        "error: cannot read /nonexistent/x.json: No such file or directory (os error 2)\n"
    );
}

#[tokio::test]
async fn taskdef_describe_list_and_deregister() {
    let url = serve(Fake::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = web_file(&dir);
    for _ in 0..3 {
        assert_eq!(
            berthctl(&url, &["taskdef", "register", "-f", &file])
                .await
                .code,
            0
        );
    }
    berthctl(&url, &["-o", "json", "taskdef", "describe", "web:2"])
        .await
        .check(expect![[r#"
        [exit 0]
        {
          "taskDefinition": {
            "family": "web",
            "taskRoleArn": "arn:aws:iam::1:role/x",
            "containerDefinitions": [
              {
                "name": "app",
                "image": "nginx:1.25",
                "memory": 128,
                "portMappings": [
                  {
                    "containerPort": 80,
                    "hostPort": 0
                  }
                ]
              }
            ],
            "revision": 2,
            "status": "ACTIVE"
          }
        }
    "#]]);
    berthctl(&url, &["taskdef", "deregister", "web:3"])
        .await
        .check(expect![[r#"
        [exit 0]
        deregistered web:3 (now INACTIVE)
    "#]]);
    // Without a revision: the latest ACTIVE one.
    berthctl(&url, &["taskdef", "describe", "web"])
        .await
        .check(expect![[r#"
        [exit 0]
        Task definition:  web:2
        ARN:              arn:berth:ecs:local:000000000000:task-definition/web:2
        Status:           ACTIVE
        Registered at:    -
        Network mode:     -
        Task CPU:         -
        Task memory:      -

        CONTAINER  IMAGE       CPU  MEMORY/RESERVATION  PORTS      ESSENTIAL
        app        nginx:1.25  -    128/-               *->80/tcp  true
    "#]]);
    berthctl(&url, &["taskdef", "describe", "db"])
        .await
        .check(expect![[r#"
        [exit 1]
        --- stderr
        error: not found: task definition db does not exist
    "#]]);
    berthctl(&url, &["taskdef", "families"])
        .await
        .check(expect![[r#"
        [exit 0]
        FAMILY
        web
    "#]]);
    // Five revisions over pages of two: berthctl follows next_token.
    let fake = Fake::default();
    let url = serve(fake.clone()).await;
    for _ in 0..5 {
        berthctl(&url, &["taskdef", "register", "-f", &file]).await;
    }
    berthctl(&url, &["-o", "json", "taskdef", "ls", "--family", "web"])
        .await
        .check(expect![[r#"
        [exit 0]
        {
          "taskDefinitionArns": [
            "arn:berth:ecs:local:000000000000:task-definition/web:1",
            "arn:berth:ecs:local:000000000000:task-definition/web:2",
            "arn:berth:ecs:local:000000000000:task-definition/web:3",
            "arn:berth:ecs:local:000000000000:task-definition/web:4",
            "arn:berth:ecs:local:000000000000:task-definition/web:5"
          ]
        }
    "#]]);
    let tokens: Vec<_> = fake
        .state()
        .list_requests
        .iter()
        .map(|r| r.next_token.clone())
        .collect();
    assert_eq!(tokens, ["", "2", "4"]);
    berthctl(&url, &["taskdef", "ls", "--status", "INACTIVE"])
        .await
        .check(expect![[r#"
        [exit 0]
        FAMILY  REVISION  ARN
    "#]]);
}

#[tokio::test]
async fn instance_ls_and_describe() {
    let fake = Fake::default();
    let url = serve(fake.clone()).await;
    berthctl(&url, &["instance", "ls"]).await.check(expect![[r#"
        [exit 0]
        ID        HOST    ADDRESS   STATUS  CONNECTED  CPU        MEMORY (MiB)  TASKS  AGENT VERSION
        4f1c9a7e  node-a  10.0.0.7  ACTIVE  yes        1024/2048  -/-           1      0.1.0
    "#]]);
    // ls describes exactly what it listed, in the cluster it listed.
    let req = fake.state().describe_instance_requests[0].clone();
    assert_eq!(req.cluster, "default");
    assert_eq!(
        req.container_instances,
        [format!("{PREFIX}:container-instance/default/4f1c9a7e")]
    );

    berthctl(&url, &["instance", "ls", "--cluster", "prod"])
        .await
        .check(expect![[r#"
        [exit 1]
        --- stderr
        error: not found: cluster prod does not exist
    "#]]);
    let out = berthctl(
        &url,
        &["-o", "json", "instance", "describe", "4f1c9a7e", "gone"],
    )
    .await;
    assert_eq!(out.code, 1);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["containerInstances"][0]["ec2InstanceId"], "node-a");
    assert_eq!(json["failures"][0]["reason"], "MISSING");
    assert_eq!(
        out.stderr,
        "error: not found: arn:berth:ecs:local:000000000000:container-instance/default/gone (MISSING)\n"
    );
}

#[tokio::test]
async fn instance_drain_and_activate() {
    let fake = Fake::default();
    let url = serve(fake.clone()).await;
    berthctl(&url, &["instance", "drain", "4f1c9a7e"])
        .await
        .check(expect![[r#"
            [exit 0]
            ID        HOST    ADDRESS   STATUS    CONNECTED  CPU        MEMORY (MiB)  TASKS  AGENT VERSION
            4f1c9a7e  node-a  10.0.0.7  DRAINING  yes        1024/2048  -/-           1      0.1.0
        "#]]);
    berthctl(&url, &["instance", "activate", "4f1c9a7e", "gone"])
        .await
        .check(expect![[r#"
            [exit 1]
            ID        HOST    ADDRESS   STATUS  CONNECTED  CPU        MEMORY (MiB)  TASKS  AGENT VERSION
            4f1c9a7e  node-a  10.0.0.7  ACTIVE  yes        1024/2048  -/-           1      0.1.0
            --- stderr
            error: not found: arn:berth:ecs:local:000000000000:container-instance/default/gone (MISSING)
        "#]]);
    let reqs = fake.state().state_requests.clone();
    assert_eq!(reqs[0].status, "DRAINING");
    assert_eq!(reqs[0].cluster, "default");
    assert_eq!(reqs[1].status, "ACTIVE");
    assert_eq!(reqs[1].container_instances, ["4f1c9a7e", "gone"]);
}

#[tokio::test]
async fn version_with_and_without_a_scheduler() {
    let url = serve(Fake::default()).await;
    berthctl(&url, &["version"]).await.check(expect![[r#"
        [exit 0]
        Client:  berthctl 0.1.0
        Server:  berth-scheduler 0.1.0 (3f2a9c1)
    "#]]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let closed = format!("https://127.0.0.1:{port}");
    let out = berthctl(&closed, &["version"]).await;
    assert_eq!(out.code, 3);
    assert_eq!(out.stdout, "Client:  berthctl 0.1.0\n");
    assert!(
        out.stderr.starts_with(&format!(
            "error: cannot reach the Berth scheduler at {closed}: "
        )),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn tags_attributes_and_taskdef_delete() {
    let url = serve(Fake::default()).await;
    let arn = format!("{PREFIX}:cluster/prod");
    berthctl(&url, &["tag", "add", &arn, "team=core", "env="])
        .await
        .check(expect![[r#"
            [exit 0]
            KEY   VALUE
            team  core
            env
        "#]]);
    berthctl(&url, &["tag", "add", &arn, "team=edge"])
        .await
        .check(expect![[r#"
            [exit 0]
            KEY   VALUE
            env
            team  edge
        "#]]);
    berthctl(&url, &["-o", "json", "tag", "rm", &arn, "env"])
        .await
        .check(expect![[r#"
            [exit 0]
            {
              "tags": [
                {
                  "key": "team",
                  "value": "edge"
                }
              ]
            }
        "#]]);
    berthctl(&url, &["tag", "ls", &format!("{PREFIX}:cluster/nope")])
        .await
        .check(expect![[r#"
            [exit 1]
            --- stderr
            error: not found: The specified resource is not found.
        "#]]);

    berthctl(
        &url,
        &["instance", "attribute", "put", "4f1c", "tier=gold", "gpu"],
    )
    .await
    .check(expect![[r#"
        [exit 0]
        INSTANCE  NAME  VALUE
        4f1c      tier  gold
        4f1c      gpu   -
    "#]]);
    berthctl(&url, &["instance", "attribute", "ls", "--name", "tier"])
        .await
        .check(expect![[r#"
            [exit 0]
            INSTANCE  NAME  VALUE
            4f1c      tier  gold
        "#]]);
    berthctl(&url, &["instance", "attribute", "rm", "4f1c", "tier"])
        .await
        .check(expect![[r#"
            [exit 0]
            removed attribute tier from 4f1c
        "#]]);
    berthctl(&url, &["-o", "json", "instance", "attribute", "ls"])
        .await
        .check(expect![[r#"
            [exit 0]
            {
              "attributes": [
                {
                  "name": "gpu",
                  "targetType": "container-instance",
                  "targetId": "4f1c"
                }
              ]
            }
        "#]]);

    let dir = tempfile::tempdir().unwrap();
    let file = web_file(&dir);
    for _ in 0..2 {
        assert_eq!(
            berthctl(&url, &["taskdef", "register", "-f", &file])
                .await
                .code,
            0
        );
    }
    berthctl(&url, &["taskdef", "deregister", "web:1"]).await;
    berthctl(&url, &["taskdef", "delete", "web:1", "web:2"])
        .await
        .check(expect![[r#"
            [exit 1]
            task definition web:1 deleted (DELETE_IN_PROGRESS)
            --- stderr
            error: not deleted:
              arn:berth:ecs:local:000000000000:task-definition/web:2: The specified task definition is still in ACTIVE status. Please deregister the target and try again.
        "#]]);
}

#[tokio::test]
async fn target_groups_create_list_modify_health_and_rm() {
    let fake = Fake::default();
    let url = serve(fake.clone()).await;
    berthctl(
        &url,
        &[
            "targetgroup",
            "create",
            "web",
            "--port",
            "80",
            "--health-check-path",
            "/health",
            "--matcher",
            "200-299",
            "--healthy-threshold",
            "3",
        ],
    )
    .await
    .check(expect![[r#"
        [exit 0]
        Target group:          web
        ARN:                   arn:berth:elasticloadbalancing:local:000000000000:targetgroup/web/0123456789abcdef
        Protocol:              HTTP 80
        Target type:           instance
        Health check:          HTTP /health on traffic-port every 30s
        Timeout:               5s
        Thresholds:            3 healthy, 2 unhealthy
        Matcher:               200-299
        Deregistration delay:  300s
        Slow start:            off
        Services:              -
    "#]]);
    berthctl(
        &url,
        &[
            "targetgroup",
            "create",
            "db",
            "--protocol",
            "tcp",
            "--port",
            "5432",
        ],
    )
    .await;
    let reqs = fake.state().create_group_requests.clone();
    assert_eq!(reqs[0].protocol, "", "the scheduler's default applies");
    assert_eq!(
        reqs[0].health_check.as_ref().map(|h| (
            h.path.as_str(),
            h.healthy_threshold,
            h.interval_seconds
        )),
        Some(("/health", 3, 0))
    );
    assert_eq!(reqs[0].deregistration_delay_seconds, None);
    assert_eq!(
        (reqs[1].protocol.as_str(), reqs[1].health_check.as_ref()),
        ("TCP", None)
    );
    berthctl(&url, &["targetgroup", "ls"])
        .await
        .check(expect![[r#"
        [exit 0]
        NAME  PROTOCOL  PORT  HEALTH CHECK                            SERVICES
        db    TCP       5432  TCP on traffic-port every 30s           0
        web   HTTP      80    HTTP /health on traffic-port every 30s  0
    "#]]);
    berthctl(
        &url,
        &[
            "-o",
            "json",
            "targetgroup",
            "modify",
            &format!("{TG_PREFIX}/web/0123456789abcdef"),
            "--health-check-interval",
            "10",
            "--deregistration-delay",
            "30",
        ],
    )
    .await
    .check(expect![[r#"
        [exit 0]
        {
          "TargetGroups": [
            {
              "TargetGroupArn": "arn:berth:elasticloadbalancing:local:000000000000:targetgroup/web/0123456789abcdef",
              "TargetGroupName": "web",
              "Protocol": "HTTP",
              "Port": 80,
              "HealthCheckProtocol": "HTTP",
              "HealthCheckPort": "traffic-port",
              "HealthCheckEnabled": true,
              "HealthCheckIntervalSeconds": 10,
              "HealthCheckTimeoutSeconds": 5,
              "HealthyThresholdCount": 3,
              "UnhealthyThresholdCount": 2,
              "HealthCheckPath": "/health",
              "Matcher": {
                "HttpCode": "200-299"
              },
              "LoadBalancerArns": [],
              "TargetType": "instance",
              "IpAddressType": "ipv4",
              "Berth": {
                "DeregistrationDelaySeconds": 30,
                "SlowStartSeconds": 0,
                "ServiceArns": []
              }
            }
          ]
        }
    "#]]);
    let m = fake.state().modify_group_requests[0].clone();
    assert_eq!(m.deregistration_delay_seconds, Some(30));
    assert_eq!(m.slow_start_seconds, None);
    berthctl(&url, &["targetgroup", "modify", "web"])
        .await
        .check(expect![[r#"
            [exit 2]
            --- stderr
            error: nothing to modify: give a --health-check-* option, a threshold, --matcher, --deregistration-delay or --slow-start
        "#]]);
    berthctl(&url, &["targetgroup", "describe", "web", "nope"])
        .await
        .check(expect![[r#"
            [exit 1]
            --- stderr
            error: not found: target group nope does not exist
        "#]]);
    berthctl(&url, &["targetgroup", "health", "web"])
        .await
        .check(expect![[r#"
            [exit 0]
            TARGET          INSTANCE  TASK  CONTAINER:PORT  STATE      REASON                       DESCRIPTION
            10.0.0.7:32768  4f1c9a7e  0a1b  app:80          healthy    -                            -
            10.0.0.7:32769  4f1c9a7e  9c8d  app:80          unhealthy  Target.ResponseCodeMismatch  Health checks failed with these codes: [503]
        "#]]);
    let out = berthctl(&url, &["-o", "json", "targetgroup", "health", "web"]).await;
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        json["TargetHealthDescriptions"][1]["TargetHealth"]["Reason"],
        "Target.ResponseCodeMismatch"
    );
    // In use: refused with the scheduler's sentence.
    fake.state()
        .target_groups
        .get_mut("db")
        .unwrap()
        .service_arns
        .push(format!("{PREFIX}:service/default/pg"));
    berthctl(&url, &["targetgroup", "rm", "db"])
        .await
        .check(expect![[r#"
            [exit 1]
            --- stderr
            error: not possible now: target group db is in use by service arn:berth:ecs:local:000000000000:service/default/pg
        "#]]);
    berthctl(&url, &["targetgroup", "rm", "web"])
        .await
        .check(expect![[r#"
            [exit 0]
            target group web deleted
        "#]]);
    berthctl(&url, &["targetgroup", "rm", "web"])
        .await
        .check(expect![[r#"
            [exit 1]
            --- stderr
            error: not found: target group web does not exist
        "#]]);
}

#[tokio::test]
async fn target_group_watch_prints_changes() {
    let fake = Fake::default();
    let url = serve(fake.clone()).await;
    berthctl(&url, &["targetgroup", "create", "web", "--port", "80"]).await;
    let out = berthctl(&url, &["targetgroup", "watch", "web"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].starts_with("TIME"), "{}", out.stdout);
    assert!(
        lines[1].contains("10.0.0.7:32768  0a1b  app:80  healthy"),
        "{}",
        out.stdout
    );
    assert!(
        lines[2].contains("10.0.0.7:32769  9c8d  app:80  unhealthy"),
        "{}",
        out.stdout
    );
    // The fake ends its stream: berthctl says so and fails.
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("ended the watch"), "{}", out.stderr);
    let missing = berthctl(&url, &["targetgroup", "watch", "nope"]).await;
    assert_eq!(missing.code, 1);
}

#[tokio::test]
async fn services_attach_to_target_groups_and_dns_names() {
    let fake = Fake::default();
    let url = serve(fake.clone()).await;
    let tg = format!("{TG_PREFIX}/api/0123456789abcdef");
    berthctl(
        &url,
        &[
            "service",
            "create",
            "web",
            "--taskdef",
            "web:1",
            "--desired-count",
            "2",
            "--load-balancer",
            "web:app:80",
            "--load-balancer",
            &format!("targetGroupArn={tg},containerName=app,containerPort=9090"),
            "--dns-namespace",
            "prod.berth.internal",
            "--dns-container",
            "app:80",
        ],
    )
    .await
    .check(expect![[r#"
        [exit 0]
        Service:          web
        ARN:              arn:berth:ecs:local:000000000000:service/default/web
        Status:           ACTIVE
        Task definition:  web:1
        Scheduling:       REPLICA
        Tasks:            2 desired, 0 running, 0 pending
        Deployment:       minimum healthy 100%, maximum 200%, circuit breaker off
        Load balancers:   web -> app:80
                          api -> app:9090
        DNS name:         web.prod.berth.internal (SRV _web._tcp.prod.berth.internal -> app:80)

        DEPLOYMENT  STATUS  TASKDEF  DESIRED  RUNNING  PENDING  FAILED  ROLLOUT
    "#]]);
    let c = fake.state().create_service_requests[0].clone();
    assert_eq!(c.load_balancers[1].target_group_arn, tg);
    assert_eq!(
        c.service_discovery
            .map(|d| (d.namespace, d.name, d.container_name, d.container_port)),
        Some((
            "prod.berth.internal".into(),
            String::new(),
            "app".into(),
            80
        ))
    );
    // An ARN's own colons: the last two fields are the container and port.
    berthctl(
        &url,
        &[
            "service",
            "update",
            "web",
            "--load-balancer",
            &format!("{tg}:app:8080"),
        ],
    )
    .await;
    berthctl(
        &url,
        &[
            "service",
            "update",
            "web",
            "--no-load-balancers",
            "--no-dns",
        ],
    )
    .await;
    berthctl(&url, &["service", "update", "web", "--desired-count", "3"]).await;
    let u = fake.state().update_service_requests.clone();
    assert_eq!(
        u[0].load_balancers
            .as_ref()
            .map(|l| l.load_balancers.clone()),
        Some(vec![pb::LoadBalancer {
            target_group_arn: tg.clone(),
            container_name: "app".into(),
            container_port: 8080,
        }])
    );
    assert_eq!(u[0].service_discovery, None);
    assert_eq!(
        u[1].load_balancers,
        Some(pb::LoadBalancerUpdate {
            load_balancers: vec![]
        }),
        "--no-load-balancers detaches"
    );
    assert_eq!(
        u[1].service_discovery,
        Some(pb::ServiceDiscovery::default())
    );
    assert_eq!(
        (
            u[2].load_balancers.as_ref(),
            u[2].service_discovery.as_ref()
        ),
        (None, None)
    );
}

#[tokio::test]
async fn audit_ls_follows_pages_back_to_its_limit() {
    let fake = Fake::default();
    fake.state().audit = (0..5)
        .map(|i| pb::AuditEvent {
            id: format!("id{i}"),
            time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000 + i,
                nanos: 0,
            }),
            token_id: "t".to_owned(),
            token_name: "ci".to_owned(),
            method: "/berth.v1.ClusterService/CreateCluster".to_owned(),
            resource: format!("cluster/c{i}"),
            outcome: "OK".to_owned(),
        })
        .collect();
    let url = serve(fake.clone()).await;
    let resources = |o: &Outcome| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].as_str().unwrap().to_owned())
            .collect()
    };
    let out = berthctl(&url, &["-o", "json", "audit", "ls", "--limit", "3"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(resources(&out), ["cluster/c2", "cluster/c3", "cluster/c4"]);
    let limits: Vec<i32> = fake
        .state()
        .audit_requests
        .iter()
        .map(|r| r.limit)
        .collect();
    assert_eq!(
        limits,
        [3, 1],
        "the second page asks only for what is missing"
    );
    let out = berthctl(&url, &["-o", "json", "audit", "ls", "--all"]).await;
    assert_eq!(
        resources(&out),
        [
            "cluster/c0",
            "cluster/c1",
            "cluster/c2",
            "cluster/c3",
            "cluster/c4"
        ]
    );
}
