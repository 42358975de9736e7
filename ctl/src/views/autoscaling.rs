//! Service auto scaling as berthctl shows it, in Application Auto
//! Scaling's JSON names (`ScalableTargets`, `ScalingPolicies`,
//! `ScheduledActions`, `ScalingActivities`).

use berth_proto::v1 as pb;
use serde::Serialize;
use serde_json::Value;

use super::{rfc3339, table_time};
use crate::output::{blocks, or_dash, Table};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetView {
    pub service_namespace: &'static str,
    pub resource_id: String,
    pub scalable_dimension: &'static str,
    pub min_capacity: i32,
    pub max_capacity: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    pub suspended_state: Value,
}

pub fn target_view(t: pb::ScalableTarget) -> TargetView {
    let s = t.suspended_state.unwrap_or_default();
    TargetView {
        service_namespace: "ecs",
        resource_id: t.resource_id,
        scalable_dimension: "ecs:service:DesiredCount",
        min_capacity: t.min_capacity,
        max_capacity: t.max_capacity,
        creation_time: rfc3339(t.creation_time.as_ref()),
        suspended_state: serde_json::json!({
            "DynamicScalingInSuspended": s.dynamic_scaling_in_suspended,
            "DynamicScalingOutSuspended": s.dynamic_scaling_out_suspended,
            "ScheduledScalingSuspended": s.scheduled_scaling_suspended,
        }),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyView {
    pub policy_name: String,
    pub resource_id: String,
    pub policy_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_tracking_scaling_policy_configuration: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_scaling_policy_configuration: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm: Option<Value>,
    pub alarms: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(skip)]
    pub summary: String,
}

pub fn policy_view(p: pb::ScalingPolicy) -> PolicyView {
    let config: Value = serde_json::from_str(&p.configuration_json).unwrap_or(Value::Null);
    let tt = p.policy_type == "TargetTrackingScaling";
    let summary = if tt {
        format!(
            "{} {}",
            config["PredefinedMetricSpecification"]["PredefinedMetricType"]
                .as_str()
                .unwrap_or("?"),
            config["TargetValue"]
        )
    } else {
        p.alarm
            .as_ref()
            .map(|a| {
                format!(
                    "{} {} {}",
                    a.metric_name, a.comparison_operator, a.threshold
                )
            })
            .unwrap_or_default()
    };
    PolicyView {
        alarm: p.alarm.as_ref().map(|a| {
            serde_json::json!({
                "MetricName": a.metric_name,
                "ComparisonOperator": a.comparison_operator,
                "Threshold": a.threshold,
                "EvaluationPeriods": a.evaluation_periods,
            })
        }),
        target_tracking_scaling_policy_configuration: tt.then(|| config.clone()),
        step_scaling_policy_configuration: (!tt).then_some(config),
        alarms: p
            .alarm_names
            .iter()
            .map(|n| serde_json::json!({ "AlarmName": n }))
            .collect(),
        creation_time: rfc3339(p.creation_time.as_ref()),
        policy_name: p.policy_name,
        resource_id: p.resource_id,
        policy_type: p.policy_type,
        summary,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ActionView {
    pub scheduled_action_name: String,
    pub resource_id: String,
    pub schedule: String,
    pub timezone: String,
    pub scalable_target_action: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_fire_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_fire_time: Option<String>,
    #[serde(skip)]
    pub next_table: String,
}

pub fn action_view(a: pb::ScheduledAction) -> ActionView {
    let mut action = serde_json::Map::new();
    if let Some(m) = a.min_capacity {
        action.insert("MinCapacity".into(), m.into());
    }
    if let Some(m) = a.max_capacity {
        action.insert("MaxCapacity".into(), m.into());
    }
    ActionView {
        start_time: rfc3339(a.start_time.as_ref()),
        end_time: rfc3339(a.end_time.as_ref()),
        creation_time: rfc3339(a.creation_time.as_ref()),
        last_fire_time: rfc3339(a.last_fire_time.as_ref()),
        next_fire_time: rfc3339(a.next_fire_time.as_ref()),
        next_table: table_time(a.next_fire_time.as_ref()),
        scheduled_action_name: a.scheduled_action_name,
        resource_id: a.resource_id,
        schedule: a.schedule,
        timezone: a.timezone,
        scalable_target_action: Value::Object(action),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ActivityView {
    pub activity_id: String,
    pub service_namespace: &'static str,
    pub resource_id: String,
    pub scalable_dimension: &'static str,
    pub description: String,
    pub cause: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    pub status_code: String,
    pub status_message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_scaled_reasons: Vec<Value>,
    #[serde(skip)]
    pub start_table: String,
}

/// `{"ScalingActivities": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ActivitiesView {
    pub scaling_activities: Vec<ActivityView>,
}

impl From<pb::DescribeScalingActivitiesResponse> for ActivitiesView {
    fn from(r: pb::DescribeScalingActivitiesResponse) -> Self {
        Self {
            scaling_activities: r
                .scaling_activities
                .into_iter()
                .map(|a| ActivityView {
                    start_time: rfc3339(a.start_time.as_ref()),
                    end_time: rfc3339(a.end_time.as_ref()),
                    start_table: table_time(a.start_time.as_ref()),
                    not_scaled_reasons: a
                        .not_scaled_reasons
                        .iter()
                        .map(|c| serde_json::json!({ "Code": c }))
                        .collect(),
                    activity_id: a.activity_id,
                    service_namespace: "ecs",
                    resource_id: a.resource_id,
                    scalable_dimension: "ecs:service:DesiredCount",
                    description: a.description,
                    cause: a.cause,
                    status_code: a.status_code,
                    status_message: a.status_message,
                })
                .collect(),
        }
    }
}

/// `service autoscaling describe`: everything about one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeView {
    pub scalable_targets: Vec<TargetView>,
    pub scaling_policies: Vec<PolicyView>,
    pub scheduled_actions: Vec<ActionView>,
    pub scaling_activities: Vec<ActivityView>,
}

impl DescribeView {
    pub fn new(
        t: pb::ScalableTarget,
        p: pb::DescribeScalingPoliciesResponse,
        a: pb::DescribeScheduledActionsResponse,
        acts: pb::DescribeScalingActivitiesResponse,
    ) -> Self {
        Self {
            scalable_targets: vec![target_view(t)],
            scaling_policies: p.scaling_policies.into_iter().map(policy_view).collect(),
            scheduled_actions: a.scheduled_actions.into_iter().map(action_view).collect(),
            scaling_activities: ActivitiesView::from(acts).scaling_activities,
        }
    }
}

pub fn target_sentence(t: &TargetView) -> String {
    format!(
        "{} registered: min {}, max {}\n",
        t.resource_id, t.min_capacity, t.max_capacity
    )
}

pub fn deregistered_sentence(t: &TargetView) -> String {
    format!("{} deregistered\n", t.resource_id)
}

pub fn policy_sentence(p: &PolicyView) -> String {
    format!(
        "scaling policy {} ({}) put on {}\n",
        p.policy_name, p.policy_type, p.resource_id
    )
}

pub fn action_sentence(a: &ActionView) -> String {
    format!(
        "scheduled action {} ({}) put on {}, next fire {}\n",
        a.scheduled_action_name, a.schedule, a.resource_id, a.next_table
    )
}

pub fn activities_table(v: &ActivitiesView) -> String {
    let mut t = Table::new(&["START", "STATUS", "DESCRIPTION", "CAUSE"]);
    for a in &v.scaling_activities {
        t.row([
            a.start_table.clone(),
            a.status_code.clone(),
            a.description.clone(),
            a.cause.clone(),
        ]);
    }
    t.render()
}

pub fn describe(v: &DescribeView) -> String {
    let mut head = Table::plain();
    for t in &v.scalable_targets {
        head.row(["Resource:".to_owned(), t.resource_id.clone()]);
        head.row(["Min capacity:".to_owned(), t.min_capacity.to_string()]);
        head.row(["Max capacity:".to_owned(), t.max_capacity.to_string()]);
    }
    let mut policies = Table::new(&["POLICY", "TYPE", "METRIC"]);
    for p in &v.scaling_policies {
        policies.row([
            p.policy_name.clone(),
            p.policy_type.clone(),
            p.summary.clone(),
        ]);
    }
    let mut actions = Table::new(&["SCHEDULED ACTION", "SCHEDULE", "TIMEZONE", "SET", "NEXT"]);
    for a in &v.scheduled_actions {
        actions.row([
            a.scheduled_action_name.clone(),
            a.schedule.clone(),
            a.timezone.clone(),
            or_dash(
                &a.scalable_target_action
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default(),
            ),
            a.next_table.clone(),
        ]);
    }
    let acts = activities_table(&ActivitiesView {
        scaling_activities: v.scaling_activities.iter().take(10).cloned().collect(),
    });
    blocks([head.render(), policies.render(), actions.render(), acts])
}
