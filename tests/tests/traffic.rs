//! Traffic behind a real HAProxy kept in sync by `berth-lb haproxy`: a
//! 4-task HTTP service on 3 hosts (the multihost harness: real scheduler,
//! agents, containerd, runc and CNI) behind a target group, and a client
//! on loopback sending a steady stream of requests (50 per second) through
//! HAProxy while the service changes: two rolling deployments (min 100 /
//! max 200 and min 50 / max 100), a scale-in from 4 to 2, a drain of one
//! instance and a task-definition update that changes the container port.
//! Each of these must lose **no** request. Then one host dies (agent,
//! containerd and tasks killed): the failures until the targets are
//! marked down are counted and timed, and printed for BENCHMARKS.md.
//!
//! The load balancer also has an HTTPS listener with ALB-style rules:
//! `api.test` and the path prefix `/api/` go to a second service's target
//! group, everything else to the first's, checked with curl against the
//! listener's certificate.
//!
//! Root is required (network namespaces, containerd) and so are Debian's
//! `haproxy` and `curl`; without them the test fails saying so.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
#![allow(clippy::disallowed_methods)] // the client thread times with std

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_proto::v1::container_instance_service_client::ContainerInstanceServiceClient;
use berth_proto::v1::service_service_client::ServiceServiceClient;
use berth_proto::v1::target_group_service_client::TargetGroupServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::{
    CreateServiceRequest, CreateTargetGroupRequest, DeploymentConfiguration,
    DescribeServicesRequest, DescribeTargetHealthRequest, DescribeTasksRequest, HealthCheck,
    ListTasksRequest, LoadBalancer, LoadBalancerUpdate, UpdateContainerInstancesStateRequest,
    UpdateServiceRequest,
};
use berth_tests::multihost::{Hosts, HostsOptions};
use berth_tests::{eventually, AuthedChannel};

/// busybox httpd answering `<revision> <hostname>` on container port PORT.
fn httpd(image: &str, revision: &str, port: u16) -> String {
    format!(
        r#"{{"family":"lbweb","networkMode":"bridge","containerDefinitions":[{{
        "name":"web","image":"{image}","memory":32,"essential":true,
        "entryPoint":["sh","-c"],
        "command":["mkdir -p /www && echo {revision} $(hostname) > /www/index.html && exec httpd -f -p {port} -h /www"],
        "environment":[{{"name":"REVISION","value":"{revision}"}}],
        "portMappings":[{{"containerPort":{port},"hostPort":0}}]}}]}}"#
    )
}

/// What the client saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    /// (time since the stream started, what went wrong)
    failed: Vec<(Duration, String)>,
}

