//! Criterion benches of the placement core (`placement::engine::place`): one
//! task, or a request of 100, on 10,000 instances (three zones, three
//! instance types, partly loaded), per strategy and constraint; and the same
//! request on 64 instances (scored exhaustively) for the ratio that shows
//! sampling keeps the cost flat as the fleet grows.
//!
//! `cargo bench -p berth-scheduler --bench placement`

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use berth_scheduler::placement::engine::{place, ClusterView, Node, Request};
use berth_scheduler::placement::spec::{Constraint, Strategy};
use berth_scheduler::records::{
    AllocationRecord, HostResources, InstanceRecord, InstanceStatus, PortAssignment, Protocol,
    Reservation,
};
use berth_scheduler::reserve::{PortNeed, TaskNeeds};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::rngs::StdRng;
use rand::SeedableRng;

const TYPES: [(&str, i64, i64); 3] = [
    ("m5.large", 2048, 7680),
    ("m5.xlarge", 4096, 15616),
    ("c5.2xlarge", 8192, 15616),
];
const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

/// `n` instances, each already running `i % 20` tasks of 64 MiB.
fn fleet(n: usize) -> ClusterView {
    let mut v = ClusterView::new();
    for i in 0..n {
        let (kind, cpu, memory) = TYPES[i % 3];
        let inst = InstanceRecord {
            address: None,
            id: format!("{i:032x}"),
            cluster: "default".into(),
            hostname: format!("h{i}"),
            status: InstanceStatus::Active,
            registered_at: 1_700_000_000_000,
            agent_version: "0.1.0".into(),
            resources: HostResources {
                cpu_units: cpu,
                memory_mib: memory,
                port_range: (20000, 32767),
                reserved_tcp_ports: vec![22],
                reserved_udp_ports: vec![],
            },
            attributes: vec![
                ("ecs.availability-zone".into(), ZONES[(i / 3) % 3].into()),
                ("ecs.instance-type".into(), kind.into()),
            ],
            cert_serials: vec![],
            activation_id: String::new(),
            custom_attributes: vec![],
            tags: vec![],
        };
        let mut alloc = AllocationRecord::default();
        for t in 0..(i % 20) {
            alloc.add_task(
                &Reservation {
                    cpu_units: 10,
                    memory_mib: 64,
                    ports: vec![PortAssignment {
                        container_name: "app".into(),
                        container_port: 8080,
                        protocol: Protocol::Tcp,
                        host_port: 20000 + t as u16,
                    }],
                },
                if t % 2 == 0 {
                    "family:app"
                } else {
                    "service:web"
                },
            );
        }
        v.upsert(Node::from_records(&inst, alloc, true));
    }
    v
}

fn needs() -> TaskNeeds {
    TaskNeeds {
        cpu_units: 1,
        memory_mib: 1,
        ports: vec![PortNeed {
            container_name: "app".into(),
            container_port: 8080,
            protocol: Protocol::Tcp,
            host_port: None,
        }],
    }
}

fn strategies(s: &[&str]) -> Vec<Strategy> {
    s.iter()
        .map(|s| Strategy::parse_short("s", s).unwrap())
        .collect()
}

fn bench(c: &mut Criterion) {
    let n = needs();
    let cases: Vec<(&str, Vec<Constraint>, Vec<Strategy>)> = vec![
        ("binpack:memory", vec![], strategies(&["binpack:memory"])),
        ("spread:zone+binpack", vec![], strategies(&["spread:attribute:ecs.availability-zone", "binpack:memory"])),
        ("spread:instanceId", vec![], strategies(&["spread:instanceId"])),
        ("random", vec![], strategies(&["random"])),
        (
            "memberOf+random",
            vec![Constraint::parse("c", "memberOf", "attribute:ecs.instance-type =~ m5.* and attribute:ecs.availability-zone != us-east-1c").unwrap()],
            strategies(&["random"]),
        ),
        (
            "distinctInstance+spread",
            vec![Constraint::DistinctInstance],
            strategies(&["spread:instanceId"]),
        ),
    ];
    for size in [64usize, 10_000] {
        let mut g = c.benchmark_group(format!("place 1 task on {size} instances"));
        for (name, cons, strat) in &cases {
            let mut view = fleet(size);
            let mut rng = StdRng::seed_from_u64(1);
            let (mut k, mut failed) = (0u64, 0u64);
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    // A fresh group each time keeps distinctInstance feasible
                    // (cycling through 1000 groups filled a 64-instance fleet
                    // after 64,000 placements).
                    k += 1;
                    let group = format!("g{k}");
                    let req = Request {
                        needs: &n,
                        count: 1,
                        group: &group,
                        constraints: cons,
                        strategies: strat,
                    };
                    let o = place(&mut view, &req, &mut rng);
                    failed += u64::from(o.placed.is_empty());
                    black_box(o)
                })
            });
            // The fleet fills as the bench runs (CPU, memory, ports): say so
            // when some iterations timed the failure path instead.
            if failed > 0 {
                eprintln!(
                    "warning: place 1 task on {size} instances, {name}: {failed} of {k} \
                     iterations placed nothing (the fleet filled up); those timed the failure path"
                );
            }
        }
        g.finish();
    }
    let mut g = c.benchmark_group("place a request of 100 tasks on 10000 instances");
    g.sample_size(20);
    for (name, cons, strat) in &cases {
        let mut view = fleet(10_000);
        let mut rng = StdRng::seed_from_u64(2);
        let mut k = 0u64;
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                k += 1;
                let group = format!("r{k}");
                let req = Request {
                    needs: &n,
                    count: 100,
                    group: &group,
                    constraints: cons,
                    strategies: strat,
                };
                let o = place(&mut view, &req, &mut rng);
                assert_eq!(o.placed.len(), 100, "{:?}", o.failures);
                black_box(o)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
