//! `TargetGroupService`: ELBv2's CreateTargetGroup, DescribeTargetGroups,
//! ModifyTargetGroup, DeleteTargetGroup and DescribeTargetHealth, and
//! WatchTargets for load balancers. Also the checks of a service's
//! `loadBalancers` and DNS name, which CreateService and UpdateService
//! share. Requests are checked here with ELB's limits and defaults (errors
//! name the field); the states come from [`crate::traffic`].

use std::pin::Pin;

use berth_proto::taskdef::NetworkMode;
use berth_proto::v1 as pb;
use berth_proto::v1::target_group_service_server::TargetGroupService;
use futures::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::{timestamp, ApiError, Shared};
use crate::records::{
    now_millis, CheckPort, DiscoveryRecord, HealthCheckRecord, LoadBalancerRecord,
    TargetGroupRecord, TargetProtocol, TaskDefinitionRecord, DEFAULT_DEREGISTRATION_DELAY_SECS,
};
use crate::traffic::{self, GroupTargets, Watcher};

/// ELB's limit on a target group's name.
const MAX_NAME: usize = 32;

#[derive(Debug)]
pub struct TargetGroupApi {
    pub shared: Shared,
    pub traffic: Watcher,
    /// Cancelled on scheduler shutdown, ending every WatchTargets stream.
    pub shutdown: CancellationToken,
}

/// ELB's target-group name rule.
fn check_name(name: &str) -> Result<(), ApiError> {
    let bad = |why: &str| ApiError::invalid("name", format!("{name:?} {why}"));
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(bad("must be 1–32 characters"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(bad("may hold only letters, digits and hyphens"));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(bad("must not begin or end with a hyphen"));
    }
    if name.starts_with("internal-") {
        return Err(bad("must not begin with \"internal-\""));
    }
    Ok(())
}

fn protocol(field: &str, s: &str, default: TargetProtocol) -> Result<TargetProtocol, ApiError> {
    if s.is_empty() {
        return Ok(default);
    }
    TargetProtocol::parse(&s.to_ascii_uppercase())
        .ok_or_else(|| ApiError::invalid(field, format!("{s:?} is not HTTP or TCP")))
}

/// ELB's matcher: "200", "200,202" or "200-299", codes 200–499.
pub fn check_matcher(m: &str) -> Result<(), String> {
    let code = |s: &str| -> Result<u16, String> {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (200..=499).contains(c))
            .ok_or_else(|| format!("{s:?} is not an HTTP code from 200 to 499"))
    };
    for part in m.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if code(a)? > code(b)? {
                    return Err(format!("the range {part:?} is empty"));
                }
            }
            None => {
                code(part)?;
            }
        }
    }
    Ok(())
}

fn range(field: &str, v: u32, lo: u32, hi: u32) -> Result<u32, ApiError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::invalid(
            field,
            format!("{v} is outside {lo}–{hi}"),
        ))
    }
}

