//! Service auto scaling in-process: AutoScalingService over loopback gRPC,
//! the autoscaler loop, the service controller placing on a fake agent.
//! A scheduled action clamps the desired count; target tracking scales
//! out and back in on a fake metrics source (short periods set in the
//! test's config).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_proto::v1::auto_scaling_service_client::AutoScalingServiceClient;
use berth_proto::v1::service_service_client::ServiceServiceClient;
use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::{
    CreateServiceRequest, DescribeScalingActivitiesRequest, DescribeServicesRequest,
    PutScalingPolicyRequest, PutScheduledActionRequest, RegisterScalableTargetRequest,
    RegisterTaskDefinitionRequest, ScalableTargetRef, Service, StepAlarm, UpdateServiceRequest,
};
use berth_scheduler::autoscaling::decide::Metric;
use berth_scheduler::autoscaling::ServiceMetrics;
use berth_tests::eventually;
use berth_tests::fake_agent::{FakeAgent, FakeHost};
use berth_tests::AuthedChannel;
use tonic::Code;

mod common;
use common::InProcess as Server;

const WEB: &str = r#"{"family":"web","containerDefinitions":[{"name":"web","image":"nginx",
    "memory":64}]}"#;

/// A service's CPU as the test sets it (percent × 100), for any period.
#[derive(Debug, Default)]
struct FakeCpu(AtomicU64);

impl FakeCpu {
    fn set(&self, percent: f64) {
        self.0.store((percent * 100.0) as u64, Ordering::SeqCst);
    }
}

impl ServiceMetrics for FakeCpu {
    fn datapoint(&self, _: &str, service: &str, metric: Metric, _: i64) -> Option<f64> {
        (service == "web" && metric == Metric::Cpu)
            .then(|| self.0.load(Ordering::SeqCst) as f64 / 100.0)
    }
}

