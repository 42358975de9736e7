//! Placement decisions on small, hand-built clusters, checked as snapshots:
//! each line is one request and where its tasks went (or why not).

use std::fmt::Write as _;

use expect_test::{expect, Expect};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::placement::cql;
use crate::records::Protocol;
use crate::reserve::PortNeed;

/// `(id, zone, type, cpu, memory)`.
type Spec = (&'static str, &'static str, &'static str, i64, i64);

const FLEET: &[Spec] = &[
    ("i-1", "a", "small", 1024, 1024),
    ("i-2", "a", "large", 4096, 4096),
    ("i-3", "b", "small", 1024, 1024),
    ("i-4", "b", "large", 4096, 4096),
    ("i-5", "c", "small", 1024, 2048),
];

fn node(&(id, zone, kind, cpu, memory): &Spec) -> Node {
    let inst = InstanceRecord {
        address: None,
        id: id.to_owned(),
        cluster: "default".into(),
        hostname: id.to_owned(),
        status: InstanceStatus::Active,
        registered_at: 1_700_000_000_000,
        agent_version: "0.1.0".into(),
        resources: HostResources {
            cpu_units: cpu,
            memory_mib: memory,
            port_range: (20000, 20003),
            reserved_tcp_ports: vec![22],
            reserved_udp_ports: vec![],
        },
        attributes: vec![
            ("ecs.availability-zone".into(), zone.into()),
            ("ecs.instance-type".into(), kind.into()),
        ],
        cert_serials: vec![],
        activation_id: String::new(),
        custom_attributes: vec![],
        tags: vec![],
    };
    Node::from_records(&inst, AllocationRecord::default(), true)
}

fn view(specs: &[Spec]) -> ClusterView {
    let mut v = ClusterView::new();
    for s in specs {
        v.upsert(node(s));
    }
    v
}

fn needs(cpu: i64, memory: i64, host_ports: &[Option<u16>]) -> TaskNeeds {
    TaskNeeds {
        cpu_units: cpu,
        memory_mib: memory,
        ports: host_ports
            .iter()
            .map(|&host_port| PortNeed {
                container_name: "web".into(),
                container_port: 80,
                protocol: Protocol::Tcp,
                host_port,
            })
            .collect(),
    }
}

fn constraints(list: &[(&str, &str)]) -> Vec<Constraint> {
    list.iter()
        .enumerate()
        .map(|(i, (k, e))| Constraint::parse(&format!("c[{i}]"), k, e).unwrap())
        .collect()
}

fn strategies(list: &[&str]) -> Vec<Strategy> {
    list.iter()
        .map(|s| Strategy::parse_short("s", s).unwrap())
        .collect()
}

/// Runs each request in turn on one view; one line per request.
struct Scenario {
    view: ClusterView,
    rng: StdRng,
    out: String,
}

impl Scenario {
    fn new(specs: &[Spec]) -> Self {
        Scenario {
            view: view(specs),
            rng: StdRng::seed_from_u64(7),
            out: String::new(),
        }
    }

    fn run(
        &mut self,
        count: u32,
        needs: TaskNeeds,
        group: &str,
        cons: &[(&str, &str)],
        strat: &[&str],
    ) -> &mut Self {
        let c = constraints(cons);
        let s = strategies(strat);
        let req = Request {
            needs: &needs,
            count,
            group,
            constraints: &c,
            strategies: &s,
        };
        let o = place(&mut self.view, &req, &mut self.rng);
        let placed: Vec<&str> = o.placed.iter().map(|p| p.instance_id.as_str()).collect();
        let mut line = placed.join(" ");
        for f in &o.failures {
            if !line.is_empty() {
                line.push(' ');
            }
            write!(
                line,
                "| {} x{} closest={} ({})",
                f.reason,
                f.tasks,
                f.instance_id.as_deref().unwrap_or("-"),
                f.detail
            )
            .unwrap();
        }
        self.out.push_str(&line);
        self.out.push('\n');
        self
    }

    fn check(&self, e: Expect) {
        e.assert_eq(&self.out);
    }
}

#[test]
fn binpack_memory_fills_the_tightest_fit_first() {
    Scenario::new(FLEET)
        .run(4, needs(0, 512, &[]), "g", &[], &["binpack:memory"])
        .run(3, needs(0, 1024, &[]), "g", &[], &["binpack:memory"])
        .check(expect![[r#"
            i-3 i-3 i-1 i-1
            i-5 i-5 i-2
        "#]]);
}

#[test]
fn binpack_cpu_then_memory_as_tie_breaker() {
    Scenario::new(FLEET)
        .run(
            3,
            needs(512, 256, &[]),
            "g",
            &[],
            &["binpack:cpu", "binpack:memory"],
        )
        .check(expect![[r#"
            i-3 i-3 i-1
        "#]]);
}

#[test]
fn spread_over_instances_is_even() {
    Scenario::new(FLEET)
        .run(7, needs(0, 128, &[]), "g", &[], &["spread:instanceId"])
        .run(3, needs(0, 128, &[]), "other", &[], &["spread:host"])
        .check(expect![[r#"
            i-4 i-3 i-2 i-1 i-5 i-5 i-2
            i-5 i-1 i-2
        "#]]);
}

#[test]
fn spread_over_zones_then_binpack() {
    // Zone c has one instance; the chain balances zones first, then packs
    // within the chosen zone.
    Scenario::new(FLEET)
        .run(
            6,
            needs(0, 256, &[]),
            "svc",
            &[],
            &["spread:attribute:ecs.availability-zone", "binpack:memory"],
        )
        .check(expect![[r#"
            i-3 i-1 i-5 i-1 i-3 i-5
        "#]]);
}

#[test]
fn spread_counts_tasks_already_in_the_group() {
    let mut s = Scenario::new(FLEET);
    s.run(
        2,
        needs(0, 64, &[]),
        "svc",
        &[("memberOf", "attribute:ecs.availability-zone == a")],
        &[],
    );
    s.run(
        3,
        needs(0, 64, &[]),
        "svc",
        &[],
        &[
            "spread:attribute:ecs.availability-zone",
            "spread:instanceId",
        ],
    );
    s.check(expect![[r#"
        i-1 i-1
        i-4 i-5 i-3
    "#]]);
}

#[test]
fn random_places_on_any_feasible_instance() {
    Scenario::new(FLEET)
        .run(8, needs(0, 64, &[]), "g", &[], &["random"])
        .run(8, needs(0, 64, &[]), "g", &[], &[])
        .check(expect![[r#"
            i-4 i-4 i-3 i-1 i-5 i-1 i-2 i-4
            i-4 i-5 i-3 i-2 i-2 i-5 i-4 i-5
        "#]]);
}

#[test]
fn distinct_instance_fails_the_rest_with_ecs_reason() {
    Scenario::new(FLEET)
        .run(7, needs(0, 64, &[]), "web", &[("distinctInstance", "")], &["binpack:memory"])
        .run(1, needs(0, 64, &[]), "other", &[("distinctInstance", "")], &["binpack:memory"])
        .check(expect![[r#"
            i-3 i-1 i-5 i-4 i-2 | DistinctInstance placement constraint unsatisfied. x2 closest=i-1 (every container instance that fits already runs a task of the group)
            i-1
        "#]]);
}

#[test]
fn member_of_filters_and_names_the_constraint() {
    Scenario::new(FLEET)
        .run(
            4,
            needs(0, 64, &[]),
            "g",
            &[("memberOf", "attribute:ecs.instance-type == large")],
            &["spread:instanceId"],
        )
        .run(
            2,
            needs(0, 64, &[]),
            "g2",
            &[("memberOf", "attribute:ecs.availability-zone in [b, c] and not(task:group == g)")],
            &["binpack:memory"],
        )
        .run(
            1,
            needs(0, 64, &[]),
            "g3",
            &[("memberOf", "attribute:ecs.instance-type =~ x.*")],
            &[],
        )
        .run(
            1,
            needs(0, 64, &[]),
            "g4",
            &[("memberOf", "runningTasksCount == 0")],
            &[],
        )
        .check(expect![[r#"
            i-2 i-4 i-4 i-2
            i-3 i-3
            | MemberOf placement constraint unsatisfied. x1 closest=i-1 (no container instance satisfies the memberOf expression(s))
            i-5
        "#]]);
}

#[test]
fn resources_fail_with_the_closest_instance() {
    Scenario::new(FLEET)
        .run(1, needs(0, 5000, &[]), "g", &[], &[])
        .run(1, needs(5000, 10, &[]), "g", &[], &[])
        .run(2, needs(0, 4000, &[]), "g", &[], &["binpack:memory"])
        .run(1, needs(0, 3000, &[]), "g", &[], &[])
        .check(expect![[r#"
            | RESOURCE:MEMORY x1 closest=i-2 (the task needs 5000 MiB of memory; the container instance has 4096 MiB remaining)
            | RESOURCE:CPU x1 closest=i-2 (the task needs 5000 CPU units; the container instance has 4096 remaining)
            i-2 i-4
            | RESOURCE:MEMORY x1 closest=i-5 (the task needs 3000 MiB of memory; the container instance has 2048 MiB remaining)
        "#]]);
}

#[test]
fn host_ports_are_never_given_twice() {
    // Static port 8080: one task per instance. Dynamic ports: the range
    // 20000–20003 holds four per instance.
    Scenario::new(&FLEET[..2])
        .run(3, needs(0, 8, &[Some(8080)]), "g", &[], &["spread:instanceId"])
        .run(9, needs(0, 8, &[None]), "d", &[], &["binpack:memory"])
        .check(expect![[r#"
            i-1 i-2 | RESOURCE:PORTS x1 closest=i-1 (host port 8080/tcp is already taken by another task on the container instance)
            i-1 i-1 i-1 i-1 i-2 i-2 i-2 i-2 | RESOURCE:PORTS x1 closest=i-1 (no free tcp host port left in the dynamic range 20000-20003)
        "#]]);
}

#[test]
fn unavailable_instances_get_nothing() {
    let mut s = Scenario::new(&FLEET[..3]);
    s.view.set_connected("i-1", false);
    let mut draining = node(&FLEET[1]);
    draining.status = InstanceStatus::Draining;
    s.view.upsert(draining);
    s.run(3, needs(0, 8, &[]), "g", &[], &[]);
    s.view.set_connected("i-3", false);
    s.run(1, needs(0, 8, &[]), "g", &[], &[]);
    let mut empty = Scenario::new(&[]);
    empty.run(2, needs(0, 8, &[]), "g", &[], &[]);
    s.out.push_str(&empty.out);
    s.check(expect![[r#"
        i-3 i-3 i-3
        | AGENT x1 closest=i-1 (no container instance with a connected agent)
        | MISSING x2 closest=- (No Container Instances were found in your cluster.)
    "#]]);
}

#[test]
fn cql_instance_facts_come_from_the_records() {
    let n = node(&FLEET[0]);
    for (expr, want) in [
        ("instanceId == i-1", true),
        ("agentConnected == true", true),
        ("agentVersion >= 0.1.0", true),
        ("registeredAt > 2023-11-13", true),
        ("registeredAt == 2023-11-14", true),
        ("registeredAt < 2023-11-14", false),
        ("ec2InstanceId =~ .*", false),
    ] {
        assert_eq!(cql::parse(expr).unwrap().eval(&n), want, "{expr}");
    }
}

/// On more instances than [`EXHAUSTIVE_MAX`], placement samples; it must
/// still never over-commit, never fail while some instance fits, and keep
/// binpack tight through the index.
#[test]
fn sampled_placement_on_a_large_fleet() {
    let specs: Vec<Spec> = (0..1000)
        .map(|i| {
            let id: &'static str = Box::leak(format!("i-{i:04}").into_boxed_str());
            let zone = ["a", "b", "c"][i % 3];
            (id, zone, "m", 1024, 1024)
        })
        .collect();
    let mut v = view(&specs);
    let mut rng = StdRng::seed_from_u64(1);
    let n = needs(0, 256, &[None]);
    let s = strategies(&["binpack:memory"]);
    let req = Request {
        needs: &n,
        count: 40,
        group: "g",
        constraints: &[],
        strategies: &s,
    };
    let o = place(&mut v, &req, &mut rng);
    assert!(o.failures.is_empty());
    let mut used: Vec<&str> = o.placed.iter().map(|p| p.instance_id.as_str()).collect();
    used.sort_unstable();
    used.dedup();
    assert_eq!(used.len(), 10, "binpack filled 10 instances, 4 tasks each");

    // Spread over zones stays balanced under sampling.
    let s = strategies(&["spread:attribute:ecs.availability-zone"]);
    let req = Request {
        needs: &n,
        count: 300,
        group: "svc",
        constraints: &[],
        strategies: &s,
    };
    let o = place(&mut v, &req, &mut rng);
    assert!(o.failures.is_empty());
    let mut per_zone = HashMap::new();
    for p in &o.placed {
        let zone = v
            .node(&p.instance_id)
            .unwrap()
            .attribute_value("ecs.availability-zone");
        *per_zone.entry(zone.unwrap().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(
        per_zone.values().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([100])
    );

    // Fill everything: exactly capacity is placed, the rest fails.
    let s = strategies(&["random"]);
    let req = Request {
        needs: &n,
        count: 4000,
        group: "fill",
        constraints: &[],
        strategies: &s,
    };
    let o = place(&mut v, &req, &mut rng);
    assert_eq!(o.placed.len(), 4000 - 40 - 300);
    assert_eq!(o.failures[0].tasks, 340);
    assert_eq!(o.failures[0].reason, "RESOURCE:MEMORY");
    for node in v.nodes() {
        assert_eq!(node.alloc.memory_mib, 1024);
        assert_eq!(node.alloc.tcp_ports.len(), 4);
    }
}