/// A health check from the request over `base` (ELB's defaults when
/// creating): fields left empty or 0 keep `base`'s.
fn health_check(
    hc: Option<&pb::HealthCheck>,
    group_protocol: TargetProtocol,
    base: Option<&HealthCheckRecord>,
) -> Result<HealthCheckRecord, ApiError> {
    let empty = pb::HealthCheck::default();
    let hc = hc.unwrap_or(&empty);
    let proto = protocol(
        "healthCheck.protocol",
        &hc.protocol,
        base.map(|b| b.protocol).unwrap_or(group_protocol),
    )?;
    let http = proto == TargetProtocol::Http;
    let pick = |v: u32, field: &str, default: u32, lo: u32, hi: u32| -> Result<u32, ApiError> {
        match v {
            0 => Ok(default),
            v => range(&format!("healthCheck.{field}"), v, lo, hi),
        }
    };
    let interval = pick(
        hc.interval_seconds,
        "intervalSeconds",
        base.map_or(30, |b| b.interval_secs),
        5,
        300,
    )?;
    let timeout = pick(
        hc.timeout_seconds,
        "timeoutSeconds",
        base.map_or(if http { 5 } else { 10 }, |b| b.timeout_secs),
        2,
        120,
    )?;
    if timeout >= interval {
        return Err(ApiError::invalid(
            "healthCheck.timeoutSeconds",
            format!("{timeout} must be less than the interval ({interval} s)"),
        ));
    }
    let path = match (hc.path.as_str(), base) {
        ("", Some(b)) if !b.path.is_empty() => b.path.clone(),
        ("", _) => "/".to_owned(),
        (p, _) if p.starts_with('/') && p.len() <= 1024 && !p.contains(char::is_whitespace) => {
            p.to_owned()
        }
        (p, _) => {
            return Err(ApiError::invalid(
                "healthCheck.path",
                format!("{p:?} must start with / and hold no spaces (at most 1024 characters)"),
            ))
        }
    };
    let port = match hc.port.as_str() {
        "" => base.map_or(CheckPort::TrafficPort, |b| b.port),
        "traffic-port" => CheckPort::TrafficPort,
        p => CheckPort::Fixed(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            ApiError::invalid(
                "healthCheck.port",
                format!("{p:?} is not traffic-port or a port 1–65535"),
            )
        })?),
    };
    let matcher = match hc.matcher.as_str() {
        "" => base.map_or("200".to_owned(), |b| b.matcher.clone()),
        m => {
            check_matcher(m).map_err(|e| ApiError::invalid("healthCheck.matcher", e))?;
            m.to_owned()
        }
    };
    Ok(HealthCheckRecord {
        protocol: proto,
        path: if http { path } else { String::new() },
        port,
        interval_secs: interval,
        timeout_secs: timeout,
        healthy_threshold: pick(
            hc.healthy_threshold,
            "healthyThreshold",
            base.map_or(5, |b| b.healthy_threshold),
            2,
            10,
        )?,
        unhealthy_threshold: pick(
            hc.unhealthy_threshold,
            "unhealthyThreshold",
            base.map_or(2, |b| b.unhealthy_threshold),
            2,
            10,
        )?,
        matcher: if http { matcher } else { String::new() },
    })
}

fn slow_start(v: u32) -> Result<u32, ApiError> {
    if v == 0 || (30..=900).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::invalid(
            "slowStartSeconds",
            format!("{v} must be 0 (off) or 30–900"),
        ))
    }
}

fn new_group_id() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}

/// A target group as ELB describes it.
pub fn group_to_proto(
    shared: &Shared,
    g: &TargetGroupRecord,
    services: &[String],
) -> pb::TargetGroup {
    let hc = &g.health_check;
    pb::TargetGroup {
        target_group_arn: shared.arn.target_group(&g.name, &g.id),
        target_group_name: g.name.clone(),
        protocol: g.protocol.as_str().to_owned(),
        port: u32::from(g.port),
        health_check: Some(pb::HealthCheck {
            protocol: hc.protocol.as_str().to_owned(),
            path: hc.path.clone(),
            port: hc.port.render(),
            interval_seconds: hc.interval_secs,
            timeout_seconds: hc.timeout_secs,
            healthy_threshold: hc.healthy_threshold,
            unhealthy_threshold: hc.unhealthy_threshold,
            matcher: hc.matcher.clone(),
        }),
        deregistration_delay_seconds: g.deregistration_delay_secs,
        slow_start_seconds: g.slow_start_secs,
        service_arns: services.to_vec(),
        created_at: Some(timestamp(g.created_at)),
        target_type: "instance".to_owned(),
    }
}

/// A target as ELB describes its health.
fn target_to_proto(shared: &Shared, t: &traffic::Target) -> pb::TargetHealthDescription {
    pb::TargetHealthDescription {
        target: Some(pb::Target {
            id: t.instance_id.clone(),
            port: u32::from(t.host_port),
            availability_zone: t.availability_zone.clone(),
            address: t.address.map(|a| a.to_string()).unwrap_or_default(),
        }),
        health_check_port: t.health_check_port.clone(),
        target_health: Some(pb::TargetHealth {
            state: t.state.as_str().to_owned(),
            reason: t.reason.to_owned(),
            description: t.description.clone(),
        }),
        task_arn: shared.arn.task(&t.cluster, &t.task_id),
        container_name: t.container_name.clone(),
        container_port: u32::from(t.container_port),
        service_arn: shared.arn.service(&t.cluster, &t.service),
        container_instance_arn: shared.arn.container_instance(&t.cluster, &t.instance_id),
        since: Some(timestamp(t.since)),
    }
}

