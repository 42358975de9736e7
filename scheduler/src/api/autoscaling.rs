//! `AutoScalingService`: Application Auto Scaling's operations for ECS
//! services (RegisterScalableTarget, DeregisterScalableTarget,
//! DescribeScalableTargets, PutScalingPolicy, DeleteScalingPolicy,
//! DescribeScalingPolicies, PutScheduledAction, DeleteScheduledAction,
//! DescribeScheduledActions, DescribeScalingActivities). Policies arrive as
//! AAS's JSON and are checked with the JSON path named.

use berth_proto::v1::{
    auto_scaling_service_server::AutoScalingService, DeleteScalingPolicyRequest,
    DeleteScheduledActionRequest, DescribeScalableTargetsRequest, DescribeScalableTargetsResponse,
    DescribeScalingActivitiesRequest, DescribeScalingActivitiesResponse,
    DescribeScalingPoliciesResponse, DescribeScheduledActionsResponse, PutScalingPolicyRequest,
    PutScheduledActionRequest, RegisterScalableTargetRequest, ScalableTarget, ScalableTargetRef,
    ScalableTargetResponse, ScalingActivity, ScalingPolicy, ScalingPolicyResponse, ScheduledAction,
    ScheduledActionResponse, StepAlarm as PbAlarm, SuspendedState,
};
use tonic::{Request, Response, Status};

use super::{cluster_arg, millis, timestamp, ApiError, Shared};
use crate::autoscaling::decide::{self, Comparison, Metric, PolicyConfig, StepAlarm, Suspended};
use crate::autoscaling::next_action_fire;
use crate::db::autoscaling::{PolicyRecord, ScalableTargetRecord, ScheduledActionRecord};
use crate::db::DbError;
use crate::records::now_millis;
use crate::schedules::expr;

#[derive(Debug)]
pub struct AutoScalingApi {
    pub shared: Shared,
}

/// Most capacity a target may allow (ECS's desired count is an int).
const MAX_CAPACITY: i32 = 100_000;

fn target_ref(r: Option<&ScalableTargetRef>) -> Result<(String, String), ApiError> {
    let r = r.ok_or_else(|| ApiError::invalid("target", "required"))?;
    if r.service.is_empty() {
        return Err(ApiError::invalid("target.service", "required"));
    }
    let service = berth_proto::arn::resource_part(&r.service).to_owned();
    Ok((cluster_arg(&r.cluster), service))
}

fn capacity(field: &str, v: Option<i32>) -> Result<Option<u32>, ApiError> {
    match v {
        None => Ok(None),
        Some(n) if (0..=MAX_CAPACITY).contains(&n) => Ok(Some(n as u32)),
        Some(n) => Err(ApiError::invalid(
            field,
            format!("{n} is not within 0–{MAX_CAPACITY}"),
        )),
    }
}

fn name_rule(field: &str, s: &str) -> Result<(), ApiError> {
    if s.is_empty() || s.len() > 256 {
        return Err(ApiError::invalid(field, "must be 1–256 characters"));
    }
    if let Some(c) = s.chars().find(|c| c.is_control() || *c == ':' || *c == '/') {
        return Err(ApiError::invalid(field, format!("contains {c:?}")));
    }
    Ok(())
}

fn suspended_to_proto(s: Suspended) -> SuspendedState {
    SuspendedState {
        dynamic_scaling_in_suspended: s.dynamic_in,
        dynamic_scaling_out_suspended: s.dynamic_out,
        scheduled_scaling_suspended: s.scheduled,
    }
}

fn target_to_proto(t: &ScalableTargetRecord) -> ScalableTarget {
    ScalableTarget {
        target: Some(ScalableTargetRef {
            cluster: t.cluster.clone(),
            service: t.service.clone(),
        }),
        resource_id: t.resource_id(),
        min_capacity: t.min as i32,
        max_capacity: t.max as i32,
        suspended_state: Some(suspended_to_proto(t.suspended)),
        creation_time: Some(timestamp(t.created_at)),
    }
}

