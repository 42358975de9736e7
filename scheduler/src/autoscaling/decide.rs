//! Application Auto Scaling's decisions for one ECS service, pure: given
//! the scalable target's bounds, the desired count, each policy's
//! datapoints (one per period, oldest first, `None` where missing) and its
//! cooldown marks, what to do ([`decide`]). Every rule cites
//! `../shared/research/autoscaling.md` (§ numbers) and the AWS page it
//! summarises.
//!
//! - Target tracking (§3): AlarmHigh = the last 3 datapoints all above
//!   the target → scale out to `ceil(desired × metric / target)`;
//!   AlarmLow = the last 15 all below `0.9 × target` → scale in by
//!   `max(1, floor(desired − desired × metric / target))`. A missing
//!   datapoint breaches nothing (INSUFFICIENT_DATA), so missing data never
//!   scales in. `DisableScaleIn` drops the scale-in.
//! - Step scaling (§4): the policy's alarm breaches when its last
//!   `evaluation_periods` datapoints all compare true against the
//!   threshold; the aggregate (Average, Minimum, Maximum) minus the
//!   threshold picks the step (above: lower bound inclusive, upper
//!   exclusive; below: lower exclusive, upper inclusive), whose
//!   adjustment is `ChangeInCapacity`, `ExactCapacity` or
//!   `PercentChangeInCapacity` (rounded toward zero past ±1, to ±1 inside
//!   it, then raised to `MinAdjustmentMagnitude`).
//! - Cooldowns (§3, default 300 s): during a policy's scale-out cooldown
//!   its next scale-out counts from the capacity before the one that
//!   started the cooldown and happens only if larger than the desired
//!   count now; scale-in waits for the scale-in cooldown; a scale-out
//!   ends the policy's scale-in cooldown.
//! - Several policies (§3): the largest capacity wins; scale-out if any
//!   policy wants it; scale-in only if no policy wants out and every
//!   target-tracking policy with scale-in enabled wants in.
//! - ECS (§1): no scale-in while a deployment is in progress; the
//!   suspended flags stop dynamic scale-in or scale-out.
//! - The result is clamped to [min, max] (§1).

use serde::{Deserialize, Serialize};

use crate::records::UnixMillis;

/// ECS's default cooldown, both directions (§3, §4).
pub const DEFAULT_COOLDOWN_SECS: u32 = 300;
/// AlarmHigh: 3 of 3 one-minute datapoints (§3).
pub const HIGH_DATAPOINTS: usize = 3;
/// AlarmLow: 15 of 15 one-minute datapoints (§3).
pub const LOW_DATAPOINTS: usize = 15;
/// AlarmLow's threshold as a fraction of the target (§3: "usually more
/// than 10% lower").
pub const LOW_BAND: f64 = 0.9;

/// The service metrics a policy follows (§2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// ECS's CPUUtilization (ECSServiceAverageCPUUtilization).
    #[serde(rename = "CPUUtilization")]
    Cpu,
    /// ECS's MemoryUtilization (ECSServiceAverageMemoryUtilization).
    #[serde(rename = "MemoryUtilization")]
    Memory,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cpu => "CPUUtilization",
            Metric::Memory => "MemoryUtilization",
        }
    }
}

/// AAS's `PredefinedMetricSpecification`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PredefinedMetric {
    pub predefined_metric_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_label: Option<String>,
}

/// AAS's `TargetTrackingScalingPolicyConfiguration`, as users write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TargetTracking {
    pub target_value: f64,
    pub predefined_metric_specification: PredefinedMetric,
    #[serde(default = "default_cooldown")]
    pub scale_out_cooldown: u32,
    #[serde(default = "default_cooldown")]
    pub scale_in_cooldown: u32,
    #[serde(default)]
    pub disable_scale_in: bool,
}

fn default_cooldown() -> u32 {
    DEFAULT_COOLDOWN_SECS
}

impl TargetTracking {
    /// The metric its predefined type names.
    pub fn metric(&self) -> Result<Metric, String> {
        match self
            .predefined_metric_specification
            .predefined_metric_type
            .as_str()
        {
            "ECSServiceAverageCPUUtilization" => Ok(Metric::Cpu),
            "ECSServiceAverageMemoryUtilization" => Ok(Metric::Memory),
            "ALBRequestCountPerTarget" => {
                Err("ALBRequestCountPerTarget is not supported yet; use \
                 ECSServiceAverageCPUUtilization or ECSServiceAverageMemoryUtilization"
                    .to_owned())
            }
            other => Err(format!(
                "{other:?} is not an ECS predefined metric type \
                 (ECSServiceAverageCPUUtilization, ECSServiceAverageMemoryUtilization)"
            )),
        }
    }
}

