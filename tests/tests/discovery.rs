//! Finding tasks, end to end with real components:
//!
//! - **DNS** (the multi-host harness, two hosts, the scheduler's DNS on port
//!   53 of the test bridge's gateway): a service with a DNS name and two
//!   busybox httpd tasks; Debian's `dig` gets `web.disc.test` A (the hosts'
//!   addresses) and SRV (their host ports, over UDP and TCP) and
//!   `_web._tcp.disc.test` SRV, the answers follow a scale-in to one task,
//!   an unknown name in the namespace is NXDOMAIN with the SOA, a foreign
//!   name REFUSED; and a busybox task whose definition names the gateway in
//!   `dnsServers` resolves `web.disc.test` with `nslookup` from inside its
//!   bridge network namespace (through its host's NAT).
//! - **Prometheus HTTP SD** (the single-host harness, `free_slot` block
//!   222): a busybox httpd task serving `/metrics` on a port mapping named
//!   `metrics`; `/prometheus/targets` refuses requests without a valid
//!   token (401) and lists the task for a read-only one; a real
//!   `prometheus` 2.42 discovers it through `http_sd_configs` (TLS with the
//!   cluster CA, a bearer token) and scrapes it, and its HTTP API shows the
//!   metric with the `task_id`, `family` and `cluster` labels.
//!
//! Root is required (namespaces, containerd, port 53), and `dig`
//! (bind9-dnsutils), `curl` and `prometheus` (`scripts/install-deps`
//! installs them): without them the tests fail saying so. Every wait is
//! bounded, and everything listens on loopback or the test bridge.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // tests fail loudly by design; the guard's Drop uses std time

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use berth_proto::v1::service_service_client::ServiceServiceClient;
use berth_proto::v1::{CreateServiceRequest, ServiceDiscovery, UpdateServiceRequest};
use berth_tests::cluster::{host_port, tail};
use berth_tests::multihost::{http_get, Hosts, HostsOptions};
use berth_tests::{eventually, free_port, ok_stdout, Cluster, ClusterOptions};
use serde_json::Value;

/// This file's `free_slot` block (the single-host cluster).
const BLOCK: u8 = 222;

/// busybox httpd on container port 80, on a dynamic host port.
const HTTPD: &str = r#"{"family":"disc-web","networkMode":"bridge","containerDefinitions":[{
    "name":"web","image":"IMAGE","memory":32,"essential":true,
    "entryPoint":["sh","-c"],
    "command":["mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"],
    "portMappings":[{"containerPort":80,"hostPort":0}]}]}"#;