fn comparison_name(c: Comparison) -> &'static str {
    match c {
        Comparison::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
        Comparison::GreaterThanThreshold => "GreaterThanThreshold",
        Comparison::LessThanThreshold => "LessThanThreshold",
        Comparison::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
    }
}

fn policy_to_proto(t: &ScalableTargetRecord, p: &PolicyRecord) -> ScalingPolicy {
    let (kind, json, alarm, alarms) = match &p.config {
        PolicyConfig::TargetTracking(tt) => (
            "TargetTrackingScaling",
            serde_json::to_string(tt).unwrap_or_default(),
            None,
            decide::target_tracking_alarms(&t.resource_id(), &p.name).to_vec(),
        ),
        PolicyConfig::Step(s, a) => (
            "StepScaling",
            serde_json::to_string(s).unwrap_or_default(),
            Some(PbAlarm {
                metric_name: a.metric.name().to_owned(),
                comparison_operator: comparison_name(a.comparison).to_owned(),
                threshold: a.threshold,
                evaluation_periods: a.evaluation_periods as i32,
            }),
            vec![format!("StepScaling-{}-{}", t.resource_id(), p.name)],
        ),
    };
    ScalingPolicy {
        target: Some(ScalableTargetRef {
            cluster: t.cluster.clone(),
            service: t.service.clone(),
        }),
        resource_id: t.resource_id(),
        policy_name: p.name.clone(),
        policy_type: kind.to_owned(),
        configuration_json: json,
        alarm,
        alarm_names: alarms,
        creation_time: Some(timestamp(p.created_at)),
    }
}

fn action_to_proto(t: &ScalableTargetRecord, a: &ScheduledActionRecord) -> ScheduledAction {
    ScheduledAction {
        target: Some(ScalableTargetRef {
            cluster: t.cluster.clone(),
            service: t.service.clone(),
        }),
        resource_id: t.resource_id(),
        scheduled_action_name: a.name.clone(),
        schedule: a.schedule.clone(),
        timezone: a.timezone.clone(),
        start_time: a.start.map(timestamp),
        end_time: a.end.map(timestamp),
        min_capacity: a.min.map(|v| v as i32),
        max_capacity: a.max.map(|v| v as i32),
        creation_time: Some(timestamp(a.created_at)),
        last_fire_time: a.last_fire.map(timestamp),
        next_fire_time: next_action_fire(a).map(timestamp),
    }
}

/// The policy configuration of a PutScalingPolicy, from AAS's JSON.
fn parse_policy(req: &PutScalingPolicyRequest) -> Result<PolicyConfig, ApiError> {
    let json_err = |e: serde_json::Error| {
        ApiError::invalid(
            "configurationJson",
            format!("not valid JSON for the policy: {e}"),
        )
    };
    let cfg_err = |prefix: &str, e: decide::ConfigError| {
        ApiError::invalid(&format!("{prefix}.{}", e.path), e.message)
    };
    match req.policy_type.as_str() {
        "TargetTrackingScaling" => {
            if req.alarm.is_some() {
                return Err(ApiError::invalid(
                    "alarm",
                    "target tracking makes its own alarms; give no alarm",
                ));
            }
            let tt: decide::TargetTracking =
                serde_json::from_str(&req.configuration_json).map_err(json_err)?;
            decide::validate_target_tracking(&tt)
                .map_err(|e| cfg_err("TargetTrackingScalingPolicyConfiguration", e))?;
            Ok(PolicyConfig::TargetTracking(tt))
        }
        "StepScaling" => {
            let s: decide::StepScaling =
                serde_json::from_str(&req.configuration_json).map_err(json_err)?;
            let a = req.alarm.as_ref().ok_or_else(|| {
                ApiError::invalid(
                    "alarm",
                    "a step scaling policy needs its alarm (metric, comparison, threshold)",
                )
            })?;
            let metric = match a.metric_name.as_str() {
                "CPUUtilization" => Metric::Cpu,
                "MemoryUtilization" => Metric::Memory,
                other => {
                    return Err(ApiError::invalid(
                        "alarm.metricName",
                        format!("{other:?} is not CPUUtilization or MemoryUtilization"),
                    ))
                }
            };
            let comparison = match a.comparison_operator.as_str() {
                "GreaterThanOrEqualToThreshold" => Comparison::GreaterThanOrEqualToThreshold,
                "GreaterThanThreshold" => Comparison::GreaterThanThreshold,
                "LessThanThreshold" => Comparison::LessThanThreshold,
                "LessThanOrEqualToThreshold" => Comparison::LessThanOrEqualToThreshold,
                other => {
                    return Err(ApiError::invalid(
                        "alarm.comparisonOperator",
                        format!("{other:?} is not one of GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold, LessThanOrEqualToThreshold"),
                    ))
                }
            };
            let alarm = StepAlarm {
                metric,
                comparison,
                threshold: a.threshold,
                evaluation_periods: if a.evaluation_periods == 0 {
                    1
                } else {
                    a.evaluation_periods.max(0) as u32
                },
            };
            decide::validate_step(&s, &alarm).map_err(|e| {
                if e.path.starts_with("alarm.") {
                    ApiError::invalid(&e.path, e.message)
                } else {
                    cfg_err("StepScalingPolicyConfiguration", e)
                }
            })?;
            Ok(PolicyConfig::Step(s, alarm))
        }
        other => Err(ApiError::invalid(
            "policyType",
            format!("{other:?} is not TargetTrackingScaling or StepScaling"),
        )),
    }
}