/// AAS's `AdjustmentType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdjustmentType {
    ChangeInCapacity,
    ExactCapacity,
    PercentChangeInCapacity,
}

/// AAS's `MetricAggregationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Aggregation {
    #[default]
    Average,
    Minimum,
    Maximum,
}

/// One of AAS's `StepAdjustments`: bounds relative to the alarm threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct StepAdjustment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_interval_lower_bound: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_interval_upper_bound: Option<f64>,
    pub scaling_adjustment: i32,
}

/// AAS's `StepScalingPolicyConfiguration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct StepScaling {
    pub adjustment_type: AdjustmentType,
    pub step_adjustments: Vec<StepAdjustment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_adjustment_magnitude: Option<i32>,
    #[serde(default = "default_cooldown")]
    pub cooldown: u32,
    #[serde(default)]
    pub metric_aggregation_type: Aggregation,
}

/// CloudWatch's comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl Comparison {
    fn holds(self, v: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => v >= threshold,
            Comparison::GreaterThanThreshold => v > threshold,
            Comparison::LessThanThreshold => v < threshold,
            Comparison::LessThanOrEqualToThreshold => v <= threshold,
        }
    }
}

/// The alarm a step policy is driven by (in AWS, a CloudWatch alarm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepAlarm {
    pub metric: Metric,
    pub comparison: Comparison,
    pub threshold: f64,
    pub evaluation_periods: u32,
}

/// A policy's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PolicyConfig {
    TargetTracking(TargetTracking),
    Step(StepScaling, StepAlarm),
}

impl PolicyConfig {
    /// The metric its datapoints are of.
    pub fn metric(&self) -> Metric {
        match self {
            PolicyConfig::TargetTracking(t) => t.metric().unwrap_or(Metric::Cpu),
            PolicyConfig::Step(_, a) => a.metric,
        }
    }

    /// Datapoints it needs, newest last.
    pub fn window(&self) -> usize {
        match self {
            PolicyConfig::TargetTracking(_) => LOW_DATAPOINTS,
            PolicyConfig::Step(_, a) => a.evaluation_periods.max(1) as usize,
        }
    }
}

/// Why a configuration is refused: the JSON path and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

fn cerr(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Checks a target-tracking configuration.
pub fn validate_target_tracking(t: &TargetTracking) -> Result<(), ConfigError> {
    t.metric()
        .map_err(|m| cerr("PredefinedMetricSpecification.PredefinedMetricType", m))?;
    if !(t.target_value.is_finite() && t.target_value > 0.0) {
        return Err(cerr("TargetValue", "must be a positive number"));
    }
    Ok(())
}

/// Checks step adjustments by §4's rules: no overlap and no gap, at most
/// one open lower and one open upper bound, not both open in one step.
pub fn validate_step(s: &StepScaling, a: &StepAlarm) -> Result<(), ConfigError> {
    if s.step_adjustments.is_empty() {
        return Err(cerr("StepAdjustments", "at least one step is required"));
    }
    if let Some(m) = s.min_adjustment_magnitude {
        if s.adjustment_type != AdjustmentType::PercentChangeInCapacity {
            return Err(cerr(
                "MinAdjustmentMagnitude",
                "only valid with AdjustmentType PercentChangeInCapacity",
            ));
        }
        if m < 1 {
            return Err(cerr("MinAdjustmentMagnitude", "must be at least 1"));
        }
    }
    if s.adjustment_type == AdjustmentType::ExactCapacity
        && s.step_adjustments.iter().any(|x| x.scaling_adjustment < 0)
    {
        return Err(cerr(
            "StepAdjustments",
            "ExactCapacity adjustments cannot be negative",
        ));
    }
    let lo = |x: &StepAdjustment| x.metric_interval_lower_bound.unwrap_or(f64::NEG_INFINITY);
    let hi = |x: &StepAdjustment| x.metric_interval_upper_bound.unwrap_or(f64::INFINITY);
    for (i, x) in s.step_adjustments.iter().enumerate() {
        if x.metric_interval_lower_bound.is_none() && x.metric_interval_upper_bound.is_none() {
            return Err(cerr(
                &format!("StepAdjustments[{i}]"),
                "a step cannot leave both bounds open",
            ));
        }
        if lo(x) >= hi(x) {
            return Err(cerr(
                &format!("StepAdjustments[{i}].MetricIntervalUpperBound"),
                "must be greater than the lower bound",
            ));
        }
    }
    let opens =
        |f: &dyn Fn(&StepAdjustment) -> bool| s.step_adjustments.iter().filter(|x| f(x)).count();
    if opens(&|x| x.metric_interval_lower_bound.is_none()) > 1 {
        return Err(cerr(
            "StepAdjustments",
            "at most one step may have no lower bound",
        ));
    }
    if opens(&|x| x.metric_interval_upper_bound.is_none()) > 1 {
        return Err(cerr(
            "StepAdjustments",
            "at most one step may have no upper bound",
        ));
    }
    let mut sorted: Vec<&StepAdjustment> = s.step_adjustments.iter().collect();
    sorted.sort_by(|a, b| lo(a).total_cmp(&lo(b)));
    for w in sorted.windows(2) {
        if hi(w[0]) != lo(w[1]) {
            return Err(cerr(
                "StepAdjustments",
                format!(
                    "the steps must neither overlap nor leave gaps: one ends at {} and the next \
                     starts at {}",
                    hi(w[0]),
                    lo(w[1])
                ),
            ));
        }
    }
    if a.evaluation_periods < 1 || a.evaluation_periods > 60 {
        return Err(cerr("alarm.evaluationPeriods", "must be 1–60"));
    }
    if !a.threshold.is_finite() {
        return Err(cerr("alarm.threshold", "must be a number"));
    }
    Ok(())
}

/// A policy's cooldown marks, kept in its record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cooldowns {
    /// The last scale-out it caused: when, and the desired count before.
    pub last_out: Option<(UnixMillis, u32)>,
    /// The last scale-in it caused.
    pub last_in: Option<UnixMillis>,
}

