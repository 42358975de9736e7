//! Table-driven checks of every rule in `decide`'s doc, each case naming
//! the research note's section (../shared/research/autoscaling.md).

#![allow(clippy::unwrap_used)]

use super::*;

const NOW: UnixMillis = 10_000_000;

fn tt(target: f64) -> PolicyConfig {
    PolicyConfig::TargetTracking(TargetTracking {
        target_value: target,
        predefined_metric_specification: PredefinedMetric {
            predefined_metric_type: "ECSServiceAverageCPUUtilization".into(),
            resource_label: None,
        },
        scale_out_cooldown: DEFAULT_COOLDOWN_SECS,
        scale_in_cooldown: DEFAULT_COOLDOWN_SECS,
        disable_scale_in: false,
    })
}

fn tt_no_in(target: f64) -> PolicyConfig {
    match tt(target) {
        PolicyConfig::TargetTracking(mut t) => {
            t.disable_scale_in = true;
            PolicyConfig::TargetTracking(t)
        }
        other => other,
    }
}

/// §4's worked example: threshold 50, steps ±10 / ±30 % past ±10 / ±20.
fn step_example() -> (StepScaling, StepAlarm) {
    let st = |lo: Option<f64>, hi: Option<f64>, adj: i32| StepAdjustment {
        metric_interval_lower_bound: lo,
        metric_interval_upper_bound: hi,
        scaling_adjustment: adj,
    };
    (
        StepScaling {
            adjustment_type: AdjustmentType::PercentChangeInCapacity,
            step_adjustments: vec![
                st(Some(0.0), Some(10.0), 0),
                st(Some(10.0), Some(20.0), 10),
                st(Some(20.0), None, 30),
                st(Some(-10.0), Some(0.0), 0),
                st(Some(-20.0), Some(-10.0), -10),
                st(None, Some(-20.0), -30),
            ],
            min_adjustment_magnitude: None,
            cooldown: DEFAULT_COOLDOWN_SECS,
            metric_aggregation_type: Aggregation::Average,
        },
        StepAlarm {
            metric: Metric::Cpu,
            // The example's alarm fires both ways: any value is "breaching";
            // the step table decides.
            comparison: Comparison::GreaterThanOrEqualToThreshold,
            threshold: 50.0,
            evaluation_periods: 1,
        },
    )
}

fn step(comparison: Comparison) -> PolicyConfig {
    let (s, mut a) = step_example();
    a.comparison = comparison;
    PolicyConfig::Step(s, a)
}

fn pts(values: &[Option<f64>]) -> Vec<Option<f64>> {
    values.to_vec()
}

fn flat(v: f64, n: usize) -> Vec<Option<f64>> {
    vec![Some(v); n]
}

struct Case {
    why: &'static str,
    desired: u32,
    min: u32,
    max: u32,
    deployment: bool,
    suspended: Suspended,
    policies: Vec<(PolicyConfig, Cooldowns, Vec<Option<f64>>)>,
    want: Want,
}