#[tonic::async_trait]
impl AutoScalingService for AutoScalingApi {
    async fn register_scalable_target(
        &self,
        req: Request<RegisterScalableTargetRequest>,
    ) -> Result<Response<ScalableTargetResponse>, Status> {
        let req = req.into_inner();
        let (cluster, service) = target_ref(req.target.as_ref())?;
        let min = capacity("minCapacity", req.min_capacity)?;
        let max = capacity("maxCapacity", req.max_capacity)?;
        let suspended = req.suspended_state.map(|s| Suspended {
            dynamic_in: s.dynamic_scaling_in_suspended,
            dynamic_out: s.dynamic_scaling_out_suspended,
            scheduled: s.scheduled_scaling_suspended,
        });
        let now = now_millis();
        let rec = self
            .shared
            .db
            .register_scalable_target(&cluster, &service, |old| {
                let mut rec = match old {
                    Some(r) => r,
                    None => {
                        let (Some(min), Some(max)) = (min, max) else {
                            return Err(DbError::InvalidArgument {
                                field: "minCapacity",
                                message: "minCapacity and maxCapacity are required to register \
                                          a new scalable target"
                                    .into(),
                            });
                        };
                        ScalableTargetRecord {
                            cluster: cluster.clone(),
                            service: service.clone(),
                            min,
                            max,
                            suspended: Suspended::default(),
                            created_at: now,
                            policies: Vec::new(),
                            scheduled_actions: Vec::new(),
                            activities: Vec::new(),
                        }
                    }
                };
                if let Some(m) = min {
                    rec.min = m;
                }
                if let Some(m) = max {
                    rec.max = m;
                }
                if let Some(s) = suspended {
                    rec.suspended = s;
                }
                if rec.min > rec.max {
                    return Err(DbError::InvalidArgument {
                        field: "maxCapacity",
                        message: format!("{} is below minCapacity {}", rec.max, rec.min),
                    });
                }
                Ok(rec)
            })
            .await
            .map_err(ApiError::from)?;
        tracing::info!(cluster = %cluster, service = %service, min = rec.min, max = rec.max, "scalable target registered");
        Ok(Response::new(ScalableTargetResponse {
            scalable_target: Some(target_to_proto(&rec)),
        }))
    }