/// The suspended processes of a scalable target (§1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspended {
    pub dynamic_in: bool,
    pub dynamic_out: bool,
    pub scheduled: bool,
}

/// One policy as [`decide`] sees it.
#[derive(Debug, Clone)]
pub struct PolicyView<'a> {
    pub name: &'a str,
    pub config: &'a PolicyConfig,
    pub cooldowns: &'a Cooldowns,
    /// Its metric's datapoints, oldest first, the newest the last
    /// complete period.
    pub datapoints: &'a [Option<f64>],
}

/// What a service looks like to [`decide`].
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub now: UnixMillis,
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    pub suspended: Suspended,
    pub deployment_in_progress: bool,
    pub policies: &'a [PolicyView<'a>],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Out,
    In,
}

/// What one policy wants.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub policy: String,
    pub direction: Direction,
    pub capacity: u32,
    /// The alarm that triggered it, in AAS's words.
    pub alarm: String,
    pub metric_value: f64,
}

/// Why nothing happened (AAS's NotScaledReasons codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotScaled {
    AlreadyAtMaxCapacity,
    AlreadyAtMinCapacity,
    ScaleOutSuspended,
    ScaleInSuspended,
    DeploymentInProgress,
    /// A policy in its cooldown.
    Cooldown(String),
    /// A target-tracking policy does not (yet) want to scale in.
    NotAllPoliciesAgree(String),
}

impl NotScaled {
    pub fn code(&self) -> String {
        match self {
            NotScaled::AlreadyAtMaxCapacity => "AlreadyAtMaxCapacity".into(),
            NotScaled::AlreadyAtMinCapacity => "AlreadyAtMinCapacity".into(),
            NotScaled::ScaleOutSuspended => "DynamicScalingOutSuspended".into(),
            NotScaled::ScaleInSuspended => "DynamicScalingInSuspended".into(),
            NotScaled::DeploymentInProgress => "DeploymentInProgress".into(),
            NotScaled::Cooldown(p) => format!("Cooldown ({p})"),
            NotScaled::NotAllPoliciesAgree(p) => format!("NotAllPoliciesAgree ({p})"),
        }
    }
}

/// [`decide`]'s answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing breached.
    Idle,
    Scale {
        direction: Direction,
        to: u32,
        /// The proposals that gave the winning capacity (their cooldowns
        /// start).
        winners: Vec<Proposal>,
    },
    /// A policy wanted to scale and could not.
    NotScaled(Vec<NotScaled>, Vec<Proposal>),
}

fn all_breach(points: &[Option<f64>], n: usize, test: impl Fn(f64) -> bool) -> Option<f64> {
    if n == 0 || points.len() < n {
        return None;
    }
    let last = &points[points.len() - n..];
    if last.iter().all(|p| p.is_some_and(&test)) {
        last.last().copied().flatten()
    } else {
        None
    }
}

