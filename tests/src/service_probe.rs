//! Watching services from a test: the service's tasks as the scheduler
//! records them, DescribeServices, steady state, and a sampler that checks
//! ECS's deployment bounds (at least the minimum healthy, at most the
//! maximum running) for as long as a test runs it; `berthctl service`
//! off the async runtime, and the waits the service tests share.

use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_proto::v1::service_service_client::ServiceServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::{
    DescribeServicesRequest, DescribeTasksRequest, ListTasksRequest, Service, Task,
};

use crate::{eventually, AuthedChannel, Scheduler};

/// berthctl as `sched`'s admin, off the async runtime (fake agents and
/// samplers keep running meanwhile).
pub async fn ctl(sched: &Scheduler, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let endpoint = sched.endpoint();
    let ca = sched.ca_path();
    let token = sched.admin_token.clone();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::ctl_env(
            &args,
            None,
            None,
            &[
                ("BERTH_ENDPOINT", &endpoint),
                ("BERTH_CA_CERT", &ca.to_string_lossy()),
                ("BERTH_TOKEN", &token),
            ],
        )
    })
    .await
    .expect("berthctl task")
}

/// `berthctl service VERB NAME --taskdef TD EXTRA... --wait --timeout
/// TIMEOUT` through [`ctl`].
pub async fn service_wait(
    sched: &Scheduler,
    verb: &str,
    name: &str,
    td: &str,
    extra: &[&str],
    timeout: &str,
) -> Output {
    let mut args = vec!["service", verb, name, "--taskdef", td];
    args.extend_from_slice(extra);
    args.extend(["--wait", "--timeout", timeout]);
    ctl(sched, &args).await
}

/// Deadline of each gRPC call the probes make: a stalled call fails the
/// test instead of hanging it.
pub const RPC_DEADLINE: Duration = Duration::from_secs(15);

/// `call` within [`RPC_DEADLINE`], its error (or the timeout) as text.
async fn within<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(RPC_DEADLINE, call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {RPC_DEADLINE:?}")),
    }
}

/// The service's tasks (both desired states) as the scheduler records them,
/// or the first failed call: an error is never mistaken for "no tasks".
pub async fn try_service_tasks(ops: &AuthedChannel, name: &str) -> Result<Vec<Task>, String> {
    let mut client = TaskServiceClient::new(ops.clone());
    let mut arns = Vec::new();
    for desired in ["RUNNING", "STOPPED"] {
        // Every page: a service's stopped tasks pile up past one.
        let mut next_token = String::new();
        loop {
            let r = within(
                "ListTasks",
                client.list_tasks(ListTasksRequest {
                    desired_status: desired.to_owned(),
                    service_name: name.to_owned(),
                    next_token: next_token.clone(),
                    ..Default::default()
                }),
            )
            .await?;
            arns.extend(r.task_arns);
            if r.next_token.is_empty() {
                break;
            }
            next_token = r.next_token;
        }
    }
    // A task whose desired status changed between the two listings is in
    // both: describe it once.
    let mut seen = std::collections::HashSet::new();
    arns.retain(|a| seen.insert(a.clone()));
    let mut out = Vec::new();
    for chunk in arns.chunks(100) {
        let r = within(
            "DescribeTasks",
            client.describe_tasks(DescribeTasksRequest {
                cluster: String::new(),
                tasks: chunk.to_vec(),
                ..Default::default()
            }),
        )
        .await?;
        out.extend(
            r.tasks
                .into_iter()
                .filter(|t| t.group == format!("service:{name}")),
        );
    }
    Ok(out)
}

/// [`try_service_tasks`], panicking on a failed call.
pub async fn service_tasks(ops: &AuthedChannel, name: &str) -> Vec<Task> {
    try_service_tasks(ops, name)
        .await
        .unwrap_or_else(|e| panic!("listing the tasks of service {name}: {e}"))
}