    async fn deregister_scalable_target(
        &self,
        req: Request<ScalableTargetRef>,
    ) -> Result<Response<ScalableTargetResponse>, Status> {
        let (cluster, service) = target_ref(Some(req.get_ref()))?;
        let rec = self
            .shared
            .db
            .deregister_scalable_target(&cluster, &service)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ScalableTargetResponse {
            scalable_target: Some(target_to_proto(&rec)),
        }))
    }

    async fn describe_scalable_targets(
        &self,
        req: Request<DescribeScalableTargetsRequest>,
    ) -> Result<Response<DescribeScalableTargetsResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let all = self
            .shared
            .db
            .scalable_targets(Some(&cluster))
            .map_err(ApiError::from)?;
        let wanted: Vec<&str> = req
            .services
            .iter()
            .map(|s| berth_proto::arn::resource_part(s))
            .collect();
        Ok(Response::new(DescribeScalableTargetsResponse {
            scalable_targets: all
                .iter()
                .filter(|t| wanted.is_empty() || wanted.contains(&t.service.as_str()))
                .map(target_to_proto)
                .collect(),
        }))
    }

    async fn put_scaling_policy(
        &self,
        req: Request<PutScalingPolicyRequest>,
    ) -> Result<Response<ScalingPolicyResponse>, Status> {
        let req = req.into_inner();
        let (cluster, service) = target_ref(req.target.as_ref())?;
        name_rule("policyName", &req.policy_name)?;
        let config = parse_policy(&req)?;
        let now = now_millis();
        let name = req.policy_name.clone();
        let (rec, ()) = self
            .shared
            .db
            .update_scalable_target(&cluster, &service, |t| {
                match t.policies.iter_mut().find(|p| p.name == name) {
                    // PutScalingPolicy replaces a policy of the same name.
                    Some(p) => {
                        p.config = config.clone();
                    }
                    None => t.policies.push(PolicyRecord {
                        name: name.clone(),
                        config: config.clone(),
                        cooldowns: Default::default(),
                        created_at: now,
                    }),
                }
                Ok(())
            })
            .await
            .map_err(ApiError::from)?;
        let p = rec
            .policies
            .iter()
            .find(|p| p.name == name)
            .map(|p| policy_to_proto(&rec, p));
        tracing::info!(cluster = %cluster, service = %service, policy = %name, kind = %req.policy_type, "scaling policy put");
        Ok(Response::new(ScalingPolicyResponse { policy: p }))
    }

    async fn delete_scaling_policy(
        &self,
        req: Request<DeleteScalingPolicyRequest>,
    ) -> Result<Response<ScalingPolicyResponse>, Status> {
        let req = req.into_inner();
        let (cluster, service) = target_ref(req.target.as_ref())?;
        let name = req.policy_name;
        let (rec, removed) = self
            .shared
            .db
            .update_scalable_target(&cluster, &service, |t| {
                let i = t
                    .policies
                    .iter()
                    .position(|p| p.name == name)
                    .ok_or_else(|| DbError::NotFound {
                        kind: "scaling policy",
                        name: name.clone(),
                    })?;
                Ok(t.policies.remove(i))
            })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ScalingPolicyResponse {
            policy: Some(policy_to_proto(&rec, &removed)),
        }))
    }

    async fn describe_scaling_policies(
        &self,
        req: Request<ScalableTargetRef>,
    ) -> Result<Response<DescribeScalingPoliciesResponse>, Status> {
        let (cluster, service) = target_ref(Some(req.get_ref()))?;
        let rec = self.target(&cluster, &service)?;
        Ok(Response::new(DescribeScalingPoliciesResponse {
            scaling_policies: rec
                .policies
                .iter()
                .map(|p| policy_to_proto(&rec, p))
                .collect(),
        }))
    }

    async fn put_scheduled_action(
        &self,
        req: Request<PutScheduledActionRequest>,
    ) -> Result<Response<ScheduledActionResponse>, Status> {
        let req = req.into_inner();
        let (cluster, service) = target_ref(req.target.as_ref())?;
        name_rule("scheduledActionName", &req.scheduled_action_name)?;
        let schedule = req.schedule.trim().to_owned();
        expr::Expression::parse(&schedule)
            .map_err(|e| ApiError::invalid(&format!("schedule.{}", e.field), e.message))?;
        let timezone = if req.timezone.is_empty() {
            "UTC".to_owned()
        } else {
            req.timezone.clone()
        };
        expr::zone(&timezone).map_err(|e| ApiError::invalid("timezone", e.message))?;
        let min = capacity("minCapacity", req.min_capacity)?;
        let max = capacity("maxCapacity", req.max_capacity)?;
        if min.is_none() && max.is_none() {
            return Err(ApiError::invalid(
                "scalableTargetAction",
                "set minCapacity, maxCapacity or both",
            )
            .into());
        }
        if let (Some(a), Some(b)) = (min, max) {
            if a > b {
                return Err(ApiError::invalid("maxCapacity", "is below minCapacity").into());
            }
        }
        let start = req.start_time.as_ref().map(millis);
        let end = req.end_time.as_ref().map(millis);
        let now = now_millis();
        let name = req.scheduled_action_name.clone();
        let (rec, ()) = self
            .shared
            .db
            .update_scalable_target(&cluster, &service, |t| {
                let new = ScheduledActionRecord {
                    name: name.clone(),
                    schedule: schedule.clone(),
                    timezone: timezone.clone(),
                    start,
                    end,
                    min,
                    max,
                    created_at: now,
                    last_fire: None,
                };
                match t.scheduled_actions.iter_mut().find(|a| a.name == name) {
                    Some(a) => *a = new,
                    None => t.scheduled_actions.push(new),
                }
                Ok(())
            })
            .await
            .map_err(ApiError::from)?;
        let a = rec
            .scheduled_actions
            .iter()
            .find(|a| a.name == name)
            .map(|a| action_to_proto(&rec, a));
        Ok(Response::new(ScheduledActionResponse {
            scheduled_action: a,
        }))
    }

    async fn delete_scheduled_action(
        &self,
        req: Request<DeleteScheduledActionRequest>,
    ) -> Result<Response<ScheduledActionResponse>, Status> {
        let req = req.into_inner();
        let (cluster, service) = target_ref(req.target.as_ref())?;
        let name = req.scheduled_action_name;
        let (rec, removed) = self
            .shared
            .db
            .update_scalable_target(&cluster, &service, |t| {
                let i = t
                    .scheduled_actions
                    .iter()
                    .position(|a| a.name == name)
                    .ok_or_else(|| DbError::NotFound {
                        kind: "scheduled action",
                        name: name.clone(),
                    })?;
                Ok(t.scheduled_actions.remove(i))
            })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ScheduledActionResponse {
            scheduled_action: Some(action_to_proto(&rec, &removed)),
        }))
    }

    async fn describe_scheduled_actions(
        &self,
        req: Request<ScalableTargetRef>,
    ) -> Result<Response<DescribeScheduledActionsResponse>, Status> {
        let (cluster, service) = target_ref(Some(req.get_ref()))?;
        let rec = self.target(&cluster, &service)?;
        Ok(Response::new(DescribeScheduledActionsResponse {
            scheduled_actions: rec
                .scheduled_actions
                .iter()
                .map(|a| action_to_proto(&rec, a))
                .collect(),
        }))
    }

    async fn describe_scaling_activities(
        &self,
        req: Request<DescribeScalingActivitiesRequest>,
    ) -> Result<Response<DescribeScalingActivitiesResponse>, Status> {
        let req = req.into_inner();
        let (cluster, service) = target_ref(req.target.as_ref())?;
        let rec = self.target(&cluster, &service)?;
        let resource = rec.resource_id();
        Ok(Response::new(DescribeScalingActivitiesResponse {
            scaling_activities: rec
                .activities
                .iter()
                .filter(|a| req.include_not_scaled_activities || a.not_scaled_reasons.is_empty())
                .map(|a| ScalingActivity {
                    activity_id: a.id.clone(),
                    resource_id: resource.clone(),
                    description: a.description.clone(),
                    cause: a.cause.clone(),
                    start_time: Some(timestamp(a.start)),
                    end_time: a.end.map(timestamp),
                    status_code: a.status_code.clone(),
                    status_message: a.status_message.clone(),
                    not_scaled_reasons: a.not_scaled_reasons.clone(),
                })
                .collect(),
        }))
    }
}

impl AutoScalingApi {
    fn target(&self, cluster: &str, service: &str) -> Result<ScalableTargetRecord, ApiError> {
        self.shared
            .db
            .scalable_target(cluster, service)?
            .ok_or_else(|| {
                ApiError::Db(DbError::NotFound {
                    kind: "scalable target",
                    name: format!("service/{cluster}/{service}"),
                })
            })
    }
}