/// The percent change of §4: `current × pct / 100` rounded toward zero
/// when its size is at least 1, else to ±1.
pub fn percent_change(current: u32, pct: i32) -> i64 {
    let raw = f64::from(current) * f64::from(pct) / 100.0;
    if raw == 0.0 {
        0
    } else if raw.abs() < 1.0 {
        raw.signum() as i64
    } else {
        raw.trunc() as i64
    }
}

/// The step that `delta` (metric − threshold) falls in (§4's bounds).
pub fn step_for(steps: &[StepAdjustment], delta: f64) -> Option<&StepAdjustment> {
    steps.iter().find(|s| {
        let lo = s.metric_interval_lower_bound.unwrap_or(f64::NEG_INFINITY);
        let hi = s.metric_interval_upper_bound.unwrap_or(f64::INFINITY);
        if delta >= 0.0 {
            lo <= delta && delta < hi
        } else {
            lo < delta && delta <= hi
        }
    })
}

/// The capacity a step policy asks for at `current`.
pub fn step_capacity(s: &StepScaling, step: &StepAdjustment, current: u32) -> u32 {
    let adj = step.scaling_adjustment;
    let new = match s.adjustment_type {
        AdjustmentType::ChangeInCapacity => i64::from(current) + i64::from(adj),
        AdjustmentType::ExactCapacity => i64::from(adj),
        AdjustmentType::PercentChangeInCapacity => {
            let mut change = percent_change(current, adj);
            if let Some(m) = s.min_adjustment_magnitude {
                if change != 0 && change.abs() < i64::from(m) {
                    change = change.signum() * i64::from(m);
                }
            }
            i64::from(current) + change
        }
    };
    new.clamp(0, i64::from(u32::MAX)) as u32
}

/// The alarm names AAS gives a target-tracking policy's alarms.
pub fn target_tracking_alarms(resource_id: &str, policy: &str) -> [String; 2] {
    [
        format!("TargetTracking-{resource_id}-AlarmHigh-{policy}"),
        format!("TargetTracking-{resource_id}-AlarmLow-{policy}"),
    ]
}

enum Wants {
    Nothing,
    Proposal(Proposal),
    Blocked(NotScaled),
}

fn in_cooldown(now: UnixMillis, since: Option<UnixMillis>, secs: u32) -> bool {
    since.is_some_and(|t| now < t + i64::from(secs) * 1000)
}

/// The capacity a scale-out counts from: during the cooldown, the desired
/// count before the scale-out that started it (§3).
fn out_base(p: &PolicyView<'_>, now: UnixMillis, desired: u32, cooldown: u32) -> u32 {
    match p.cooldowns.last_out {
        Some((at, from)) if in_cooldown(now, Some(at), cooldown) => from,
        _ => desired,
    }
}

fn evaluate(p: &PolicyView<'_>, inp: &Inputs<'_>) -> Wants {
    let desired = inp.desired;
    match p.config {
        PolicyConfig::TargetTracking(t) => {
            let target = t.target_value;
            if let Some(v) = all_breach(p.datapoints, HIGH_DATAPOINTS, |v| v > target) {
                let base = out_base(p, inp.now, desired, t.scale_out_cooldown);
                let cap = (f64::from(base) * v / target).ceil() as u32;
                if cap <= desired {
                    if base == desired {
                        return Wants::Nothing;
                    }
                    return Wants::Blocked(NotScaled::Cooldown(p.name.to_owned()));
                }
                return Wants::Proposal(Proposal {
                    policy: p.name.to_owned(),
                    direction: Direction::Out,
                    capacity: cap,
                    alarm: "AlarmHigh".into(),
                    metric_value: v,
                });
            }
            if let Some(v) = all_breach(p.datapoints, LOW_DATAPOINTS, |v| v < target * LOW_BAND) {
                if t.disable_scale_in {
                    return Wants::Nothing;
                }
                if in_cooldown(inp.now, p.cooldowns.last_in, t.scale_in_cooldown) {
                    return Wants::Blocked(NotScaled::Cooldown(p.name.to_owned()));
                }
                let d = f64::from(desired);
                let remove = ((d - d * v / target).floor() as u32).max(1);
                return Wants::Proposal(Proposal {
                    policy: p.name.to_owned(),
                    direction: Direction::In,
                    capacity: desired.saturating_sub(remove),
                    alarm: "AlarmLow".into(),
                    metric_value: v,
                });
            }
            Wants::Nothing
        }
        PolicyConfig::Step(s, a) => {
            let n = a.evaluation_periods.max(1) as usize;
            if all_breach(p.datapoints, n, |v| a.comparison.holds(v, a.threshold)).is_none() {
                return Wants::Nothing;
            }
            let last: Vec<f64> = p.datapoints[p.datapoints.len() - n..]
                .iter()
                .flatten()
                .copied()
                .collect();
            let v = match s.metric_aggregation_type {
                Aggregation::Average => last.iter().sum::<f64>() / last.len() as f64,
                Aggregation::Minimum => last.iter().copied().fold(f64::INFINITY, f64::min),
                Aggregation::Maximum => last.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            };
            let Some(step) = step_for(&s.step_adjustments, v - a.threshold) else {
                return Wants::Nothing;
            };
            let alarm = format!("{} {:?} {}", a.metric.name(), a.comparison, a.threshold);
            let cap = step_capacity(s, step, desired);
            if cap > desired {
                // In the cooldown, counted from before the last scale-out.
                let base = out_base(p, inp.now, desired, s.cooldown);
                let cap = step_capacity(s, step, base);
                if cap <= desired {
                    return Wants::Blocked(NotScaled::Cooldown(p.name.to_owned()));
                }
                return Wants::Proposal(Proposal {
                    policy: p.name.to_owned(),
                    direction: Direction::Out,
                    capacity: cap,
                    alarm,
                    metric_value: v,
                });
            }
            if cap < desired {
                if in_cooldown(inp.now, p.cooldowns.last_in, s.cooldown)
                    || in_cooldown(inp.now, p.cooldowns.last_out.map(|o| o.0), s.cooldown)
                {
                    return Wants::Blocked(NotScaled::Cooldown(p.name.to_owned()));
                }
                return Wants::Proposal(Proposal {
                    policy: p.name.to_owned(),
                    direction: Direction::In,
                    capacity: cap,
                    alarm,
                    metric_value: v,
                });
            }
            Wants::Nothing
        }
    }
}

