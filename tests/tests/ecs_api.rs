//! The ECS API with the real AWS clients: Debian's aws CLI v2
//! (`/usr/bin/aws`) and boto3 (the test virtualenv of
//! `scripts/install-deps`), against a real scheduler and agent on real
//! containerd (`berth_tests::Cluster`, `free_slot` block 221). Root is
//! required; a missing client fails the test with its install step.
//!
//! The aws CLI, signed with an operator token's keys:
//! - `register-task-definition --cli-input-json` from a
//!   `describe-task-definition` output (read-only members dropped as the
//!   usual recipe does), and Berth's own `describe-task-definition` output
//!   registered back the same way;
//! - `run-task` of three httpd tasks, `wait tasks-running`, `describe-tasks`
//!   (each task's host port answers HTTP), `list-tasks` paginated (two
//!   pages of `--page-size 2`, more than one request; `--max-items` and
//!   `--starting-token`), exactly the task set;
//! - `create-service`, `wait services-stable`, `list-tasks --service-name`,
//!   `update-service --force-new-deployment` and stable again on a new
//!   deployment with new tasks;
//! - `list-container-instances --filter` (the cluster query language);
//! - `update-container-instances-state --status DRAINING`: the instance
//!   shows DRAINING, one service task of two stops (minimum healthy 50 %,
//!   no other instance) and the standalone task keeps running; ACTIVE again
//!   and the service is stable at two;
//! - `stop-task` and `wait tasks-stopped`; `delete-service` of a service
//!   scaled above 0 is `InvalidParameterException` without `--force`, and
//!   with it the service goes (`wait services-inactive`) and its tasks stop
//!   (`wait tasks-stopped`);
//! - `create-cluster` and `delete-cluster` of an empty cluster;
//!   `delete-cluster` of one with a registered instance is
//!   `ClusterContainsContainerInstancesException`;
//! - errors: a wrong secret is `SignatureDoesNotMatch`; a read-only token
//!   reads (list-clusters, describe-tasks) but its create-cluster is
//!   `AccessDeniedException`; an unknown cluster is
//!   `ClusterNotFoundException`; `create-capacity-provider` is
//!   `UnsupportedFeatureException`;
//! - the audit log (`berthctl audit ls`) holds every ECS mutation with the
//!   token's name and outcome, and no reads.
//!
//! boto3 (`tests/fixtures/ecs_api_boto3.py`, which checks as it goes and
//! prints what it saw): register, run, the `tasks_running` waiter, HTTP on
//! each host port, the `list_tasks` paginator over two pages, the error
//! codes through `ClientError`, `stop_task` and `tasks_stopped`, a service
//! through `services_stable`, a forced new deployment, delete
//! (`services_inactive`, its tasks `tasks_stopped`).
//!
//! The clients' waiters poll every second (`berth_tests::aws`); every wait
//! and every client run has a limit that fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // tests fail loudly by design; Drop polls with std time

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_tests::aws::Aws;
use berth_tests::cluster::{host_port, http_get, tail};
use berth_tests::{eventually, json, ok_stdout, Agent, Cluster, ClusterOptions};
use serde_json::Value;

/// This file's `free_slot` block.
const BLOCK: u8 = 221;