/// `dig @server -p PORT ARGS...` with one try of 2 s: its output.
fn dig(server: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+time=2", "+tries=1"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dig +short`: one line per record, sorted.
fn short(server: SocketAddr, args: &[&str]) -> Vec<String> {
    let mut a = vec!["+short"];
    a.extend_from_slice(args);
    let mut lines: Vec<String> = dig(server, &a)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// The `status:` of dig's header comment (`NOERROR`, `NXDOMAIN`, …).
fn status(text: &str) -> String {
    text.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("(no answer)")
        .to_owned()
}

/// The service's RUNNING tasks as `task ls` shows them.
fn running(hosts: &Hosts) -> Vec<Value> {
    hosts.ctl_json(&["task", "ls"])["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["group"] == "service:web" && t["lastStatus"] == "RUNNING")
        .cloned()
        .collect()
}

/// What DNS should answer for `tasks`: the A records (sorted host
/// addresses) and the SRV records of `web.disc.test` as `dig +short`
/// prints them.
fn expected(hosts: &Hosts, tasks: &[Value]) -> (Vec<String>, Vec<String>) {
    let mut a = BTreeSet::new();
    let mut srv = Vec::new();
    for t in tasks {
        let i = hosts
            .host_of(t["containerInstanceArn"].as_str().unwrap())
            .unwrap();
        let addr = hosts.host(i).addr().to_string();
        let id = berth_proto::arn::short_id(t["taskArn"].as_str().unwrap()).to_owned();
        srv.push(format!("1 1 {} {id}.web.disc.test.", host_port(t, 80)));
        a.insert(addr);
    }
    srv.sort();
    (a.into_iter().collect(), srv)
}

/// Waits (up to 60 s) until DNS answers `web.disc.test` A and SRV with
/// exactly the service's `count` RUNNING tasks; returns them.
async fn until_dns_matches(hosts: &Hosts, count: usize) -> Vec<Value> {
    let dns = hosts.dns_addr();
    eventually(
        Duration::from_secs(60),
        &format!("DNS answering with the service's {count} running tasks"),
        || async {
            let tasks = running(hosts);
            if tasks.len() != count {
                return Err(format!("{} running tasks", tasks.len()));
            }
            let (a, srv) = expected(hosts, &tasks);
            let got_a = short(dns, &["web.disc.test", "A"]);
            let got_srv = short(dns, &["web.disc.test", "SRV"]);
            if got_a == a && got_srv == srv {
                Ok(tasks)
            } else {
                Err(format!(
                    "A {got_a:?} (want {a:?}), SRV {got_srv:?} (want {srv:?})"
                ))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_answers_with_a_services_healthy_tasks_inside_and_outside_tasks() {
    berth_testkit::require_binary("dig", "bind9-dnsutils");
    let hosts = Hosts::start_with(
        2,
        HostsOptions {
            dns_on_gateway: true,
            scheduler_env: vec![
                ("BERTH_SERVICE_RESYNC".to_owned(), "500ms".to_owned()),
                ("BERTH_DNS_TTL".to_owned(), "3s".to_owned()),
            ],
            ..Default::default()
        },
    )
    .await;
    let dns = hosts.dns_addr();
    let td = hosts.register(HTTPD);
    let mut services = ServiceServiceClient::new(hosts.sched.authed_channel().await);
    services
        .create_service(CreateServiceRequest {
            cluster: "default".into(),
            service_name: "web".into(),
            task_definition: td,
            desired_count: Some(2),
            service_discovery: Some(ServiceDiscovery {
                namespace: "disc.test".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("CreateService with a DNS name");

    let tasks = until_dns_matches(&hosts, 2).await;
    let (a, srv) = expected(&hosts, &tasks);
    eprintln!("web.disc.test: A {a:?}, SRV {srv:?}");
    // The SRV name, over TCP too; each task's own name; case-insensitive.
    assert_eq!(short(dns, &["_web._tcp.disc.test", "SRV"]), srv);
    assert_eq!(short(dns, &["+tcp", "web.disc.test", "SRV"]), srv);
    assert_eq!(short(dns, &["WEB.Disc.TEST", "A"]), a);
    let id = berth_proto::arn::short_id(tasks[0]["taskArn"].as_str().unwrap()).to_owned();
    let own = expected(&hosts, &tasks[..1]).0;
    assert_eq!(short(dns, &[&format!("{id}.web.disc.test"), "A"]), own);
    // Authoritative, with the configured TTL.
    let full = dig(dns, &["web.disc.test", "A"]);
    assert_eq!(status(&full), "NOERROR", "{full}");
    assert!(full.contains(" aa"), "not authoritative: {full}");
    assert!(
        full.lines()
            .any(|l| l.starts_with("web.disc.test.") && l.split_whitespace().nth(1) == Some("3")),
        "TTL 3 expected: {full}"
    );

    // Unknown in the namespace: NXDOMAIN with the SOA; elsewhere: REFUSED.
    let nx = dig(dns, &["nope.disc.test", "A"]);
    assert_eq!(status(&nx), "NXDOMAIN", "{nx}");
    assert!(
        nx.lines()
            .any(|l| l.starts_with("disc.test.") && l.contains("SOA")),
        "no SOA in the authority section: {nx}"
    );
    let refused = dig(dns, &["example.com", "A"]);
    assert_eq!(status(&refused), "REFUSED", "{refused}");
    // A name that exists without AAAA records: NODATA, not NXDOMAIN.
    assert_eq!(status(&dig(dns, &["web.disc.test", "AAAA"])), "NOERROR");

    // Scale in: the answers follow.
    services
        .update_service(UpdateServiceRequest {
            cluster: "default".into(),
            service: "web".into(),
            desired_count: Some(1),
            ..Default::default()
        })
        .await
        .expect("UpdateService to 1");
    let tasks = until_dns_matches(&hosts, 1).await;
    let (a, _) = expected(&hosts, &tasks);

    // From inside a task: busybox nslookup through `dnsServers`.
    let probe = hosts.register(&format!(
        r#"{{"family":"disc-probe","networkMode":"bridge","containerDefinitions":[{{
        "name":"probe","image":"IMAGE","memory":32,"essential":true,
        "dnsServers":["{gw}"],
        "entryPoint":["sh","-c"],
        "command":["for i in 1 2 3 4 5 6 7 8 9 10; do nslookup web.disc.test > /tmp/out 2>&1; cat /tmp/out; grep -qwF {addr} /tmp/out && echo RESOLVED && exit 0; sleep 1; done; exit 1"]}}]}}"#,
        gw = dns.ip(),
        addr = a[0],
    ));
    let id = hosts.start_task(&probe, 0);
    let t = hosts.until_task_status(&id, "STOPPED").await;
    let logs =
        String::from_utf8_lossy(&hosts.sched.ctl(&["task", "logs", &id]).stdout).into_owned();
    assert_eq!(
        t["containers"][0]["exitCode"], 0,
        "nslookup web.disc.test from a task with dnsServers [{}] did not resolve {}:\n{logs}\ntask: {t:#}\nagent log:\n{}",
        dns.ip(),
        a[0],
        tail(&hosts.host(0).agent_log(), 30)
    );
    assert!(logs.contains("RESOLVED"), "{logs}");
    eprintln!("nslookup in task {id}:\n{logs}");
}

/// A child process killed (and reaped) on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `curl` of `url` trusting `ca`, with `token` as a bearer token: the
/// status code and the body.
fn curl(url: &str, ca: &std::path::Path, token: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(ca);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out: Output = cmd
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_tasks_it_finds_through_http_sd() {
    berth_testkit::require_binary("prometheus", "prometheus");
    berth_testkit::require_binary("curl", "curl");
    let c = Cluster::start_in(
        BLOCK,
        ClusterOptions {
            bridge_prefix: "pd".to_owned(),
            ..ClusterOptions::default()
        },
    )
    .await;
    let td = c.register(
        r#"{"family":"disc-metrics","networkMode":"bridge","containerDefinitions":[{
        "name":"app","image":"IMAGE","memory":32,"essential":true,
        "entryPoint":["sh","-c"],
        "command":["mkdir -p /www && printf '# TYPE berth_disc_test_up gauge\\nberth_disc_test_up 1\\n' > /www/metrics && exec httpd -f -p 9100 -h /www"],
        "portMappings":[{"containerPort":9100,"hostPort":0,"name":"metrics"}]}]}"#,
    );
    let task = c.start(&td);
    let t = c.until_status(&task, "RUNNING").await;
    let port = host_port(&t, 9100);

    let url = format!("{}/prometheus/targets", c.sched.ecs_endpoint());
    let ca = c.sched.ca_path();
    let (code, body) = curl(&url, &ca, None);
    assert_eq!(code, 401, "without a token: {body}");
    let (code, body) = curl(&url, &ca, Some("berth_0000_notatoken"));
    assert_eq!(code, 401, "with a malformed token: {body}");
    let reader = ok_stdout(
        &c.sched
            .ctl(&["token", "create", "prom", "--role", "read-only"]),
    )
    .lines()
    .next()
    .unwrap()
    .trim()
    .to_owned();
    let (code, body) = curl(&url, &ca, Some(&reader));
    assert_eq!(code, 200, "{body}");
    let groups: Value = serde_json::from_str(&body).unwrap();
    let want_target = format!("127.0.0.1:{port}");
    let ours = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["labels"]["task_id"] == task.as_str())
        .unwrap_or_else(|| panic!("task {task} not in {body}"));
    assert_eq!(ours["targets"][0], want_target.as_str(), "{body}");
    assert_eq!(ours["labels"]["family"], "disc-metrics");
    assert_eq!(ours["labels"]["container"], "app");
    let (code, body) = curl(&format!("{url}?cluster=default"), &ca, Some(&reader));
    assert_eq!(code, 200, "{body}");
    let (code, _) = curl(&format!("{url}?cluster=nosuch"), &ca, Some(&reader));
    assert_eq!(code, 404);

    // The real Prometheus. 2.42 leaves the default `type: Bearer` out of
    // http_sd's requests (the header is the bare token): it is set here.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: berth\n    http_sd_configs:\n      - url: {url}\n        \
             refresh_interval: 1s\n        tls_config:\n          ca_file: {ca}\n        \
             authorization:\n          type: Bearer\n          credentials: {reader}\n",
            ca = ca.display()
        ),
    )
    .unwrap();
    let web = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), free_port());
    let log = dir.path().join("prometheus.log");
    let _prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("prometheus.err")).unwrap())
            .spawn()
            .expect("start prometheus"),
    );
    let prom_log =
        || std::fs::read_to_string(dir.path().join("prometheus.err")).unwrap_or_default();
    let sample = eventually(
        Duration::from_secs(60),
        "Prometheus scraped the task's metric",
        || async {
            let r = http_get(web, "/api/v1/query?query=berth_disc_test_up")?;
            let body = r.split("\r\n\r\n").nth(1).unwrap_or_default();
            let v: Value = serde_json::from_str(body).map_err(|e| format!("{e}: {r}"))?;
            v["data"]["result"]
                .as_array()
                .and_then(|a| a.first().cloned())
                .ok_or_else(|| {
                    let targets = http_get(web, "/api/v1/targets").unwrap_or_default();
                    format!(
                        "no sample yet: {body}\ntargets: {targets}\nprometheus log:\n{}\n\
                         scheduler log:\n{}",
                        tail(&prom_log(), 5),
                        tail(&c.sched.log_text(), 10)
                    )
                })
        },
    )
    .await;
    let m = &sample["metric"];
    assert_eq!(m["task_id"], task.as_str(), "{sample}");
    assert_eq!(m["family"], "disc-metrics", "{sample}");
    assert_eq!(m["revision"], "1", "{sample}");
    assert_eq!(m["cluster"], "default", "{sample}");
    assert_eq!(m["container"], "app", "{sample}");
    // Prometheus drops empty labels: a task no service started has none.
    assert!(m["service"].is_null(), "{sample}");
    assert_eq!(m["instance"], want_target.as_str(), "{sample}");
    assert_eq!(m["job"], "berth", "{sample}");
    assert_eq!(sample["value"][1], "1", "{sample}");
}
