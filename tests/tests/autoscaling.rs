//! Service auto scaling for real: a one-task service whose busybox burns
//! CPU far above its reservation, registered as a scalable target (1–3)
//! with a target-tracking policy on `ECSServiceAverageCPUUtilization`
//! (target 50 %). The real agent samples its cgroups every second
//! (`BERTH_STATS_INTERVAL`) and the scheduler's metric period is 2 s
//! (`BERTH_AUTOSCALING_PERIOD`), so three breaching datapoints come within
//! seconds: the service scales out to its max, the activity says why in
//! Application Auto Scaling's words, and the new tasks run.
//!
//! Root and real containerd (the single-host harness, `free_slot` block
//! 234); everything listens on 127.0.0.1 and every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // tests fail loudly by design

use std::time::Duration;

use berth_tests::cluster::tail;
use berth_tests::{eventually, json, ok_stdout, Cluster, ClusterOptions};

const BLOCK: u8 = 234;

/// A quarter of a core reserved, a busy loop burning what it gets.
const BURN: &str = r#"{"family":"burn","cpu":"256","memory":"64","containerDefinitions":[
    {"name":"burn","image":"IMAGE","essential":true,"entryPoint":["sh","-c"],
     "command":["while :; do :; done"]}]}"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_cpu_bound_service_scales_out_to_its_max_on_the_agents_readings() {
    let c = Cluster::start_in(
        BLOCK,
        ClusterOptions {
            bridge_prefix: "ba".to_owned(),
            scheduler_env: vec![("BERTH_AUTOSCALING_PERIOD".into(), "2s".into())],
            agent_env: vec![("BERTH_STATS_INTERVAL".into(), "1s".into())],
            ..ClusterOptions::default()
        },
    )
    .await;
    c.register(BURN);
    ok_stdout(&c.sched.ctl(&[
        "service",
        "create",
        "burner",
        "--taskdef",
        "burn",
        "--desired-count",
        "1",
    ]));
    ok_stdout(&c.sched.ctl(&[
        "service",
        "autoscaling",
        "register",
        "burner",
        "--min",
        "1",
        "--max",
        "3",
    ]));
    ok_stdout(&c.sched.ctl(&[
        "service",
        "autoscaling",
        "put-policy",
        "burner",
        "cpu50",
        "--target-tracking",
        r#"{"TargetValue":50,"PredefinedMetricSpecification":{"PredefinedMetricType":"ECSServiceAverageCPUUtilization"}}"#,
    ]));

    // The burner's readings breach 50 % of its reservation: out to 3.
    let service = eventually(
        Duration::from_secs(120),
        "the service scaled out to 3 tasks, all running",
        || async {
            let v = json(
                &c.sched
                    .ctl(&["service", "describe", "burner", "-o", "json"]),
            );
            let s = &v["services"][0];
            if s["desiredCount"] == 3 && s["runningCount"] == 3 {
                Ok(v)
            } else {
                Err(format!(
                    "desired {} running {}\nagent log:\n{}",
                    s["desiredCount"],
                    s["runningCount"],
                    tail(&c.agent.log_text(), 8)
                ))
            }
        },
    )
    .await;
    eprintln!("{service:#}");

    // The activity in Application Auto Scaling's words.
    let acts = json(&c.sched.ctl(&[
        "service",
        "autoscaling",
        "activities",
        "burner",
        "-o",
        "json",
    ]));
    let text = acts.to_string();
    assert!(text.contains("Successful"), "{acts:#}");
    assert!(
        text.contains("cpu50") && text.contains("desired count"),
        "the cause names the policy and the change: {acts:#}"
    );
    // The readings behind it: every task uses more than its reservation.
    let top = json(
        &c.sched
            .ctl(&["top", "--once", "--service", "burner", "-o", "json"]),
    );
    let rows = top.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{top:#}");
    // Max reached: it stays at 3 (no datapoint can push it beyond).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let v = json(
        &c.sched
            .ctl(&["service", "describe", "burner", "-o", "json"]),
    );
    assert_eq!(v["services"][0]["desiredCount"], 3, "{v:#}");
}