/// DescribeServices of one service (panics if it is missing or the call
/// fails or takes longer than [`RPC_DEADLINE`]).
pub async fn describe(ops: &AuthedChannel, name: &str) -> Service {
    within(
        "DescribeServices",
        ServiceServiceClient::new(ops.clone()).describe_services(DescribeServicesRequest {
            cluster: String::new(),
            services: vec![name.to_owned()],
            include: vec!["TAGS".to_owned()],
        }),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .services
    .remove(0)
}

/// RUNNING and still wanted.
pub fn healthy(ts: &[Task]) -> usize {
    ts.iter()
        .filter(|t| t.desired_status == "RUNNING" && t.last_status == "RUNNING")
        .count()
}

/// Not STOPPED (stopping ones still run).
pub fn occupying(ts: &[Task]) -> usize {
    ts.iter().filter(|t| t.last_status != "STOPPED").count()
}

/// The event messages, newest first.
pub fn messages(s: &Service) -> Vec<String> {
    s.events.iter().map(|e| e.message.clone()).collect()
}

/// Waits until the PRIMARY deployment is COMPLETED, no other is ACTIVE and
/// the running count is the desired count.
pub async fn steady(ops: &AuthedChannel, name: &str, limit: Duration) -> Service {
    eventually(limit, "steady state", || async {
        let s = describe(ops, name).await;
        let p = &s.deployments[0];
        let active = s
            .deployments
            .iter()
            .filter(|d| d.status == "ACTIVE")
            .count();
        if p.rollout_state == "COMPLETED"
            && active == 0
            && s.running_count == s.desired_count
            && s.pending_count == 0
        {
            Ok(s)
        } else {
            Err(format!("{:?}", s.deployments))
        }
    })
    .await
}

/// Waits until `count` of the service's tasks are RUNNING and wanted on
/// instances other than `instance` (an ARN suffix).
pub async fn until_elsewhere(
    ops: &AuthedChannel,
    name: &str,
    instance: &str,
    count: usize,
    limit: Duration,
) {
    eventually(limit, "replacements RUNNING elsewhere", || async {
        let ts = try_service_tasks(ops, name).await?;
        let elsewhere = ts
            .iter()
            .filter(|t| t.desired_status == "RUNNING" && t.last_status == "RUNNING")
            .filter(|t| !t.container_instance_arn.ends_with(instance))
            .count();
        (elsewhere == count)
            .then_some(())
            .ok_or(format!("{elsewhere} elsewhere"))
    })
    .await
}

/// Waits until exactly `count` of the service's tasks run, all healthy.
pub async fn until_exactly(ops: &AuthedChannel, name: &str, count: usize, limit: Duration) {
    eventually(limit, "exactly the desired count", || async {
        let ts = try_service_tasks(ops, name).await?;
        (occupying(&ts) == count && healthy(&ts) == count)
            .then_some(())
            .ok_or(format!(
                "{} running, {} healthy",
                occupying(&ts),
                healthy(&ts)
            ))
    })
    .await
}

/// Waits until the service is INACTIVE and none of its tasks runs.
pub async fn until_inactive(ops: &AuthedChannel, name: &str, limit: Duration) {
    eventually(limit, "INACTIVE", || async {
        let s = describe(ops, name).await;
        // A failed listing is "not yet", never "no tasks".
        let left = occupying(&try_service_tasks(ops, name).await?);
        (s.status == "INACTIVE" && left == 0)
            .then_some(())
            .ok_or(format!("{}, {left} tasks not STOPPED", s.status))
    })
    .await
}

/// A running sampler; [`Sampler::finish`] stops it.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<(Vec<String>, Vec<String>, usize)>,
}

impl Sampler {
    /// Samples every `every` until finished, recording each sample with
    /// fewer than `min` healthy or more than `max` running tasks. Returns once
    /// the first sample is taken, so the state before whatever the test does
    /// next is always checked; [`Sampler::finish`] takes one more, so the end
    /// state is too.
    pub async fn start(
        ops: AuthedChannel,
        name: &str,
        min: usize,
        max: usize,
        every: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let name = name.to_owned();
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        let handle = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut first = Some(first_tx);
                let (mut bad, mut errors) = (Vec::new(), Vec::new());
                let mut n = 0;
                loop {
                    let last = stop.load(Ordering::SeqCst);
                    match try_service_tasks(&ops, &name).await {
                        Ok(ts) => {
                            n += 1;
                            let (h, o) = (healthy(&ts), occupying(&ts));
                            if h < min || o > max {
                                bad.push(format!("{h} healthy, {o} running"));
                            }
                        }
                        Err(e) => errors.push(e),
                    }
                    if let Some(tx) = first.take() {
                        let _ = tx.send(());
                    }
                    if last {
                        break;
                    }
                    tokio::time::sleep(every).await;
                }
                (bad, errors, n)
            }
        });
        first_rx.await.expect("sampler's first sample");
        Sampler { stop, handle }
    }

    /// Stops sampling after one last sample: (violations, successful
    /// samples). Panics if any sample's calls failed: a failed probe is
    /// neither a good nor a bad sample.
    pub async fn finish(self) -> (Vec<String>, usize) {
        self.stop.store(true, Ordering::SeqCst);
        let (bad, errors, n) = self.handle.await.expect("sampler task");
        assert!(errors.is_empty(), "the sampler's probes failed: {errors:?}");
        (bad, n)
    }
}