fn group_targets_to_proto(shared: &Shared, g: &GroupTargets) -> pb::TargetGroupTargets {
    pb::TargetGroupTargets {
        target_group: Some(group_to_proto(shared, &g.group, &g.services)),
        targets: g
            .targets
            .iter()
            .map(|t| target_to_proto(shared, t))
            .collect(),
    }
}

/// Checks a service's `loadBalancers` against the task definition it runs:
/// each names an existing target group and a TCP container port of the
/// definition's port mappings, at most once. Errors name `prefix` +
/// `loadBalancers[i].…`.
pub fn load_balancers(
    shared: &Shared,
    td: &TaskDefinitionRecord,
    lbs: &[pb::LoadBalancer],
    prefix: &str,
) -> Result<Vec<LoadBalancerRecord>, ApiError> {
    const MAX: usize = 5;
    if lbs.len() > MAX {
        return Err(ApiError::invalid(
            &format!("{prefix}loadBalancers"),
            format!("at most {MAX} load balancers per service (ECS's limit)"),
        ));
    }
    let def = &td.definition;
    let mut out: Vec<LoadBalancerRecord> = Vec::with_capacity(lbs.len());
    for (i, lb) in lbs.iter().enumerate() {
        let field = |f: &str| format!("{prefix}loadBalancers[{i}].{f}");
        if lb.target_group_arn.trim().is_empty() {
            return Err(ApiError::invalid(&field("targetGroupArn"), "required"));
        }
        let group = shared
            .db
            .target_group(lb.target_group_arn.trim())?
            .ok_or_else(|| {
                ApiError::invalid(
                    &field("targetGroupArn"),
                    format!("target group {:?} does not exist", lb.target_group_arn),
                )
            })?;
        let Some(c) = def.container(&lb.container_name) else {
            return Err(ApiError::invalid(
                &field("containerName"),
                format!(
                    "container {:?} is not in task definition {}:{}",
                    lb.container_name, td.family, td.revision
                ),
            ));
        };
        let port = u16::try_from(lb.container_port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                ApiError::invalid(
                    &field("containerPort"),
                    format!("{} is not a port (1–65535)", lb.container_port),
                )
            })?;
        let mapped = c.port_mappings.iter().any(|m| {
            m.container_port == Some(u32::from(port))
                && m.effective_protocol() == berth_proto::ecs::Protocol::Tcp
        });
        if !mapped {
            return Err(ApiError::invalid(
                &field("containerPort"),
                format!(
                    "container {:?} of {}:{} has no tcp port mapping for container port {port}",
                    lb.container_name, td.family, td.revision
                ),
            ));
        }
        if def.effective_network_mode() == NetworkMode::Awsvpc
            || def.effective_network_mode() == NetworkMode::None
        {
            return Err(ApiError::invalid(
                &field("containerPort"),
                format!(
                    "task definition {}:{} uses network mode {}: Berth registers targets on \
                     host ports, so services behind target groups use bridge or host",
                    td.family,
                    td.revision,
                    def.effective_network_mode().as_str()
                ),
            ));
        }
        let rec = LoadBalancerRecord {
            target_group_arn: shared.arn.target_group(&group.name, &group.id),
            container_name: lb.container_name.clone(),
            container_port: port,
        };
        if out.contains(&rec) {
            return Err(ApiError::invalid(
                &format!("{prefix}loadBalancers[{i}]"),
                "the same target group, container and port are given twice",
            ));
        }
        out.push(rec);
    }
    Ok(out)
}