async fn setup(tune: impl FnOnce(&mut berth_scheduler::config::Config)) -> (Server, FakeAgent) {
    let s = Server::start_with(|c| {
        c.services.resync = Duration::from_millis(200);
        tune(c);
    })
    .await;
    let agent = FakeAgent::join(&s.target, "default", FakeHost::default())
        .await
        .autopilot();
    TaskDefinitionServiceClient::new(s.ops.clone())
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: WEB.to_owned(),
        })
        .await
        .unwrap();
    ServiceServiceClient::new(s.ops.clone())
        .create_service(CreateServiceRequest {
            service_name: "web".into(),
            task_definition: "web".into(),
            desired_count: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    (s, agent)
}

fn web() -> Option<ScalableTargetRef> {
    Some(ScalableTargetRef {
        cluster: String::new(),
        service: "web".into(),
    })
}

async fn service(ops: &AuthedChannel) -> Service {
    ServiceServiceClient::new(ops.clone())
        .describe_services(DescribeServicesRequest {
            services: vec!["web".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .services
        .remove(0)
}

/// Waits until the service's desired and running counts are both `n`.
async fn until_running(ops: &AuthedChannel, n: i32, limit: Duration) -> Service {
    eventually(limit, &format!("{n} desired and running"), || {
        let ops = ops.clone();
        async move {
            let s = service(&ops).await;
            if s.desired_count == n && s.running_count == n {
                Ok(s)
            } else {
                Err(format!(
                    "desired {}, running {}",
                    s.desired_count, s.running_count
                ))
            }
        }
    })
    .await
}

/// `at(…)` `secs` seconds from now, in UTC.
fn at_in(secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs);
    format!(
        "at({:04}-{:02}-{:02}T{:02}:{:02}:{:02})",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_and_scheduled_actions_clamp_the_desired_count() {
    let (s, _agent) = setup(|_| {}).await;
    until_running(&s.ops, 1, Duration::from_secs(10)).await;
    let mut aas = AutoScalingServiceClient::new(s.ops.clone());
    // A minimum above the desired count scales out to it.
    aas.register_scalable_target(RegisterScalableTargetRequest {
        target: web(),
        min_capacity: Some(2),
        max_capacity: Some(6),
        suspended_state: None,
    })
    .await
    .unwrap();
    until_running(&s.ops, 2, Duration::from_secs(10)).await;
    // A scheduled action two seconds ahead raises the minimum to 4.
    let put = aas
        .put_scheduled_action(PutScheduledActionRequest {
            target: web(),
            scheduled_action_name: "morning".into(),
            schedule: at_in(2),
            min_capacity: Some(4),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .scheduled_action
        .unwrap();
    assert!(put.next_fire_time.is_some());
    let svc = until_running(&s.ops, 4, Duration::from_secs(15)).await;
    assert!(
        svc.events.iter().any(|e| e
            .message
            .contains("was scaled out from 2 to 4 tasks by Application Auto Scaling")),
        "{:?}",
        svc.events
    );
    // A manual UpdateService above the maximum is brought back to it.
    ServiceServiceClient::new(s.ops.clone())
        .update_service(UpdateServiceRequest {
            service: "web".into(),
            desired_count: Some(9),
            ..Default::default()
        })
        .await
        .unwrap();
    until_running(&s.ops, 6, Duration::from_secs(15)).await;
    let acts = aas
        .describe_scaling_activities(DescribeScalingActivitiesRequest {
            target: web(),
            include_not_scaled_activities: false,
        })
        .await
        .unwrap()
        .into_inner()
        .scaling_activities;
    let causes: Vec<&str> = acts.iter().map(|a| a.cause.as_str()).collect();
    assert_eq!(
        causes,
        [
            "maximum capacity was set to 6",
            "minimum capacity was set to 4",
            "scheduled action name morning was triggered",
            "minimum capacity was set to 2",
        ],
        "{acts:#?}"
    );
    assert_eq!(acts[0].description, "Setting desired count to 6.");
    assert!(acts.iter().all(|a| a.status_code == "Successful"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_tracking_scales_out_on_high_cpu_and_back_in() {
    let cpu = Arc::new(FakeCpu::default());
    cpu.set(90.0);
    let metrics = cpu.clone();
    let (s, _agent) = setup(move |c| {
        c.autoscaling.period = Duration::from_millis(300);
        c.autoscaling.metrics_override = Some(Arc::new(move |cluster, service, metric, period| {
            let metric = match metric {
                "CPUUtilization" => Metric::Cpu,
                _ => Metric::Memory,
            };
            metrics.datapoint(cluster, service, metric, period)
        }));
    })
    .await;
    until_running(&s.ops, 1, Duration::from_secs(10)).await;
    let mut aas = AutoScalingServiceClient::new(s.ops.clone());
    aas.register_scalable_target(RegisterScalableTargetRequest {
        target: web(),
        min_capacity: Some(1),
        max_capacity: Some(4),
        suspended_state: None,
    })
    .await
    .unwrap();
    let policy = aas
        .put_scaling_policy(PutScalingPolicyRequest {
            target: web(),
            policy_name: "cpu50".into(),
            policy_type: "TargetTrackingScaling".into(),
            configuration_json: r#"{"TargetValue": 50.0,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
                "ScaleOutCooldown": 0, "ScaleInCooldown": 0}"#
                .into(),
            alarm: None,
        })
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(
        policy.alarm_names[0],
        "TargetTracking-service/default/web-AlarmHigh-cpu50"
    );
    // 90 % on a target of 50: 1 → 2 → 4, stopped by the maximum.
    let svc = until_running(&s.ops, 4, Duration::from_secs(20)).await;
    assert!(
        svc.events.iter().any(|e| e.message.contains("scaled out")),
        "{:?}",
        svc.events
    );
    // Still high at the maximum: recorded once as not scaled.
    eventually(Duration::from_secs(10), "AlreadyAtMaxCapacity", || {
        let mut aas = aas.clone();
        async move {
            let acts = aas
                .describe_scaling_activities(DescribeScalingActivitiesRequest {
                    target: web(),
                    include_not_scaled_activities: true,
                })
                .await
                .map_err(|e| e.to_string())?
                .into_inner()
                .scaling_activities;
            acts.iter()
                .any(|a| {
                    a.not_scaled_reasons
                        .iter()
                        .any(|r| r == "AlreadyAtMaxCapacity")
                })
                .then_some(())
                .ok_or_else(|| format!("{} activities", acts.len()))
        }
    })
    .await;
    // Load gone: the fake answers every period alike, so 15 low datapoints
    // are there at once; back to the minimum.
    cpu.set(10.0);
    until_running(&s.ops, 1, Duration::from_secs(30)).await;
    let acts = aas
        .describe_scaling_activities(DescribeScalingActivitiesRequest {
            target: web(),
            include_not_scaled_activities: true,
        })
        .await
        .unwrap()
        .into_inner()
        .scaling_activities;
    let scaled: Vec<&str> = acts
        .iter()
        .filter(|a| a.status_code == "Successful")
        .map(|a| a.description.as_str())
        .collect();
    assert_eq!(
        scaled,
        [
            "Setting desired count to 1.",
            "Setting desired count to 4.",
            "Setting desired count to 2."
        ],
        "{acts:#?}"
    );
    assert!(acts[0]
        .cause
        .starts_with("monitor alarm TargetTracking-service/default/web-AlarmLow-cpu50 in state ALARM triggered policy cpu50"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_policies_and_targets_are_refused_naming_the_field() {
    let (s, _agent) = setup(|_| {}).await;
    let mut aas = AutoScalingServiceClient::new(s.ops.clone());
    let e = aas
        .register_scalable_target(RegisterScalableTargetRequest {
            target: web(),
            min_capacity: Some(1),
            max_capacity: None,
            suspended_state: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("minCapacity"), "{e:?}");
    let e = aas
        .register_scalable_target(RegisterScalableTargetRequest {
            target: web(),
            min_capacity: Some(5),
            max_capacity: Some(2),
            suspended_state: None,
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("maxCapacity"), "{e:?}");
    let e = aas
        .register_scalable_target(RegisterScalableTargetRequest {
            target: Some(ScalableTargetRef {
                cluster: String::new(),
                service: "nope".into(),
            }),
            min_capacity: Some(1),
            max_capacity: Some(2),
            suspended_state: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    aas.register_scalable_target(RegisterScalableTargetRequest {
        target: web(),
        min_capacity: Some(1),
        max_capacity: Some(3),
        suspended_state: None,
    })
    .await
    .unwrap();
    let put = |policy_type: &str, json: &str, alarm: Option<StepAlarm>| PutScalingPolicyRequest {
        target: web(),
        policy_name: "p".into(),
        policy_type: policy_type.into(),
        configuration_json: json.into(),
        alarm,
    };
    let cpu_alarm = || {
        Some(StepAlarm {
            metric_name: "CPUUtilization".into(),
            comparison_operator: "GreaterThanOrEqualToThreshold".into(),
            threshold: 70.0,
            evaluation_periods: 1,
        })
    };
    let cases = [
        (put("Magic", "{}", None), "policyType"),
        (put("TargetTrackingScaling", "{", None), "configurationJson"),
        (
            put(
                "TargetTrackingScaling",
                r#"{"TargetValue": 1, "PredefinedMetricSpecification": {"PredefinedMetricType": "ALBRequestCountPerTarget"}}"#,
                None,
            ),
            "TargetTrackingScalingPolicyConfiguration.PredefinedMetricSpecification.PredefinedMetricType",
        ),
        (
            put(
                "TargetTrackingScaling",
                r#"{"TargetValue": -3, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}}"#,
                None,
            ),
            "TargetTrackingScalingPolicyConfiguration.TargetValue",
        ),
        (
            put(
                "StepScaling",
                r#"{"AdjustmentType": "ChangeInCapacity", "StepAdjustments": [{"ScalingAdjustment": 1}]}"#,
                cpu_alarm(),
            ),
            "StepScalingPolicyConfiguration.StepAdjustments[0]",
        ),
        (
            put(
                "StepScaling",
                r#"{"AdjustmentType": "ChangeInCapacity", "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]}"#,
                None,
            ),
            "alarm",
        ),
    ];
    for (req, field) in cases {
        let e = aas.put_scaling_policy(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    let e = aas
        .put_scheduled_action(PutScheduledActionRequest {
            target: web(),
            scheduled_action_name: "x".into(),
            schedule: "cron(0 8 * * MON-FRI *)".into(),
            min_capacity: Some(2),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        e.message().starts_with("schedule.cron.day-of-week"),
        "{}",
        e.message()
    );
    // A valid step policy is stored with its defaults.
    let ok = aas
        .put_scaling_policy(put(
            "StepScaling",
            r#"{"AdjustmentType": "ChangeInCapacity", "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]}"#,
            cpu_alarm(),
        ))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&ok.configuration_json).unwrap();
    assert_eq!(cfg["Cooldown"], 300);
}