async fn cluster() -> Cluster {
    Cluster::start_in(
        BLOCK,
        ClusterOptions {
            bridge_prefix: "ea".to_owned(),
            ..ClusterOptions::default()
        },
    )
    .await
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A new operator token with `role`, made with berthctl.
fn token(c: &Cluster, name: &str, role: &str) -> String {
    let out = c.sched.ctl(&["token", "create", name, "--role", role]);
    ok_stdout(&out).lines().next().unwrap().trim().to_owned()
}

/// What `register-task-definition` takes from a `describe-task-definition`
/// output: the task definition without its read-only members.
fn register_input(described: &Value) -> Value {
    let mut td = described["taskDefinition"].clone();
    let m = td.as_object_mut().expect("taskDefinition is an object");
    for k in [
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
    ] {
        m.remove(k);
    }
    td
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn set(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

/// `aws ecs list-tasks --cluster default <extra>`: every task ARN.
fn list_tasks(aws: &Aws, extra: &[&str]) -> BTreeSet<String> {
    let mut args = vec!["ecs", "list-tasks", "--cluster", "default"];
    args.extend_from_slice(extra);
    set(&strs(&aws.ok(&args)["taskArns"]))
}

fn describe_tasks(aws: &Aws, arns: &BTreeSet<String>) -> Vec<Value> {
    let mut args = vec!["ecs", "describe-tasks", "--cluster", "default", "--tasks"];
    args.extend(arns.iter().map(String::as_str));
    let v = aws.ok(&args);
    assert_eq!(v["failures"], serde_json::json!([]), "{v:#}");
    v["tasks"].as_array().unwrap().clone()
}

/// `aws ecs wait services-stable` for `name`; a failed wait shows the
/// service, its tasks and the agent's log as they were.
fn wait_stable(c: &Cluster, aws: &Aws, name: &str) {
    let out = aws.run(&[
        "ecs",
        "wait",
        "services-stable",
        "--cluster",
        "default",
        "--services",
        name,
    ]);
    if !out.status.success() {
        let tasks = list_tasks(aws, &["--service-name", name]);
        let described = if tasks.is_empty() {
            Vec::new()
        } else {
            describe_tasks(aws, &tasks)
        };
        panic!(
            "services-stable: {out}\nservice: {:#}\ntasks: {described:#?}\nagent log (tail):\n{}",
            describe_service(aws, name),
            tail(&c.agent.log_text(), 60)
        );
    }
}

fn describe_service(aws: &Aws, name: &str) -> Value {
    let v = aws.ok(&[
        "ecs",
        "describe-services",
        "--cluster",
        "default",
        "--services",
        name,
    ]);
    v["services"][0].clone()
}

/// The page at each task's host port 8080 binding.
async fn serves(tasks: &[Value]) {
    for t in tasks {
        let port = host_port(t, 8080);
        let body = eventually(
            Duration::from_secs(10),
            &format!("HTTP on host port {port}"),
            || async { http_get(port) },
        )
        .await;
        assert!(body.contains("hello-from-berth"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_cli_drives_tasks_services_instances_and_clusters() {
    berth_tests::aws::require_cli();
    let started = tokio::time::Instant::now();
    let step = |what: &str| eprintln!("[aws cli {:6.1?}] {what}", started.elapsed());
    let c = cluster().await;
    step("cluster up");
    let ops_token = token(&c, "ecs-ops", "operator");
    let reader_token = token(&c, "ecs-reader", "read-only");
    let aws = Aws::new(&c.sched, &ops_token);
    let work = tempfile::tempdir().unwrap();

    // -- Errors, before anything exists.
    let (key_id, _) = berth_tests::aws::access_keys(&ops_token);
    let forged = Aws::with_keys(&c.sched, &key_id, "not-the-secret");
    assert_eq!(
        forged.err(&["ecs", "list-clusters"]),
        "SignatureDoesNotMatch"
    );
    let reader = Aws::new(&c.sched, &reader_token);
    assert_eq!(
        reader.err(&["ecs", "create-cluster", "--cluster-name", "ro"]),
        "AccessDeniedException"
    );
    let clusters = strs(&reader.ok(&["ecs", "list-clusters"])["clusterArns"]);
    assert!(
        clusters.iter().any(|a| a.ends_with(":cluster/default")),
        "{clusters:?}"
    );
    assert_eq!(
        aws.err(&["ecs", "list-tasks", "--cluster", "no-such-cluster"]),
        "ClusterNotFoundException"
    );
    assert_eq!(
        aws.err(&[
            "ecs",
            "create-capacity-provider",
            "--name",
            "cp",
            "--auto-scaling-group-provider",
            "autoScalingGroupArn=arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:1:autoScalingGroupName/asg",
        ]),
        "UnsupportedFeatureException"
    );

    step("errors checked");
    // -- A task definition from an ECS describe output, and Berth's own
    // describe output registered back.
    let described: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("ecs-api-httpd.json")).unwrap())
            .unwrap();
    let mut input = register_input(&described);
    input["containerDefinitions"][0]["image"] = c.image.clone().into();
    let file = work.path().join("td.json");
    std::fs::write(&file, input.to_string()).unwrap();
    let cli_input = format!("file://{}", file.display());
    let td = aws.ok(&[
        "ecs",
        "register-task-definition",
        "--cli-input-json",
        &cli_input,
    ])["taskDefinition"]
        .clone();
    assert_eq!(td["family"], "ecs-web", "{td:#}");
    assert_eq!(td["revision"], 1, "{td:#}");
    assert_eq!(td["status"], "ACTIVE", "{td:#}");
    let berth_described = aws.ok(&[
        "ecs",
        "describe-task-definition",
        "--task-definition",
        "ecs-web",
    ]);
    std::fs::write(&file, register_input(&berth_described).to_string()).unwrap();
    let td2 = aws.ok(&[
        "ecs",
        "register-task-definition",
        "--cli-input-json",
        &cli_input,
    ])["taskDefinition"]
        .clone();
    assert_eq!(td2["revision"], 2, "{td2:#}");
    assert_eq!(
        td2["containerDefinitions"], td["containerDefinitions"],
        "the round trip keeps the containers"
    );

    step("task definitions registered");
    // -- Three standalone tasks.
    let run = aws.ok(&[
        "ecs",
        "run-task",
        "--cluster",
        "default",
        "--task-definition",
        "ecs-web:2",
        "--count",
        "3",
        "--started-by",
        "ecs-api-test",
    ]);
    assert_eq!(run["failures"], serde_json::json!([]), "{run:#}");
    let tasks: BTreeSet<String> = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["taskArn"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tasks.len(), 3, "{run:#}");
    let mut wait = vec![
        "ecs",
        "wait",
        "tasks-running",
        "--cluster",
        "default",
        "--debug",
    ];
    wait.push("--tasks");
    wait.extend(tasks.iter().map(String::as_str));
    let waited = aws.run(&wait);
    assert!(waited.status.success(), "tasks-running: {waited}");
    // The waiter polled with the harness's short delay, not ECS's 6 s.
    assert!(
        waited
            .stderr
            .contains(".aws/models/ecs/2014-11-13/waiters-2.json"),
        "the CLI did not load the harness's waiter model: {waited}"
    );
    let described = describe_tasks(&aws, &tasks);
    assert!(
        described.iter().all(|t| t["lastStatus"] == "RUNNING"),
        "{described:#?}"
    );
    let ports: BTreeSet<u16> = described.iter().map(|t| host_port(t, 8080)).collect();
    assert_eq!(ports.len(), 3, "three different host ports: {ports:?}");
    serves(&described).await;
    // A read-only token reads them.
    let mut ro = vec!["ecs", "describe-tasks", "--cluster", "default", "--tasks"];
    ro.extend(tasks.iter().map(String::as_str));
    assert_eq!(reader.ok(&ro)["tasks"].as_array().unwrap().len(), 3);

    step("tasks running and serving");
    // -- list-tasks over pages: the CLI follows nextToken itself...
    let debug = aws.run(&[
        "ecs",
        "list-tasks",
        "--cluster",
        "default",
        "--started-by",
        "ecs-api-test",
        "--page-size",
        "2",
        "--debug",
    ]);
    let all = set(&strs(&debug.json()["taskArns"]));
    assert_eq!(all, tasks, "all pages together");
    let requests = debug
        .stderr
        .lines()
        .filter(|l| l.contains("Making request for OperationModel(name=ListTasks)"))
        .count();
    assert!(
        requests >= 2,
        "pages of 2 for 3 tasks: {requests} request(s)"
    );
    // ... and hands out its own token between runs.
    let first = aws.ok(&[
        "ecs",
        "list-tasks",
        "--cluster",
        "default",
        "--started-by",
        "ecs-api-test",
        "--page-size",
        "2",
        "--max-items",
        "2",
    ]);
    let page1 = strs(&first["taskArns"]);
    assert_eq!(page1.len(), 2, "{first:#}");
    let next = first["NextToken"]
        .as_str()
        .unwrap_or_else(|| panic!("no NextToken after 2 of 3: {first:#}"));
    let second = aws.ok(&[
        "ecs",
        "list-tasks",
        "--cluster",
        "default",
        "--started-by",
        "ecs-api-test",
        "--page-size",
        "2",
        "--starting-token",
        next,
    ]);
    let page2 = strs(&second["taskArns"]);
    assert!(second.get("NextToken").is_none(), "{second:#}");
    let mut both = page1.clone();
    both.extend(page2.clone());
    assert_eq!(both.len(), 3, "no task twice: {page1:?} {page2:?}");
    assert_eq!(set(&both), tasks);

    step("pages listed");
    // Two of them stop; the third runs on beside the service.
    let mut it = tasks.iter();
    let (s1, s2, standalone) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    for t in [s1, s2] {
        let stopped = aws.ok(&[
            "ecs",
            "stop-task",
            "--cluster",
            "default",
            "--task",
            t,
            "--reason",
            "ecs api test",
        ]);
        assert_eq!(stopped["task"]["desiredStatus"], "STOPPED", "{stopped:#}");
    }
    aws.ok(&[
        "ecs",
        "wait",
        "tasks-stopped",
        "--cluster",
        "default",
        "--tasks",
        s1,
        s2,
    ]);

    step("two tasks stopped");
    // -- A service, stable, then a forced new deployment.
    let created = aws.ok(&[
        "ecs",
        "create-service",
        "--cluster",
        "default",
        "--service-name",
        "web",
        "--task-definition",
        "ecs-web:2",
        "--desired-count",
        "2",
        "--deployment-configuration",
        "minimumHealthyPercent=50,maximumPercent=200",
    ]);
    assert_eq!(created["service"]["status"], "ACTIVE", "{created:#}");
    wait_stable(&c, &aws, "web");
    let s = describe_service(&aws, "web");
    assert_eq!(s["runningCount"], 2, "{s:#}");
    assert_eq!(s["deployments"].as_array().unwrap().len(), 1, "{s:#}");
    let first_deployment = s["deployments"][0]["id"].as_str().unwrap().to_owned();
    let old = list_tasks(&aws, &["--service-name", "web"]);
    assert_eq!(old.len(), 2, "the service's tasks only: {old:?}");
    let old_described = describe_tasks(&aws, &old);
    assert!(
        old_described.iter().all(|t| t["group"] == "service:web"),
        "{old_described:#?}"
    );
    serves(&old_described).await;

    step("service stable");
    let updated = aws.ok(&[
        "ecs",
        "update-service",
        "--cluster",
        "default",
        "--service",
        "web",
        "--force-new-deployment",
    ]);
    let primary = updated["service"]["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["status"] == "PRIMARY")
        .unwrap_or_else(|| panic!("no PRIMARY deployment: {updated:#}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(primary, first_deployment, "a new deployment");
    wait_stable(&c, &aws, "web");
    let s = describe_service(&aws, "web");
    let deployments = s["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 1, "{s:#}");
    assert_eq!(deployments[0]["id"], primary.as_str(), "{s:#}");
    assert_eq!(s["runningCount"], 2, "{s:#}");
    let new = list_tasks(&aws, &["--service-name", "web"]);
    assert_eq!(new.len(), 2, "{new:?}");
    assert!(new.is_disjoint(&old), "new tasks: {old:?} -> {new:?}");
    serves(&describe_tasks(&aws, &new)).await;

    step("new deployment stable");
    // -- Draining the only instance: with a 50 % minimum and nowhere else
    // to go, one service task of two stops; the standalone task stays.
    let instance = strs(
        &aws.ok(&["ecs", "list-container-instances", "--cluster", "default"])
            ["containerInstanceArns"],
    )
    .pop()
    .expect("the agent's instance");
    // The cluster query language filters them.
    let filtered = |expr: &str| {
        strs(
            &aws.ok(&[
                "ecs",
                "list-container-instances",
                "--cluster",
                "default",
                "--filter",
                expr,
            ])["containerInstanceArns"],
        )
    };
    assert_eq!(
        filtered("attribute:ecs.os-type == linux"),
        std::slice::from_ref(&instance)
    );
    assert!(filtered("attribute:ecs.os-type == windows").is_empty());
    let drained = aws.ok(&[
        "ecs",
        "update-container-instances-state",
        "--cluster",
        "default",
        "--container-instances",
        &instance,
        "--status",
        "DRAINING",
    ]);
    assert_eq!(drained["failures"], serde_json::json!([]), "{drained:#}");
    assert_eq!(
        drained["containerInstances"][0]["status"], "DRAINING",
        "{drained:#}"
    );
    let shown = aws.ok(&[
        "ecs",
        "describe-container-instances",
        "--cluster",
        "default",
        "--container-instances",
        &instance,
    ]);
    assert_eq!(
        shown["containerInstances"][0]["status"], "DRAINING",
        "{shown:#}"
    );
    let left = eventually(
        Duration::from_secs(30),
        "one service task left on the DRAINING instance",
        || async {
            let s = describe_service(&aws, "web");
            let listed = list_tasks(&aws, &["--service-name", "web"]);
            if s["runningCount"] == 1 && listed.len() == 1 {
                Ok(listed)
            } else {
                Err(format!("{listed:?} {s:#}"))
            }
        },
    )
    .await;
    assert!(
        left.is_subset(&new),
        "no task started while DRAINING: {left:?}"
    );
    let gone: BTreeSet<String> = new.difference(&left).cloned().collect();
    let stopped = describe_tasks(&aws, &gone);
    assert_eq!(stopped[0]["desiredStatus"], "STOPPED", "{stopped:#?}");
    let kept = describe_tasks(&aws, &[standalone.clone()].into());
    assert_eq!(kept[0]["lastStatus"], "RUNNING", "{kept:#?}");
    assert_eq!(kept[0]["desiredStatus"], "RUNNING", "{kept:#?}");

    step("drained");
    let active = aws.ok(&[
        "ecs",
        "update-container-instances-state",
        "--cluster",
        "default",
        "--container-instances",
        &instance,
        "--status",
        "ACTIVE",
    ]);
    assert_eq!(
        active["containerInstances"][0]["status"], "ACTIVE",
        "{active:#}"
    );
    wait_stable(&c, &aws, "web");
    assert_eq!(describe_service(&aws, "web")["runningCount"], 2);

    step("stable again");
    // -- stop-task, delete-service.
    let stopped = aws.ok(&[
        "ecs",
        "stop-task",
        "--cluster",
        "default",
        "--task",
        standalone,
    ]);
    assert_eq!(stopped["task"]["desiredStatus"], "STOPPED", "{stopped:#}");
    aws.ok(&[
        "ecs",
        "wait",
        "tasks-stopped",
        "--cluster",
        "default",
        "--tasks",
        standalone,
    ]);
    assert_eq!(
        aws.err(&[
            "ecs",
            "delete-service",
            "--cluster",
            "default",
            "--service",
            "web",
        ]),
        "InvalidParameterException",
        "a service scaled above 0 is deleted with --force only"
    );
    let serving = list_tasks(&aws, &["--service-name", "web"]);
    assert_eq!(serving.len(), 2, "{serving:?}");
    let deleted = aws.ok(&[
        "ecs",
        "delete-service",
        "--cluster",
        "default",
        "--service",
        "web",
        "--force",
    ]);
    let status = deleted["service"]["status"].as_str().unwrap_or_default();
    assert!(
        status == "DRAINING" || status == "INACTIVE",
        "delete-service answers the service DRAINING: {deleted:#}"
    );
    aws.ok(&[
        "ecs",
        "wait",
        "services-inactive",
        "--cluster",
        "default",
        "--services",
        "web",
    ]);
    // Its tasks stop with it.
    let mut wait = vec![
        "ecs",
        "wait",
        "tasks-stopped",
        "--cluster",
        "default",
        "--tasks",
    ];
    wait.extend(serving.iter().map(String::as_str));
    aws.ok(&wait);

    step("service deleted");
    // -- Clusters.
    let made = aws.ok(&["ecs", "create-cluster", "--cluster-name", "ecs-empty"]);
    assert_eq!(made["cluster"]["status"], "ACTIVE", "{made:#}");
    let removed = aws.ok(&["ecs", "delete-cluster", "--cluster", "ecs-empty"]);
    assert_eq!(removed["cluster"]["status"], "INACTIVE", "{removed:#}");
    // A cluster with a registered instance (registered, never run).
    aws.ok(&["ecs", "create-cluster", "--cluster-name", "ecs-busy"]);
    let (id, code, fingerprint) = c.sched.activation("ecs-busy", &[]);
    let host = Agent::unregistered(&c.sched, &work.path().join("busy-host"));
    ok_stdout(&host.register(&id, &code, &fingerprint));
    assert_eq!(
        aws.err(&["ecs", "delete-cluster", "--cluster", "ecs-busy"]),
        "ClusterContainsContainerInstancesException"
    );

    step("clusters checked");
    // -- The audit log: every mutation above, with the token's name.
    let audit = json(&c.sched.ctl(&[
        "audit", "ls", "--since", "1h", "--limit", "1000", "-o", "json",
    ]));
    let events = audit["events"].as_array().unwrap();
    let by = |who: &str, method: &str, outcome: &str| {
        events.iter().any(|e| {
            e["tokenName"] == who
                && e["method"].as_str().is_some_and(|m| m.ends_with(method))
                && e["outcome"] == outcome
        })
    };
    for method in [
        "/RegisterTaskDefinition",
        "/RunTask",
        "/StopTask",
        "/CreateService",
        "/UpdateService",
        "/UpdateContainerInstancesState",
        "/DeleteService",
        "/CreateCluster",
        "/DeleteCluster",
    ] {
        assert!(
            by("ecs-ops", method, "OK"),
            "{method} by ecs-ops: {audit:#}"
        );
    }
    assert!(
        by("ecs-reader", "/CreateCluster", "AccessDeniedException"),
        "{audit:#}"
    );
    assert!(
        by(
            "ecs-ops",
            "/DeleteCluster",
            "ClusterContainsContainerInstancesException"
        ),
        "{audit:#}"
    );
    assert!(
        !events.iter().any(|e| e["method"]
            .as_str()
            .is_some_and(|m| m.contains("/List") || m.contains("/Describe"))),
        "reads are not audited: {audit:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_drives_tasks_and_services() {
    berth_tests::aws::python();
    let c = cluster().await;
    let ops_token = token(&c, "ecs-boto3", "operator");
    let mut aws = Aws::new(&c.sched, &ops_token);
    // The whole script: its waiters give up after 60 polls each.
    aws.limit = Duration::from_secs(300);
    let out = aws.python(&fixture("ecs_api_boto3.py"), &[&c.image]);
    let v = out.json();
    eprintln!("boto3: {v:#}");
    assert_eq!(v["ok"], true, "{out}");
    let tasks: BTreeSet<String> = strs(&v["tasks"]).into_iter().collect();
    assert_eq!(tasks.len(), 3, "{v:#}");
    assert_eq!(set(&strs(&v["listed"])), tasks, "{v:#}");
    assert!(v["list_pages"].as_u64().unwrap() >= 2, "{v:#}");
    assert!(v["list_requests"].as_u64().unwrap() >= 2, "{v:#}");
    assert_eq!(v["errors"]["unknown_cluster"], "ClusterNotFoundException");
    assert_eq!(v["errors"]["unsupported"], "UnsupportedFeatureException");
    assert_eq!(v["errors"]["wrong_secret"], "SignatureDoesNotMatch");
    assert_ne!(v["deployments"][0], v["deployments"][1], "{v:#}");
    // Berth's own record agrees that the service is gone and the tasks stopped.
    for t in &tasks {
        let id = berth_proto::arn::short_id(t);
        assert_eq!(c.describe(id)["desiredStatus"], "STOPPED");
    }
}