/// One DNS label: 1–63 of `[a-z0-9-]`, not starting or ending with `-`.
fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Checks a service's DNS name (`None`: it has none).
pub fn discovery(
    td: &TaskDefinitionRecord,
    d: &pb::ServiceDiscovery,
    service: &str,
    prefix: &str,
) -> Result<Option<DiscoveryRecord>, ApiError> {
    let namespace = d
        .namespace
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if namespace.is_empty() {
        return Ok(None);
    }
    let field = |f: &str| format!("{prefix}serviceDiscovery.{f}");
    if namespace.len() > 200 || !namespace.split('.').all(dns_label) {
        return Err(ApiError::invalid(
            &field("namespace"),
            format!("{namespace:?} is not a DNS name (labels of a-z, 0-9 and -)"),
        ));
    }
    let name = match d.name.trim() {
        "" => service.to_ascii_lowercase(),
        n => n.to_ascii_lowercase(),
    };
    if !dns_label(&name) {
        return Err(ApiError::invalid(
            &field("name"),
            format!(
                "{name:?} is not a DNS label (1–63 of a-z, 0-9 and -; give serviceDiscovery.name)"
            ),
        ));
    }
    let container = match (d.container_name.trim(), d.container_port) {
        ("", 0) => None,
        (c, p) => {
            let port = u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
                ApiError::invalid(&field("containerPort"), format!("{p} is not a port"))
            })?;
            let mapped = td.definition.container(c).is_some_and(|cd| {
                cd.port_mappings
                    .iter()
                    .any(|m| m.container_port == Some(u32::from(port)))
            });
            if !mapped {
                return Err(ApiError::invalid(
                    &field("containerPort"),
                    format!(
                        "container {c:?} of {}:{} has no port mapping for {port}",
                        td.family, td.revision
                    ),
                ));
            }
            Some((c.to_owned(), port))
        }
    };
    Ok(Some(DiscoveryRecord {
        namespace,
        name,
        container,
    }))
}

/// The proto of a stored DNS name.
pub fn discovery_to_proto(d: &DiscoveryRecord) -> pb::ServiceDiscovery {
    let (container_name, container_port) = d
        .container
        .clone()
        .map(|(c, p)| (c, u32::from(p)))
        .unwrap_or_default();
    pb::ServiceDiscovery {
        namespace: d.namespace.clone(),
        name: d.name.clone(),
        container_name,
        container_port,
    }
}

pub fn load_balancer_to_proto(l: &LoadBalancerRecord) -> pb::LoadBalancer {
    pb::LoadBalancer {
        target_group_arn: l.target_group_arn.clone(),
        container_name: l.container_name.clone(),
        container_port: u32::from(l.container_port),
    }
}

impl TargetGroupApi {
    fn view(&self) -> Result<traffic::View, ApiError> {
        Ok(traffic::read(
            &self.shared.db,
            &self.shared.sessions,
            &self.shared.arn,
        )?)
    }

    fn group(&self, name_or_arn: &str) -> Result<TargetGroupRecord, ApiError> {
        let s = name_or_arn.trim();
        if s.is_empty() {
            return Err(ApiError::invalid("targetGroup", "required"));
        }
        self.shared.db.target_group(s)?.ok_or_else(|| {
            ApiError::from(crate::db::DbError::NotFound {
                kind: "target group",
                name: s.to_owned(),
            })
        })
    }

    fn describe_one(&self, g: &TargetGroupRecord) -> Result<pb::TargetGroup, ApiError> {
        let view = self.view()?;
        let services = view
            .group(&g.name)
            .map(|v| v.services.clone())
            .unwrap_or_default();
        Ok(group_to_proto(&self.shared, g, &services))
    }
}

type TargetStream = Pin<Box<dyn Stream<Item = Result<pb::TargetsSnapshot, Status>> + Send>>;