/// The decision for one service at one evaluation.
pub fn decide(inp: &Inputs<'_>) -> Decision {
    let mut outs = Vec::new();
    let mut ins = Vec::new();
    let mut reasons = Vec::new();
    // Target-tracking policies with scale-in enabled that do not want in.
    let mut holdouts = Vec::new();
    for p in inp.policies {
        let w = evaluate(p, inp);
        let tt_in_enabled =
            matches!(p.config, PolicyConfig::TargetTracking(t) if !t.disable_scale_in);
        match w {
            Wants::Proposal(pr) if pr.direction == Direction::Out => outs.push(pr),
            Wants::Proposal(pr) => ins.push(pr),
            Wants::Blocked(r) => {
                if tt_in_enabled {
                    holdouts.push(p.name.to_owned());
                }
                reasons.push(r);
            }
            Wants::Nothing => {
                if tt_in_enabled {
                    holdouts.push(p.name.to_owned());
                }
            }
        }
    }
    if !outs.is_empty() {
        if inp.suspended.dynamic_out {
            return Decision::NotScaled(vec![NotScaled::ScaleOutSuspended], outs);
        }
        let best = outs.iter().map(|p| p.capacity).max().unwrap_or(0);
        let to = best.clamp(inp.min, inp.max.max(inp.min));
        if to <= inp.desired {
            return Decision::NotScaled(vec![NotScaled::AlreadyAtMaxCapacity], outs);
        }
        let winners = outs.into_iter().filter(|p| p.capacity == best).collect();
        return Decision::Scale {
            direction: Direction::Out,
            to,
            winners,
        };
    }
    if !ins.is_empty() {
        if inp.suspended.dynamic_in {
            return Decision::NotScaled(vec![NotScaled::ScaleInSuspended], ins);
        }
        if inp.deployment_in_progress {
            return Decision::NotScaled(vec![NotScaled::DeploymentInProgress], ins);
        }
        if !holdouts.is_empty() {
            reasons.extend(holdouts.into_iter().map(NotScaled::NotAllPoliciesAgree));
            return Decision::NotScaled(reasons, ins);
        }
        let best = ins.iter().map(|p| p.capacity).max().unwrap_or(0);
        let to = best.clamp(inp.min, inp.max.max(inp.min));
        if to >= inp.desired {
            return Decision::NotScaled(vec![NotScaled::AlreadyAtMinCapacity], ins);
        }
        let winners = ins.into_iter().filter(|p| p.capacity == best).collect();
        return Decision::Scale {
            direction: Direction::In,
            to,
            winners,
        };
    }
    if reasons.is_empty() {
        Decision::Idle
    } else {
        Decision::NotScaled(reasons, Vec::new())
    }
}

#[cfg(test)]
mod tests;
