//! `berthctl service autoscaling …`: Application Auto Scaling for a
//! service (`docs/autoscaling.md`): the scalable target (min/max),
//! target-tracking and step-scaling policies in AAS's JSON, scheduled
//! actions, and the scaling activities.

use berth_proto::v1 as pb;
use berth_proto::v1::auto_scaling_service_client::AutoScalingServiceClient;
use clap::Subcommand;
use prost_types::Timestamp;

use super::{ClusterArg, Ctx};
use crate::error::CtlError;
use crate::views::autoscaling::{self as view, ActivitiesView, DescribeView};

#[derive(Debug, Subcommand)]
pub enum AutoscalingCommand {
    /// Register the service as a scalable target, or change its min/max
    Register {
        service: String,
        /// Lowest desired count
        #[arg(long, value_name = "N")]
        min: Option<i32>,
        /// Highest desired count
        #[arg(long, value_name = "N")]
        max: Option<i32>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// The target, its policies, scheduled actions and last activities
    Describe {
        service: String,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Remove the target with its policies and scheduled actions (the desired count stays)
    Deregister {
        service: String,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Create or replace a scaling policy (AAS's JSON, inline or file://PATH)
    PutPolicy {
        service: String,
        policy: String,
        /// TargetTrackingScalingPolicyConfiguration, e.g. {"TargetValue":60,
        /// "PredefinedMetricSpecification":{"PredefinedMetricType":"ECSServiceAverageCPUUtilization"}}
        #[arg(
            long = "target-tracking",
            value_name = "JSON",
            conflicts_with = "step_scaling"
        )]
        target_tracking: Option<String>,
        /// StepScalingPolicyConfiguration; needs --alarm-metric, --comparison, --threshold
        #[arg(long = "step-scaling", value_name = "JSON", requires_all = ["alarm_metric", "comparison", "threshold"])]
        step_scaling: Option<String>,
        /// CPUUtilization or MemoryUtilization (step scaling's alarm)
        #[arg(long = "alarm-metric", value_name = "METRIC")]
        alarm_metric: Option<String>,
        /// GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold or
        /// LessThanOrEqualToThreshold
        #[arg(long, value_name = "OPERATOR")]
        comparison: Option<String>,
        #[arg(long, value_name = "PERCENT")]
        threshold: Option<f64>,
        /// Consecutive one-minute datapoints that must breach
        #[arg(long = "evaluation-periods", value_name = "N", default_value_t = 1)]
        evaluation_periods: i32,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Delete a scaling policy
    RmPolicy {
        service: String,
        policy: String,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Create or replace a scheduled action that sets min and/or max
    PutScheduledAction {
        service: String,
        name: String,
        /// at(…), rate(…) or cron(…), as `schedule create --expression`
        #[arg(long, value_name = "EXPRESSION")]
        schedule: String,
        /// IANA time zone [default: UTC]
        #[arg(long, value_name = "ZONE")]
        timezone: Option<String>,
        #[arg(long, value_name = "N")]
        min: Option<i32>,
        #[arg(long, value_name = "N")]
        max: Option<i32>,
        /// No fire before this time (RFC 3339)
        #[arg(long = "start-time", value_name = "TIME", value_parser = parse_time)]
        start_time: Option<Timestamp>,
        /// No fire after this time (RFC 3339)
        #[arg(long = "end-time", value_name = "TIME", value_parser = parse_time)]
        end_time: Option<Timestamp>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Delete a scheduled action
    RmScheduledAction {
        service: String,
        name: String,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// The scaling activities, newest first
    Activities {
        service: String,
        /// Also the evaluations that did not scale, with their reasons
        #[arg(long = "include-not-scaled")]
        include_not_scaled: bool,
        #[command(flatten)]
        cluster: ClusterArg,
    },
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))?;
    Ok(Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    })
}

/// JSON given inline, or `file://PATH` as the aws CLI takes it.
fn json_arg(s: &str) -> Result<String, CtlError> {
    match s.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path).map_err(|source| CtlError::ReadFile {
            path: path.to_owned(),
            source,
        }),
        None => Ok(s.to_owned()),
    }
}

fn target(ctx: &Ctx<'_>, service: String, cluster: &ClusterArg) -> pb::ScalableTargetRef {
    pb::ScalableTargetRef {
        cluster: ctx.cluster(cluster),
        service,
    }
}

pub async fn run(cmd: AutoscalingCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let mut client = AutoScalingServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    match cmd {
        AutoscalingCommand::Register {
            service,
            min,
            max,
            cluster,
        } => {
            let r = client
                .register_scalable_target(pb::RegisterScalableTargetRequest {
                    target: Some(target(ctx, service, &cluster)),
                    min_capacity: min,
                    max_capacity: max,
                    suspended_state: None,
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = view::target_view(r.scalable_target.unwrap_or_default());
            ctx.emit(&v, view::target_sentence)
        }
        AutoscalingCommand::Describe { service, cluster } => {
            let t = target(ctx, service, &cluster);
            let targets = client
                .describe_scalable_targets(pb::DescribeScalableTargetsRequest {
                    cluster: t.cluster.clone(),
                    services: vec![t.service.clone()],
                })
                .await
                .map_err(&rpc)?
                .into_inner();
            let Some(st) = targets.scalable_targets.into_iter().next() else {
                return Err(CtlError::InvalidInput {
                    message: format!(
                        "service {} of cluster {} is not a scalable target; register it first \
                         (berthctl service autoscaling register {} --min N --max N)",
                        t.service, t.cluster, t.service
                    ),
                });
            };
            let policies = client
                .describe_scaling_policies(t.clone())
                .await
                .map_err(&rpc)?
                .into_inner();
            let actions = client
                .describe_scheduled_actions(t.clone())
                .await
                .map_err(&rpc)?
                .into_inner();
            let acts = client
                .describe_scaling_activities(pb::DescribeScalingActivitiesRequest {
                    target: Some(t),
                    include_not_scaled_activities: false,
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = DescribeView::new(st, policies, actions, acts);
            ctx.emit(&v, view::describe)
        }
        AutoscalingCommand::Deregister { service, cluster } => {
            let r = client
                .deregister_scalable_target(target(ctx, service, &cluster))
                .await
                .map_err(rpc)?
                .into_inner();
            let v = view::target_view(r.scalable_target.unwrap_or_default());
            ctx.emit(&v, view::deregistered_sentence)
        }
        AutoscalingCommand::PutPolicy {
            service,
            policy,
            target_tracking,
            step_scaling,
            alarm_metric,
            comparison,
            threshold,
            evaluation_periods,
            cluster,
        } => {
            let (policy_type, json, alarm) = match (target_tracking, step_scaling) {
                (Some(j), None) => ("TargetTrackingScaling", json_arg(&j)?, None),
                (None, Some(j)) => (
                    "StepScaling",
                    json_arg(&j)?,
                    Some(pb::StepAlarm {
                        metric_name: alarm_metric.unwrap_or_default(),
                        comparison_operator: comparison.unwrap_or_default(),
                        threshold: threshold.unwrap_or_default(),
                        evaluation_periods,
                    }),
                ),
                _ => {
                    return Err(CtlError::InvalidInput {
                        message: "give --target-tracking JSON or --step-scaling JSON".into(),
                    })
                }
            };
            let r = client
                .put_scaling_policy(pb::PutScalingPolicyRequest {
                    target: Some(target(ctx, service, &cluster)),
                    policy_name: policy,
                    policy_type: policy_type.into(),
                    configuration_json: json,
                    alarm,
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = view::policy_view(r.policy.unwrap_or_default());
            ctx.emit(&v, view::policy_sentence)
        }
        AutoscalingCommand::RmPolicy {
            service,
            policy,
            cluster,
        } => {
            let r = client
                .delete_scaling_policy(pb::DeleteScalingPolicyRequest {
                    target: Some(target(ctx, service, &cluster)),
                    policy_name: policy,
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = view::policy_view(r.policy.unwrap_or_default());
            ctx.emit(&v, |p| {
                format!("scaling policy {} deleted\n", p.policy_name)
            })
        }
        AutoscalingCommand::PutScheduledAction {
            service,
            name,
            schedule,
            timezone,
            min,
            max,
            start_time,
            end_time,
            cluster,
        } => {
            let r = client
                .put_scheduled_action(pb::PutScheduledActionRequest {
                    target: Some(target(ctx, service, &cluster)),
                    scheduled_action_name: name,
                    schedule,
                    timezone: timezone.unwrap_or_default(),
                    start_time,
                    end_time,
                    min_capacity: min,
                    max_capacity: max,
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = view::action_view(r.scheduled_action.unwrap_or_default());
            ctx.emit(&v, view::action_sentence)
        }
        AutoscalingCommand::RmScheduledAction {
            service,
            name,
            cluster,
        } => {
            let r = client
                .delete_scheduled_action(pb::DeleteScheduledActionRequest {
                    target: Some(target(ctx, service, &cluster)),
                    scheduled_action_name: name,
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = view::action_view(r.scheduled_action.unwrap_or_default());
            ctx.emit(&v, |a| {
                format!("scheduled action {} deleted\n", a.scheduled_action_name)
            })
        }
        AutoscalingCommand::Activities {
            service,
            include_not_scaled,
            cluster,
        } => {
            let r = client
                .describe_scaling_activities(pb::DescribeScalingActivitiesRequest {
                    target: Some(target(ctx, service, &cluster)),
                    include_not_scaled_activities: include_not_scaled,
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = ActivitiesView::from(r);
            ctx.emit(&v, view::activities_table)
        }
    }
}