#[tonic::async_trait]
impl TargetGroupService for TargetGroupApi {
    #[tracing::instrument(skip_all, fields(target_group = %req.get_ref().name))]
    async fn create_target_group(
        &self,
        req: Request<pb::CreateTargetGroupRequest>,
    ) -> Result<Response<pb::CreateTargetGroupResponse>, Status> {
        let req = req.into_inner();
        let name = req.name.trim().to_owned();
        check_name(&name)?;
        let proto = protocol("protocol", &req.protocol, TargetProtocol::Http)?;
        let port = u16::try_from(req.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                ApiError::invalid("port", format!("{} is not a port (1–65535)", req.port))
            })?;
        let rec = TargetGroupRecord {
            name,
            id: new_group_id(),
            protocol: proto,
            port,
            health_check: health_check(req.health_check.as_ref(), proto, None)?,
            deregistration_delay_secs: range(
                "deregistrationDelaySeconds",
                req.deregistration_delay_seconds
                    .unwrap_or(DEFAULT_DEREGISTRATION_DELAY_SECS),
                0,
                3600,
            )?,
            slow_start_secs: slow_start(req.slow_start_seconds.unwrap_or(0))?,
            created_at: now_millis(),
        };
        let rec = self
            .shared
            .db
            .create_target_group(rec)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(target_group = %rec.name, "target group created");
        Ok(Response::new(pb::CreateTargetGroupResponse {
            target_group: Some(self.describe_one(&rec)?),
        }))
    }

    async fn describe_target_groups(
        &self,
        req: Request<pb::DescribeTargetGroupsRequest>,
    ) -> Result<Response<pb::DescribeTargetGroupsResponse>, Status> {
        let req = req.into_inner();
        let view = self.view()?;
        let all = self.shared.db.target_groups().map_err(ApiError::from)?;
        let wanted: Vec<TargetGroupRecord> = if req.target_groups.is_empty() {
            all
        } else {
            req.target_groups
                .iter()
                .map(|s| self.group(s))
                .collect::<Result<_, _>>()?
        };
        let target_groups = wanted
            .iter()
            .map(|g| {
                let services = view
                    .group(&g.name)
                    .map(|v| v.services.clone())
                    .unwrap_or_default();
                group_to_proto(&self.shared, g, &services)
            })
            .collect();
        Ok(Response::new(pb::DescribeTargetGroupsResponse {
            target_groups,
        }))
    }

    #[tracing::instrument(skip_all, fields(target_group = %req.get_ref().target_group))]
    async fn modify_target_group(
        &self,
        req: Request<pb::ModifyTargetGroupRequest>,
    ) -> Result<Response<pb::ModifyTargetGroupResponse>, Status> {
        let req = req.into_inner();
        let current = self.group(&req.target_group)?;
        let hc = health_check(
            req.health_check.as_ref(),
            current.protocol,
            Some(&current.health_check),
        )?;
        let delay = req
            .deregistration_delay_seconds
            .map(|d| range("deregistrationDelaySeconds", d, 0, 3600))
            .transpose()?;
        let slow = req.slow_start_seconds.map(slow_start).transpose()?;
        let rec = self
            .shared
            .db
            .modify_target_group(&req.target_group, |g| {
                g.health_check = hc.clone();
                if let Some(d) = delay {
                    g.deregistration_delay_secs = d;
                }
                if let Some(s) = slow {
                    g.slow_start_secs = s;
                }
            })
            .await
            .map_err(ApiError::from)?;
        tracing::info!(target_group = %rec.name, "target group modified");
        Ok(Response::new(pb::ModifyTargetGroupResponse {
            target_group: Some(self.describe_one(&rec)?),
        }))
    }

    #[tracing::instrument(skip_all, fields(target_group = %req.get_ref().target_group))]
    async fn delete_target_group(
        &self,
        req: Request<pb::DeleteTargetGroupRequest>,
    ) -> Result<Response<pb::DeleteTargetGroupResponse>, Status> {
        let req = req.into_inner();
        let g = self.group(&req.target_group)?;
        self.shared
            .db
            .delete_target_group(&g.name)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(target_group = %g.name, "target group deleted");
        Ok(Response::new(pb::DeleteTargetGroupResponse {}))
    }

    async fn describe_target_health(
        &self,
        req: Request<pb::DescribeTargetHealthRequest>,
    ) -> Result<Response<pb::DescribeTargetHealthResponse>, Status> {
        let req = req.into_inner();
        let g = self.group(&req.target_group)?;
        let view = self.view()?;
        let target_health_descriptions = view
            .group(&g.name)
            .map(|v| {
                v.targets
                    .iter()
                    .map(|t| target_to_proto(&self.shared, t))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(pb::DescribeTargetHealthResponse {
            target_health_descriptions,
        }))
    }

    type WatchTargetsStream = TargetStream;

    async fn watch_targets(
        &self,
        req: Request<pb::WatchTargetsRequest>,
    ) -> Result<Response<Self::WatchTargetsStream>, Status> {
        let req = req.into_inner();
        // Named groups must exist now (a typo should not wait forever).
        let names: Vec<String> = req
            .target_groups
            .iter()
            .map(|s| self.group(s).map(|g| g.name))
            .collect::<Result<_, _>>()?;
        let shared = self.shared.clone();
        self.traffic.refresh().await.map_err(ApiError::from)?;
        let mut rx = self.traffic.subscribe();
        let shutdown = self.shutdown.clone();
        let (tx, out) = tokio::sync::mpsc::channel::<Result<pb::TargetsSnapshot, Status>>(4);
        tokio::spawn(async move {
            let mut last: Option<pb::TargetsSnapshot> = None;
            loop {
                let view = rx.borrow_and_update().clone();
                let snap = pb::TargetsSnapshot {
                    groups: view
                        .groups
                        .iter()
                        .filter(|g| names.is_empty() || names.contains(&g.group.name))
                        .map(|g| group_targets_to_proto(&shared, g))
                        .collect(),
                };
                if last.as_ref() != Some(&snap) {
                    if tx.send(Ok(snap.clone())).await.is_err() {
                        return;
                    }
                    last = Some(snap);
                }
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                    _ = shutdown.cancelled() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_follow_elb() {
        for ok in ["200", "200,202", "200-299", "200-299,404"] {
            assert!(check_matcher(ok).is_ok(), "{ok}");
        }
        for bad in ["", "abc", "100", "500", "299-200", "200-", "200,,"] {
            assert!(check_matcher(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_follow_elb() {
        for ok in ["web", "a", "web-1", &"a".repeat(32)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-web", "web-", "internal-web", "we_b", &"a".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn health_checks_take_elb_defaults_and_limits() {
        let d = health_check(None, TargetProtocol::Http, None).unwrap();
        assert_eq!(
            (
                d.interval_secs,
                d.timeout_secs,
                d.healthy_threshold,
                d.unhealthy_threshold
            ),
            (30, 5, 5, 2)
        );
        assert_eq!((d.path.as_str(), d.matcher.as_str()), ("/", "200"));
        assert_eq!(d.port, CheckPort::TrafficPort);
        let tcp = health_check(None, TargetProtocol::Tcp, None).unwrap();
        assert_eq!((tcp.timeout_secs, tcp.path.as_str()), (10, ""));
        let hc = |f: fn(&mut pb::HealthCheck)| {
            let mut h = pb::HealthCheck::default();
            f(&mut h);
            health_check(Some(&h), TargetProtocol::Http, None)
        };
        assert!(hc(|h| h.interval_seconds = 4).is_err());
        assert!(hc(|h| {
            h.interval_seconds = 5;
            h.timeout_seconds = 5
        })
        .is_err());
        assert!(hc(|h| h.path = "health".into()).is_err());
        assert!(hc(|h| h.port = "0".into()).is_err());
        assert!(hc(|h| h.healthy_threshold = 11).is_err());
        let fixed = hc(|h| h.port = "8081".into()).unwrap();
        assert_eq!(fixed.port, CheckPort::Fixed(8081));
        // A modification keeps what it does not name.
        let m = pb::HealthCheck {
            path: "/ready".into(),
            ..Default::default()
        };
        let after = health_check(Some(&m), TargetProtocol::Http, Some(&fixed)).unwrap();
        assert_eq!(
            (after.path.as_str(), after.port),
            ("/ready", CheckPort::Fixed(8081))
        );
    }
}