#[derive(Debug, PartialEq)]
enum Want {
    Idle,
    Out(u32),
    In(u32),
    Not(&'static str),
}

fn case(
    why: &'static str,
    desired: u32,
    policies: Vec<(PolicyConfig, Vec<Option<f64>>)>,
    want: Want,
) -> Case {
    Case {
        why,
        desired,
        min: 0,
        max: 100,
        deployment: false,
        suspended: Suspended::default(),
        policies: policies
            .into_iter()
            .map(|(c, d)| (c, Cooldowns::default(), d))
            .collect(),
        want,
    }
}

fn run(c: &Case) -> Decision {
    let names: Vec<String> = (0..c.policies.len()).map(|i| format!("p{i}")).collect();
    let views: Vec<PolicyView<'_>> = c
        .policies
        .iter()
        .zip(&names)
        .map(|((config, cooldowns, datapoints), name)| PolicyView {
            name,
            config,
            cooldowns,
            datapoints,
        })
        .collect();
    decide(&Inputs {
        now: NOW,
        desired: c.desired,
        min: c.min,
        max: c.max,
        suspended: c.suspended,
        deployment_in_progress: c.deployment,
        policies: &views,
    })
}

fn got(d: &Decision) -> Want {
    match d {
        Decision::Idle => Want::Idle,
        Decision::Scale {
            direction: Direction::Out,
            to,
            ..
        } => Want::Out(*to),
        Decision::Scale {
            direction: Direction::In,
            to,
            ..
        } => Want::In(*to),
        Decision::NotScaled(reasons, _) => Want::Not(match reasons.first() {
            Some(NotScaled::AlreadyAtMaxCapacity) => "AlreadyAtMaxCapacity",
            Some(NotScaled::AlreadyAtMinCapacity) => "AlreadyAtMinCapacity",
            Some(NotScaled::ScaleOutSuspended) => "ScaleOutSuspended",
            Some(NotScaled::ScaleInSuspended) => "ScaleInSuspended",
            Some(NotScaled::DeploymentInProgress) => "DeploymentInProgress",
            Some(NotScaled::Cooldown(_)) => "Cooldown",
            Some(NotScaled::NotAllPoliciesAgree(_)) => "NotAllPoliciesAgree",
            None => "none",
        }),
    }
}

#[test]
fn target_tracking_rules() {
    let out_cooldown = Cooldowns {
        last_out: Some((NOW - 60_000, 2)),
        last_in: None,
    };
    let in_cooldown = Cooldowns {
        last_out: None,
        last_in: Some(NOW - 60_000),
    };
    let mut cases = vec![
        // §3: AlarmHigh is 3 of 3 datapoints above the target.
        case(
            "3 high datapoints scale out proportionally (ceil)",
            2,
            vec![(tt(50.0), flat(90.0, 3))],
            Want::Out(4),
        ),
        case(
            "2 high datapoints are not enough",
            2,
            vec![(tt(50.0), pts(&[Some(40.0), Some(90.0), Some(90.0)]))],
            Want::Idle,
        ),
        case(
            "exactly at the target does not breach",
            2,
            vec![(tt(50.0), flat(50.0, 15))],
            Want::Idle,
        ),
        case(
            "rounding up on scale-out: 3 × 51/50 → 4",
            3,
            vec![(tt(50.0), flat(51.0, 3))],
            Want::Out(4),
        ),
        // §3: no scaling on INSUFFICIENT_DATA.
        case(
            "a missing datapoint blocks the high alarm",
            2,
            vec![(tt(50.0), pts(&[Some(90.0), None, Some(90.0)]))],
            Want::Idle,
        ),
        // §3: AlarmLow is 15 of 15 below 0.9 × target.
        case(
            "15 low datapoints scale in",
            10,
            vec![(tt(60.0), flat(30.0, 15))],
            Want::In(5),
        ),
        case(
            "14 low datapoints are not enough",
            10,
            vec![(tt(60.0), {
                let mut v = flat(30.0, 15);
                v[0] = Some(59.0);
                v
            })],
            Want::Idle,
        ),
        case(
            "inside the band (between 0.9 × target and target) nothing happens",
            10,
            vec![(tt(60.0), flat(55.0, 15))],
            Want::Idle,
        ),
        case(
            "scale-in removes at least one",
            10,
            vec![(tt(60.0), flat(53.0, 15))],
            Want::In(9),
        ),
        case(
            "missing data never scales in",
            10,
            vec![(tt(60.0), {
                let mut v = flat(30.0, 15);
                v[7] = None;
                v
            })],
            Want::Idle,
        ),
        case(
            "no datapoints at all: idle",
            10,
            vec![(tt(60.0), vec![None; 15])],
            Want::Idle,
        ),
        // §3: DisableScaleIn.
        case(
            "disableScaleIn drops the scale-in",
            10,
            vec![(tt_no_in(60.0), flat(30.0, 15))],
            Want::Idle,
        ),
        // §3: several policies; scale out if any, largest wins.
        case(
            "any policy scales out; the largest capacity wins",
            4,
            vec![(tt(50.0), flat(75.0, 15)), (tt(50.0), flat(100.0, 15))],
            Want::Out(8),
        ),
        case(
            "out wins over in",
            4,
            vec![(tt(50.0), flat(10.0, 15)), (tt(50.0), flat(100.0, 15))],
            Want::Out(8),
        ),
        // §3: scale in only if all (scale-in enabled) target-tracking policies agree.
        case(
            "scale-in needs every policy",
            10,
            vec![(tt(60.0), flat(30.0, 15)), (tt(60.0), flat(57.0, 15))],
            Want::Not("NotAllPoliciesAgree"),
        ),
        case(
            "a disableScaleIn policy does not veto",
            10,
            vec![(tt(60.0), flat(30.0, 15)), (tt_no_in(60.0), flat(57.0, 15))],
            Want::In(5),
        ),
        case(
            "when all agree, the largest capacity (least removal) wins",
            10,
            vec![(tt(60.0), flat(30.0, 15)), (tt(60.0), flat(48.0, 15))],
            Want::In(8),
        ),
        // §1: min/max.
        case(
            "clamped to max",
            2,
            vec![(tt(10.0), flat(90.0, 3))],
            Want::Out(18),
        ),
    ];
    cases.push(Case {
        max: 5,
        ..case(
            "scale-out stops at max",
            2,
            vec![(tt(10.0), flat(90.0, 3))],
            Want::Out(5),
        )
    });
    cases.push(Case {
        max: 5,
        ..case(
            "already at max",
            5,
            vec![(tt(10.0), flat(90.0, 3))],
            Want::Not("AlreadyAtMaxCapacity"),
        )
    });
    cases.push(Case {
        min: 3,
        ..case(
            "already at min",
            3,
            vec![(tt(60.0), flat(10.0, 15))],
            Want::Not("AlreadyAtMinCapacity"),
        )
    });
    cases.push(Case {
        min: 3,
        ..case(
            "scale-in stops at min",
            10,
            vec![(tt(60.0), flat(6.0, 15))],
            Want::In(3),
        )
    });
    // §1: no scale-in during a deployment; scale-out continues.
    cases.push(Case {
        deployment: true,
        ..case(
            "no scale-in while a deployment is in progress",
            10,
            vec![(tt(60.0), flat(30.0, 15))],
            Want::Not("DeploymentInProgress"),
        )
    });
    cases.push(Case {
        deployment: true,
        ..case(
            "scale-out goes on during a deployment",
            2,
            vec![(tt(50.0), flat(90.0, 3))],
            Want::Out(4),
        )
    });
    // §1: suspended processes.
    cases.push(Case {
        suspended: Suspended {
            dynamic_out: true,
            ..Default::default()
        },
        ..case(
            "scale-out suspended",
            2,
            vec![(tt(50.0), flat(90.0, 3))],
            Want::Not("ScaleOutSuspended"),
        )
    });
    cases.push(Case {
        suspended: Suspended {
            dynamic_in: true,
            ..Default::default()
        },
        ..case(
            "scale-in suspended",
            10,
            vec![(tt(60.0), flat(30.0, 15))],
            Want::Not("ScaleInSuspended"),
        )
    });
    // §3: cooldowns.
    cases.push(Case {
        policies: vec![(tt(50.0), out_cooldown.clone(), flat(90.0, 3))],
        ..case(
            "in the scale-out cooldown the same scale-out does not repeat (from 2: still 4)",
            4,
            vec![],
            Want::Not("Cooldown"),
        )
    });
    cases.push(Case {
        policies: vec![(tt(50.0), out_cooldown.clone(), flat(150.0, 3))],
        ..case(
            "in the scale-out cooldown a larger scale-out goes ahead (from 2: 6)",
            4,
            vec![],
            Want::Out(6),
        )
    });
    cases.push(Case {
        policies: vec![(
            tt(50.0),
            Cooldowns {
                last_out: Some((NOW - 301_000, 2)),
                last_in: None,
            },
            flat(90.0, 3),
        )],
        ..case(
            "after the scale-out cooldown it counts from now (4 → 8)",
            4,
            vec![],
            Want::Out(8),
        )
    });
    cases.push(Case {
        policies: vec![(tt(60.0), in_cooldown.clone(), flat(30.0, 15))],
        ..case(
            "scale-in waits for the scale-in cooldown",
            10,
            vec![],
            Want::Not("Cooldown"),
        )
    });
    cases.push(Case {
        policies: vec![(tt(50.0), in_cooldown, flat(90.0, 3))],
        ..case(
            "scale-out is not held by the scale-in cooldown",
            2,
            vec![],
            Want::Out(4),
        )
    });
    for c in &cases {
        assert_eq!(got(&run(c)), c.want, "{}", c.why);
    }
}

#[test]
fn step_scaling_follows_the_worked_example() {
    // §4: threshold 50 %, capacity 10: 60 → 11; 70 at 11 → 14; 40 at 14 →
    // 13; 30 at 13 → 10.
    let (s, _) = step_example();
    for (desired, metric, want) in [
        (10, 60.0, 11),
        (11, 70.0, 14),
        (14, 40.0, 13),
        (13, 30.0, 10),
    ] {
        let st = step_for(&s.step_adjustments, metric - 50.0).unwrap();
        assert_eq!(
            step_capacity(&s, st, desired),
            want,
            "{metric} at {desired}"
        );
    }
    // And through `decide`, with an alarm that breaches both ways.
    let any = |desired, v: f64| {
        got(&run(&case(
            "example",
            desired,
            vec![(
                step(Comparison::GreaterThanOrEqualToThreshold),
                vec![Some(v)],
            )],
            Want::Idle,
        )))
    };
    assert_eq!(any(10, 60.0), Want::Out(11));
    assert_eq!(any(11, 55.0), Want::Idle, "[0, 10) adjusts by 0");
}

#[test]
fn step_bounds_and_rounding() {
    let (s, _) = step_example();
    let adj = |d: f64| step_for(&s.step_adjustments, d).map(|x| x.scaling_adjustment);
    // §4: above the threshold lower inclusive, upper exclusive; below it
    // lower exclusive, upper inclusive.
    assert_eq!(adj(10.0), Some(10));
    assert_eq!(adj(9.999), Some(0));
    assert_eq!(adj(20.0), Some(30));
    assert_eq!(adj(-10.0), Some(-10));
    assert_eq!(adj(-9.999), Some(0));
    assert_eq!(adj(-20.0), Some(-30));
    assert_eq!(adj(-20.001), Some(-30));
    assert_eq!(adj(0.0), Some(0));
    // §4: percent rounding.
    assert_eq!(percent_change(127, 10), 12, "12.7 → 12");
    assert_eq!(percent_change(5, 10), 1, "0.5 → 1");
    assert_eq!(percent_change(5, -10), -1, "-0.5 → -1");
    assert_eq!(percent_change(67, -10), -6, "-6.7 → -6");
    assert_eq!(percent_change(0, 50), 0);
    // §4: MinAdjustmentMagnitude.
    let mut m = s.clone();
    m.min_adjustment_magnitude = Some(3);
    let st = step_for(&m.step_adjustments, 15.0).unwrap();
    assert_eq!(step_capacity(&m, st, 10), 13, "+1 raised to +3");
    let st = step_for(&m.step_adjustments, -15.0).unwrap();
    assert_eq!(step_capacity(&m, st, 10), 7, "-1 raised to -3");
    // ChangeInCapacity and ExactCapacity.
    let one = |t: AdjustmentType, a: i32| StepScaling {
        adjustment_type: t,
        step_adjustments: vec![StepAdjustment {
            metric_interval_lower_bound: Some(0.0),
            metric_interval_upper_bound: None,
            scaling_adjustment: a,
        }],
        min_adjustment_magnitude: None,
        cooldown: 0,
        metric_aggregation_type: Aggregation::Average,
    };
    let c = one(AdjustmentType::ChangeInCapacity, 2);
    assert_eq!(step_capacity(&c, &c.step_adjustments[0], 3), 5);
    let c = one(AdjustmentType::ChangeInCapacity, -5);
    assert_eq!(
        step_capacity(&c, &c.step_adjustments[0], 3),
        0,
        "never below 0"
    );
    let e = one(AdjustmentType::ExactCapacity, 7);
    assert_eq!(step_capacity(&e, &e.step_adjustments[0], 3), 7);
}

#[test]
fn step_alarms_cooldowns_and_aggregation() {
    let (mut s, mut a) = step_example();
    a.comparison = Comparison::GreaterThanThreshold;
    a.evaluation_periods = 2;
    s.metric_aggregation_type = Aggregation::Maximum;
    let policy = PolicyConfig::Step(s.clone(), a.clone());
    let at = |desired, pts: Vec<Option<f64>>, cd: Cooldowns| {
        got(&run(&Case {
            policies: vec![(policy.clone(), cd, pts)],
            ..case("step", desired, vec![], Want::Idle)
        }))
    };
    // Two periods must breach; the maximum picks the step (+30 % past 70).
    assert_eq!(
        at(10, vec![Some(40.0), Some(75.0)], Cooldowns::default()),
        Want::Idle
    );
    assert_eq!(
        at(10, vec![Some(65.0), Some(75.0)], Cooldowns::default()),
        Want::Out(13)
    );
    assert_eq!(
        at(10, vec![None, Some(75.0)], Cooldowns::default()),
        Want::Idle,
        "missing data"
    );
    // Cooldown: from 10 → 13 a minute ago; +10 % of 10 = 11 is not larger.
    let cd = Cooldowns {
        last_out: Some((NOW - 60_000, 10)),
        last_in: None,
    };
    assert_eq!(
        at(13, vec![Some(62.0), Some(65.0)], cd.clone()),
        Want::Not("Cooldown")
    );
    // Average of 65 and 75 = 70 → +30 %.
    s.metric_aggregation_type = Aggregation::Average;
    let avg = PolicyConfig::Step(s.clone(), a.clone());
    assert_eq!(
        got(&run(&case(
            "avg",
            10,
            vec![(avg, vec![Some(65.0), Some(75.0)])],
            Want::Idle
        ))),
        Want::Out(13)
    );
    // A scale-in step waits for the cooldown after a scale-out too.
    a.comparison = Comparison::LessThanThreshold;
    let low = PolicyConfig::Step(s, a);
    let run_low = |cd: Cooldowns| {
        got(&run(&Case {
            policies: vec![(low.clone(), cd, vec![Some(25.0), Some(25.0)])],
            ..case("low", 10, vec![], Want::Idle)
        }))
    };
    assert_eq!(run_low(Cooldowns::default()), Want::In(7));
    assert_eq!(run_low(cd), Want::Not("Cooldown"));
}

#[test]
fn step_validation_follows_the_rules() {
    let (s, a) = step_example();
    assert_eq!(validate_step(&s, &a), Ok(()));
    let st = |lo: Option<f64>, hi: Option<f64>| StepAdjustment {
        metric_interval_lower_bound: lo,
        metric_interval_upper_bound: hi,
        scaling_adjustment: 1,
    };
    let with = |steps: Vec<StepAdjustment>| StepScaling {
        step_adjustments: steps,
        ..s.clone()
    };
    let bad = [
        (with(vec![]), "StepAdjustments"),
        (with(vec![st(None, None)]), "StepAdjustments[0]"),
        (
            with(vec![st(Some(0.0), Some(10.0)), st(Some(5.0), None)]),
            "StepAdjustments",
        ),
        (
            with(vec![st(Some(0.0), Some(10.0)), st(Some(20.0), None)]),
            "StepAdjustments",
        ),
        (
            with(vec![st(None, Some(0.0)), st(None, Some(-5.0))]),
            "StepAdjustments",
        ),
        (
            with(vec![st(Some(10.0), Some(0.0))]),
            "StepAdjustments[0].MetricIntervalUpperBound",
        ),
        (
            StepScaling {
                adjustment_type: AdjustmentType::ChangeInCapacity,
                min_adjustment_magnitude: Some(2),
                ..s.clone()
            },
            "MinAdjustmentMagnitude",
        ),
    ];
    for (cfg, path) in bad {
        assert_eq!(validate_step(&cfg, &a).unwrap_err().path, path, "{cfg:?}");
    }
    let mut a0 = a.clone();
    a0.evaluation_periods = 0;
    assert_eq!(
        validate_step(&s, &a0).unwrap_err().path,
        "alarm.evaluationPeriods"
    );
}

#[test]
fn target_tracking_json_is_aas_json() {
    let t: TargetTracking = serde_json::from_str(
        r#"{"TargetValue": 75.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageMemoryUtilization"},
            "ScaleInCooldown": 60}"#,
    )
    .unwrap();
    assert_eq!(t.metric(), Ok(Metric::Memory));
    assert_eq!(
        t.scale_out_cooldown, DEFAULT_COOLDOWN_SECS,
        "§3 default 300 s"
    );
    assert_eq!(t.scale_in_cooldown, 60);
    assert!(!t.disable_scale_in);
    assert!(validate_target_tracking(&t).is_ok());
    let alb: TargetTracking = serde_json::from_str(
        r#"{"TargetValue": 1000, "PredefinedMetricSpecification":
            {"PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": "x"}}"#,
    )
    .unwrap();
    assert_eq!(
        validate_target_tracking(&alb).unwrap_err().path,
        "PredefinedMetricSpecification.PredefinedMetricType"
    );
    let s: StepScaling = serde_json::from_str(
        r#"{"AdjustmentType": "PercentChangeInCapacity", "MinAdjustmentMagnitude": 2,
            "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 20}]}"#,
    )
    .unwrap();
    assert_eq!(s.cooldown, DEFAULT_COOLDOWN_SECS, "§4 default 300 s");
    assert_eq!(s.metric_aggregation_type, Aggregation::Average);
    assert!(serde_json::from_str::<TargetTracking>(r#"{"TargetValue": 1, "Bogus": 1}"#).is_err());
}