/// A client on loopback: one request every 20 ms (each on its own
/// connection, 3 s to answer), counting failures.
struct Client {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<Mutex<Vec<(Duration, String)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Client {
    fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed: Arc<Mutex<Vec<(Duration, String)>>> = Arc::default();
        let thread = std::thread::spawn({
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            move || {
                let t0 = Instant::now();
                let mut next = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    match get(addr) {
                        Ok(_) => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => failed.lock().unwrap().push((t0.elapsed(), e)),
                    }
                    next += Duration::from_millis(20);
                    if let Some(d) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(d);
                    } else {
                        next = Instant::now();
                    }
                }
            }
        });
        Self {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    /// What it saw since the last call.
    fn take(&self) -> Tally {
        Tally {
            ok: self.ok.swap(0, Ordering::SeqCst),
            failed: std::mem::take(&mut *self.failed.lock().unwrap()),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `GET /` through the load balancer: the body of a 200, else an error.
fn get(addr: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok();
    s.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("read: {e}"))?;
    if out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200") {
        Ok(out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
    } else {
        Err(out.lines().next().unwrap_or("empty answer").to_owned())
    }
}

/// `berth-lb haproxy` with one HTTP listener on loopback, and the HAProxy
/// it supervises.
struct Lb {
    child: Option<Child>,
    addr: SocketAddr,
    /// The HTTPS listener.
    tls_addr: SocketAddr,
    /// The PEM of the HTTPS listener's (self-signed) certificate.
    tls_cert: PathBuf,
    dir: tempfile::TempDir,
}

impl Lb {
    fn start(hosts: &Hosts) -> Self {
        berth_testkit::require_binary("haproxy", "haproxy");
        let dir = tempfile::tempdir().unwrap();
        let port = berth_tests::free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let tls_addr: SocketAddr = format!("127.0.0.1:{}", berth_tests::free_port())
            .parse()
            .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["web.test".into(), "api.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let tls_cert = dir.path().join("listener.crt");
        let tls_key = dir.path().join("listener.key");
        std::fs::write(&tls_cert, cert.pem()).unwrap();
        std::fs::write(&tls_key, key.serialize_pem()).unwrap();
        let config = dir.path().join("lb.toml");
        std::fs::write(
            &config,
            format!(
                r#"[scheduler]
endpoint = "{endpoint}"
ca_cert = "{ca}"

[haproxy]
state_dir = "{state}"
slots = 8
reapply_seconds = 2

[[listener]]
name = "web"
bind = "{addr}"
protocol = "HTTP"
default_target_group = "web"

[[listener]]
name = "tls"
bind = "{tls_addr}"
protocol = "HTTPS"
certificate = "{crt}"
key = "{key}"
default_target_group = "web"

[[listener.rule]]
priority = 10
host = ["api.test"]
target_group = "api"

[[listener.rule]]
priority = 20
path_prefix = ["/api/"]
target_group = "api"
"#,
                crt = tls_cert.display(),
                key = tls_key.display(),
                endpoint = hosts.sched.endpoint(),
                ca = hosts.sched.ca_path().display(),
                state = dir.path().join("state").display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("lb.log")).unwrap();
        let child = Command::new(berth_tests::bin("berth-lb"))
            .args(["haproxy", "--config"])
            .arg(&config)
            .env("BERTH_TOKEN", &hosts.sched.admin_token)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start berth-lb");
        Self {
            child: Some(child),
            addr,
            tls_addr,
            tls_cert,
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("lb.log")).unwrap_or_default()
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            berth_tests::kill9(&mut c);
        }
        // Whatever HAProxy is left of this test (its config is in our dir).
        let _ = Command::new("pkill")
            .args(["-9", "-f", &self.state_dir().display().to_string()])
            .status();
    }
}

async fn target_states(ops: &AuthedChannel) -> Vec<(String, u32, String)> {
    let mut v: Vec<(String, u32, String)> = TargetGroupServiceClient::new(ops.clone())
        .describe_target_health(DescribeTargetHealthRequest {
            target_group: "web".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .target_health_descriptions
        .into_iter()
        .map(|d| {
            (
                d.target_health.unwrap_or_default().state,
                d.container_port,
                d.task_arn,
            )
        })
        .collect();
    v.sort();
    v
}

/// Until the service has one COMPLETED deployment with `n` running tasks
/// and exactly `n` healthy targets on container port `port`.
async fn until_steady(ops: &AuthedChannel, n: usize, port: u32, what: &str) {
    eventually(Duration::from_secs(120), what, || async {
        let svc = ServiceServiceClient::new(ops.clone())
            .describe_services(DescribeServicesRequest {
                services: vec!["web".into()],
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner()
            .services
            .remove(0);
        let states = target_states(ops).await;
        let live: Vec<_> = svc
            .deployments
            .iter()
            .filter(|d| d.status != "INACTIVE")
            .collect();
        let steady = live.len() == 1
            && live[0].rollout_state == "COMPLETED"
            && svc.running_count as usize == n
            && states.len() == n
            && states.iter().all(|(s, p, _)| s == "healthy" && *p == port);
        if steady {
            Ok(())
        } else {
            Err(format!(
                "deployments {:?}, running {}, targets {states:?}",
                svc.deployments
                    .iter()
                    .map(|d| (d.status.clone(), d.rollout_state.clone()))
                    .collect::<Vec<_>>(),
                svc.running_count
            ))
        }
    })
    .await;
}

/// The container instances (ARNs) of the service's running tasks.
async fn task_instances(ops: &AuthedChannel) -> Vec<String> {
    let arns = TaskServiceClient::new(ops.clone())
        .list_tasks(ListTasksRequest {
            service_name: "web".into(),
            desired_status: "RUNNING".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task_arns;
    if arns.is_empty() {
        return Vec::new();
    }
    TaskServiceClient::new(ops.clone())
        .describe_tasks(DescribeTasksRequest {
            tasks: arns,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tasks
        .into_iter()
        .map(|t| t.container_instance_arn)
        .collect()
}

/// `curl https://HOST/PATH` through the HTTPS listener, trusting only its
/// certificate: the body.
fn curl_tls(lb: &Lb, host: &str, path: &str) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "5", "--cacert"])
        .arg(&lb.tls_cert)
        .arg("--resolve")
        .arg(format!("{host}:{}:127.0.0.1", lb.tls_addr.port()))
        .arg(format!("https://{host}:{}{path}", lb.tls_addr.port()))
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn deployment(min: i32, max: i32) -> Option<DeploymentConfiguration> {
    Some(DeploymentConfiguration {
        minimum_healthy_percent: Some(min),
        maximum_percent: Some(max),
        deployment_circuit_breaker: None,
    })
}

fn assert_no_failures(t: &Tally, what: &str) {
    println!(
        "{what}: {} requests answered, {} failed",
        t.ok,
        t.failed.len()
    );
    assert!(t.ok > 0, "{what}: the client sent nothing");
    assert!(
        t.failed.is_empty(),
        "{what}: {} of {} requests failed: {:?}",
        t.failed.len(),
        t.ok as usize + t.failed.len(),
        &t.failed[..t.failed.len().min(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_behind_haproxy_loses_no_request_while_it_changes() {
    // A lost host's tasks are replaced after 4 s, so the last phase finds
    // the service whole again on the two hosts left.
    let mut hosts = Hosts::start_with(
        3,
        HostsOptions {
            scheduler_env: vec![("BERTH_LOST_AFTER".into(), "4s".into())],
            ..Default::default()
        },
    )
    .await;
    let ops = hosts.sched.authed_channel().await;
    let image = hosts.image.clone();
    berth_testkit::require_binary("curl", "curl");
    for (rev, port) in [("r1", 80), ("r2", 80), ("r3", 80), ("r4", 8080)] {
        hosts.register(&httpd(&image, rev, port));
    }
    // The second service answers "api <host>" on every path (its files
    // include api/index.html for the path rule).
    hosts.register(&format!(
        r#"{{"family":"lbapi","networkMode":"bridge","containerDefinitions":[{{
        "name":"api","image":"{image}","memory":32,"essential":true,
        "entryPoint":["sh","-c"],
        "command":["mkdir -p /www/api && echo api $(hostname) > /www/index.html && cp /www/index.html /www/api/index.html && exec httpd -f -p 80 -h /www"],
        "portMappings":[{{"containerPort":80,"hostPort":0}}]}}]}}"#
    ));
    TargetGroupServiceClient::new(ops.clone())
        .create_target_group(CreateTargetGroupRequest {
            name: "web".into(),
            protocol: "HTTP".into(),
            port: 80,
            health_check: Some(HealthCheck {
                path: "/".into(),
                interval_seconds: 5,
                timeout_seconds: 2,
                healthy_threshold: 2,
                unhealthy_threshold: 2,
                ..Default::default()
            }),
            deregistration_delay_seconds: Some(3),
            slow_start_seconds: None,
        })
        .await
        .unwrap();
    let lb_to = |port: u32| LoadBalancer {
        target_group_arn: "web".into(),
        container_name: "web".into(),
        container_port: port,
    };
    ServiceServiceClient::new(ops.clone())
        .create_service(CreateServiceRequest {
            service_name: "web".into(),
            task_definition: "lbweb:1".into(),
            desired_count: Some(4),
            deployment_configuration: deployment(100, 200),
            load_balancers: vec![lb_to(80)],
            ..Default::default()
        })
        .await
        .unwrap();
    until_steady(&ops, 4, 80, "4 healthy targets of lbweb:1").await;
    TargetGroupServiceClient::new(ops.clone())
        .create_target_group(CreateTargetGroupRequest {
            name: "api".into(),
            protocol: "HTTP".into(),
            port: 80,
            health_check: Some(HealthCheck {
                interval_seconds: 5,
                timeout_seconds: 2,
                healthy_threshold: 2,
                ..Default::default()
            }),
            deregistration_delay_seconds: Some(1),
            slow_start_seconds: None,
        })
        .await
        .unwrap();
    ServiceServiceClient::new(ops.clone())
        .create_service(CreateServiceRequest {
            service_name: "api".into(),
            task_definition: "lbapi".into(),
            desired_count: Some(1),
            load_balancers: vec![LoadBalancer {
                target_group_arn: "api".into(),
                container_name: "api".into(),
                container_port: 80,
            }],
            ..Default::default()
        })
        .await
        .unwrap();

    let lb = Lb::start(&hosts);
    // One HTTPS listener, two target groups: by host, by path, by default.
    eventually(Duration::from_secs(60), "HTTPS rules to route", || async {
        let by_host = curl_tls(&lb, "api.test", "/")?;
        let by_path = curl_tls(&lb, "web.test", "/api/")?;
        let default = curl_tls(&lb, "web.test", "/")?;
        if by_host.starts_with("api ") && by_path.starts_with("api ") && default.starts_with("r1 ")
        {
            Ok(())
        } else {
            Err(format!(
                "api.test/ → {by_host:?}, web.test/api/ → {by_path:?}, web.test/ → {default:?}; \
                 berth-lb log:\n{}",
                lb.log()
            ))
        }
    })
    .await;
    // The certificate is checked: a name it does not carry fails.
    assert!(curl_tls(&lb, "other.test", "/").is_err());
    eventually(
        Duration::from_secs(30),
        "HAProxy to serve lbweb:1",
        || async {
            let body = get(lb.addr).map_err(|e| format!("{e}; berth-lb log:\n{}", lb.log()))?;
            if body.starts_with("r1 ") {
                Ok(())
            } else {
                Err(body)
            }
        },
    )
    .await;
    let client = Client::start(lb.addr);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_no_failures(&client.take(), "steady");

    let update = |td: &str, cfg: Option<DeploymentConfiguration>| UpdateServiceRequest {
        service: "web".into(),
        task_definition: td.to_owned(),
        deployment_configuration: cfg,
        ..Default::default()
    };
    // 1. A rolling deployment at min 100 / max 200.
    ServiceServiceClient::new(ops.clone())
        .update_service(update("lbweb:2", deployment(100, 200)))
        .await
        .unwrap();
    until_steady(&ops, 4, 80, "lbweb:2 rolled out at 100/200").await;
    assert_eq!(get(lb.addr).unwrap().split(' ').next(), Some("r2"));
    assert_no_failures(&client.take(), "rolling deployment at min 100 / max 200");

    // 2. A rolling deployment at min 50 / max 100.
    ServiceServiceClient::new(ops.clone())
        .update_service(update("lbweb:3", deployment(50, 100)))
        .await
        .unwrap();
    until_steady(&ops, 4, 80, "lbweb:3 rolled out at 50/100").await;
    assert_no_failures(&client.take(), "rolling deployment at min 50 / max 100");

    // 3. Scale-in from 4 to 2.
    ServiceServiceClient::new(ops.clone())
        .update_service(UpdateServiceRequest {
            service: "web".into(),
            desired_count: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    until_steady(&ops, 2, 80, "scaled in to 2").await;
    assert_no_failures(&client.take(), "scale-in from 4 to 2");

    // 4. One instance drains: its tasks move to the others.
    let drained = task_instances(&ops)
        .await
        .first()
        .cloned()
        .expect("a task's instance");
    ContainerInstanceServiceClient::new(ops.clone())
        .update_container_instances_state(UpdateContainerInstancesStateRequest {
            container_instances: vec![drained.clone()],
            status: "DRAINING".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    until_steady(&ops, 2, 80, "the drained instance's tasks replaced").await;
    eventually(
        Duration::from_secs(60),
        "the drained instance empty",
        || async {
            let left = task_instances(&ops)
                .await
                .iter()
                .filter(|i| **i == drained)
                .count();
            if left == 0 {
                Ok(())
            } else {
                Err(format!("{left} tasks left"))
            }
        },
    )
    .await;
    assert_no_failures(&client.take(), "drain of one instance");
    ContainerInstanceServiceClient::new(ops.clone())
        .update_container_instances_state(UpdateContainerInstancesStateRequest {
            container_instances: vec![drained],
            status: "ACTIVE".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    // 5. The task definition's port changes (80 → 8080) with the load
    // balancer's container port, in one UpdateService, back at 4 tasks.
    ServiceServiceClient::new(ops.clone())
        .update_service(UpdateServiceRequest {
            service: "web".into(),
            task_definition: "lbweb:4".into(),
            desired_count: Some(4),
            deployment_configuration: deployment(100, 200),
            load_balancers: Some(LoadBalancerUpdate {
                load_balancers: vec![lb_to(8080)],
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    until_steady(&ops, 4, 8080, "lbweb:4 on port 8080").await;
    assert_eq!(get(lb.addr).unwrap().split(' ').next(), Some("r4"));
    assert_no_failures(&client.take(), "port change 80 → 8080");

    // 6. One host dies with its tasks: requests may fail until its targets
    // are marked down. Measured, not asserted to zero.
    let busy = task_instances(&ops).await;
    let victim = (0..hosts.len())
        .find(|i| {
            let arn = hosts.instance(*i)["containerInstanceArn"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            busy.contains(&arn)
        })
        .expect("a host with a task");
    client.take();
    let killed_at = Instant::now();
    hosts.host_mut(victim).kill();
    eventually(
        Duration::from_secs(60),
        "the dead host's targets out",
        || async {
            let states = target_states(&ops).await;
            if states.iter().any(|(s, _, _)| s == "unavailable") {
                Ok(())
            } else {
                Err(format!("{states:?}"))
            }
        },
    )
    .await;
    let marked_down = killed_at.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t = client.take();
    let window = match (t.failed.first(), t.failed.last()) {
        (Some(a), Some(b)) => b.0.saturating_sub(a.0),
        _ => Duration::ZERO,
    };
    println!(
        "hard kill of one host: targets unavailable after {:.1} s; {} of {} requests failed, \
         failures spanning {:.2} s: {:?}",
        marked_down.as_secs_f64(),
        t.failed.len(),
        t.ok as usize + t.failed.len(),
        window.as_secs_f64(),
        &t.failed[..t.failed.len().min(5)]
    );
    // After the window everything is answered again.
    std::thread::sleep(Duration::from_secs(2));
    let after = client.take();
    assert_no_failures(&after, "after the dead host's targets were marked down");

    // The dead host's tasks are replaced on the two hosts left.
    until_steady(&ops, 4, 8080, "the dead host's tasks replaced").await;
    assert_no_failures(&client.take(), "replacing the dead host's tasks");

    // 7. Another host vanishes from the network (its link goes down: no
    // RST, no FIN, as in a power cut) while its tasks keep running: the
    // scheduler notices when its heartbeat TTL expires; until berth-lb
    // sets its targets to maint, HAProxy's connections to it time out.
    let busy = task_instances(&ops).await;
    let has_tasks = |i: usize| {
        let arn = hosts.instance(i)["containerInstanceArn"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        busy.contains(&arn)
    };
    // A host with tasks whose loss leaves another host serving.
    let gone = (0..hosts.len())
        .filter(|i| *i != victim && has_tasks(*i))
        .find(|g| (0..hosts.len()).any(|j| j != victim && j != *g && has_tasks(j)));
    {
        let gone = gone.expect("two live hosts with tasks after the replacement");
        let netns = hosts.host(gone).netns().to_owned();
        let out_before: Vec<String> = target_states(&ops)
            .await
            .into_iter()
            .filter(|(s, _, _)| s == "unavailable")
            .map(|(_, _, t)| t)
            .collect();
        client.take();
        let cut_at = Instant::now();
        let link = |state: &str| {
            let ok = Command::new("ip")
                .args(["-n", &netns, "link", "set", "eth0", state])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "ip -n {netns} link set eth0 {state}");
        };
        link("down");
        eventually(
            Duration::from_secs(60),
            "the cut host's targets out",
            || async {
                let states = target_states(&ops).await;
                let newly = states
                    .iter()
                    .filter(|(s, _, t)| s == "unavailable" && !out_before.contains(t))
                    .count();
                if newly > 0 {
                    Ok(())
                } else {
                    Err(format!("{states:?}"))
                }
            },
        )
        .await;
        let marked = cut_at.elapsed();
        tokio::time::sleep(Duration::from_secs(6)).await;
        let t = client.take();
        let window = match (t.failed.first(), t.failed.last()) {
            (Some(a), Some(b)) => b.0.saturating_sub(a.0),
            _ => Duration::ZERO,
        };
        println!(
            "link down of one host: targets unavailable after {:.1} s; {} of {} requests failed, \
             failures spanning {:.2} s: {:?}",
            marked.as_secs_f64(),
            t.failed.len(),
            t.ok as usize + t.failed.len(),
            window.as_secs_f64(),
            &t.failed[..t.failed.len().min(3)]
        );
        std::thread::sleep(Duration::from_secs(2));
        assert_no_failures(
            &client.take(),
            "after the cut host's targets were marked down",
        );
        link("up");
    }
    drop(client);
    drop(lb);
}
