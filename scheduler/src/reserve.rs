//! What a task needs on an instance and whether the instance has it: pure
//! functions, no I/O. [`crate::db`] calls them inside its optimistic write,
//! with the allocation record it read, and commits the result in the same
//! transaction as the task.
//!
//! ECS's rules: task-level `cpu`/`memory` when set, otherwise the sum over
//! containers (`memory`, or `memoryReservation` where `memory` is absent;
//! `cpu`, 0 where absent). Host ports: a static `hostPort` must be free; in
//! bridge mode `hostPort` 0 or absent (and every port of a
//! `containerPortRange`) gets a free port of the instance's dynamic range;
//! in host mode the host port is the container port; awsvpc and none modes
//! publish nothing (an awsvpc task is reached at its own address on the
//! bridge, as an ENI is; see `docs/task-definitions.md`).

use berth_proto::taskdef::validate::parse_port_range;
use berth_proto::taskdef::{NetworkMode, TaskDefinition};

use crate::records::{AllocationRecord, HostResources, PortAssignment, Protocol, Reservation};

/// One port a task publishes: `host_port` None means dynamic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortNeed {
    pub container_name: String,
    pub container_port: u16,
    pub protocol: Protocol,
    pub host_port: Option<u16>,
}

/// What one task of a definition takes on its instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskNeeds {
    pub cpu_units: i64,
    pub memory_mib: i64,
    pub ports: Vec<PortNeed>,
}

/// Why an instance cannot take a task; `reason()` is ECS's failure reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortfall {
    Cpu {
        need: i64,
        remaining: i64,
    },
    Memory {
        need: i64,
        remaining: i64,
    },
    /// A static host port is reserved by the host or held by another task.
    PortTaken {
        port: u16,
        protocol: Protocol,
        by_host: bool,
    },
    /// The dynamic range has no free port left.
    RangeExhausted {
        protocol: Protocol,
        range: (u16, u16),
    },
}

impl Shortfall {
    pub fn reason(&self) -> &'static str {
        match self {
            Shortfall::Cpu { .. } => "RESOURCE:CPU",
            Shortfall::Memory { .. } => "RESOURCE:MEMORY",
            Shortfall::PortTaken { .. } | Shortfall::RangeExhausted { .. } => "RESOURCE:PORTS",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Shortfall::Cpu { need, remaining } => format!(
                "the task needs {need} CPU units; the container instance has {remaining} remaining"
            ),
            Shortfall::Memory { need, remaining } => format!(
                "the task needs {need} MiB of memory; the container instance has {remaining} MiB remaining"
            ),
            Shortfall::PortTaken {
                port,
                protocol,
                by_host: true,
            } => format!(
                "host port {port}/{} is reserved on the container instance (the agent's reserved \
                 list, or a process outside Berth listens on it)",
                protocol.as_str()
            ),
            Shortfall::PortTaken {
                port,
                protocol,
                by_host: false,
            } => format!(
                "host port {port}/{} is already taken by another task on the container instance",
                protocol.as_str()
            ),
            Shortfall::RangeExhausted {
                protocol,
                range: (lo, hi),
            } => format!(
                "no free {} host port left in the dynamic range {lo}-{hi}",
                protocol.as_str()
            ),
        }
    }
}

/// The resources and ports one task of `def` needs (a validated definition).
pub fn needs(def: &TaskDefinition) -> TaskNeeds {
    let containers = &def.container_definitions;
    let cpu_units = match def.task_cpu_units() {
        Some(c) => i64::from(c),
        None => containers
            .iter()
            .map(|c| i64::from(c.cpu.unwrap_or(0)))
            .sum(),
    };
    let memory_mib = match def.task_memory_mib() {
        Some(m) => i64::from(m),
        None => containers
            .iter()
            .map(|c| i64::from(c.memory.or(c.memory_reservation).unwrap_or(0)))
            .sum(),
    };
    let mode = def.effective_network_mode();
    let mut ports = Vec::new();
    if mode != NetworkMode::None && mode != NetworkMode::Awsvpc {
        for c in containers {
            for pm in &c.port_mappings {
                let proto = pm.effective_protocol();
                let container_ports: Vec<u32> =
                    match (pm.container_port, pm.container_port_range.as_deref()) {
                        (Some(cp), _) => vec![cp],
                        (None, Some(r)) => parse_port_range(r)
                            .map(|(lo, hi)| (lo..=hi).collect())
                            .unwrap_or_default(),
                        (None, None) => vec![],
                    };
                for cp in container_ports {
                    let Ok(container_port) = u16::try_from(cp) else {
                        continue;
                    };
                    let host_port = match mode {
                        NetworkMode::Host => Some(container_port),
                        _ => pm
                            .host_port
                            .filter(|h| *h != 0)
                            .and_then(|h| u16::try_from(h).ok()),
                    };
                    ports.push(PortNeed {
                        container_name: c.name.clone(),
                        container_port,
                        protocol: proto,
                        host_port,
                    });
                }
            }
        }
    }
    TaskNeeds {
        cpu_units,
        memory_mib,
        ports,
    }
}

fn host_reserved(host: &HostResources, protocol: Protocol, port: u16) -> bool {
    let list = match protocol {
        Protocol::Tcp => &host.reserved_tcp_ports,
        Protocol::Udp => &host.reserved_udp_ports,
    };
    list.contains(&port)
}

/// Reserves `needs` on an instance offering `host` with `alloc` already
/// taken. Dynamic ports are probed linearly from a point `seed` picks in the
/// range, so concurrent placements rarely contend for the same port (and if
/// they do, the store's check on the allocation record makes one retry).
pub fn reserve(
    needs: &TaskNeeds,
    host: &HostResources,
    alloc: &AllocationRecord,
    seed: u64,
) -> Result<Reservation, Shortfall> {
    let remaining_memory = host.memory_mib - alloc.memory_mib;
    if needs.memory_mib > remaining_memory {
        return Err(Shortfall::Memory {
            need: needs.memory_mib,
            remaining: remaining_memory.max(0),
        });
    }
    let remaining_cpu = host.cpu_units - alloc.cpu_units;
    if needs.cpu_units > remaining_cpu {
        return Err(Shortfall::Cpu {
            need: needs.cpu_units,
            remaining: remaining_cpu.max(0),
        });
    }
    let mut taken: Vec<(Protocol, u16)> = Vec::new();
    let mut assigned: Vec<Option<u16>> = vec![None; needs.ports.len()];
    // Static ports first, so a dynamic port never takes one the task names.
    for (i, p) in needs.ports.iter().enumerate() {
        let Some(port) = p.host_port else { continue };
        if host_reserved(host, p.protocol, port) {
            return Err(Shortfall::PortTaken {
                port,
                protocol: p.protocol,
                by_host: true,
            });
        }
        if alloc.is_allocated(p.protocol, port) || taken.contains(&(p.protocol, port)) {
            return Err(Shortfall::PortTaken {
                port,
                protocol: p.protocol,
                by_host: false,
            });
        }
        taken.push((p.protocol, port));
        assigned[i] = Some(port);
    }
    let (lo, hi) = host.port_range;
    let size = u64::from(hi.saturating_sub(lo)) + 1;
    let mut cursor = seed % size;
    for (i, p) in needs.ports.iter().enumerate() {
        if p.host_port.is_some() {
            continue;
        }
        let mut found = None;
        for _ in 0..size {
            let candidate = lo + (cursor % size) as u16;
            cursor = (cursor + 1) % size;
            if candidate != 0
                && !host_reserved(host, p.protocol, candidate)
                && !alloc.is_allocated(p.protocol, candidate)
                && !taken.contains(&(p.protocol, candidate))
            {
                found = Some(candidate);
                break;
            }
        }
        let port = found.ok_or(Shortfall::RangeExhausted {
            protocol: p.protocol,
            range: (lo, hi),
        })?;
        taken.push((p.protocol, port));
        assigned[i] = Some(port);
    }
    Ok(Reservation {
        cpu_units: needs.cpu_units,
        memory_mib: needs.memory_mib,
        ports: needs
            .ports
            .iter()
            .zip(assigned)
            .map(|(p, host_port)| PortAssignment {
                container_name: p.container_name.clone(),
                container_port: p.container_port,
                protocol: p.protocol,
                host_port: host_port.unwrap_or(0),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(json: &str) -> TaskDefinition {
        berth_proto::taskdef::parse_registration(json)
            .unwrap()
            .definition
    }

    fn host() -> HostResources {
        HostResources {
            cpu_units: 2048,
            memory_mib: 1000,
            port_range: (20000, 20009),
            reserved_tcp_ports: vec![22, 20003],
            reserved_udp_ports: vec![],
        }
    }

    #[test]
    fn container_sums_and_task_level_sizes() {
        let n = needs(&def(r#"{"family":"f","containerDefinitions":[
                {"name":"a","image":"x","memory":100,"cpu":256},
                {"name":"b","image":"x","memoryReservation":50}]}"#));
        assert_eq!((n.cpu_units, n.memory_mib), (256, 150));
        let n = needs(&def(
            r#"{"family":"f","cpu":"1 vCPU","memory":"1GB","containerDefinitions":[
                {"name":"a","image":"x","memory":100,"cpu":256}]}"#,
        ));
        assert_eq!((n.cpu_units, n.memory_mib), (1024, 1024));
    }

    #[test]
    fn ports_by_network_mode() {
        let n = needs(&def(
            r#"{"family":"f","containerDefinitions":[{"name":"a","image":"x","memory":8,
                "portMappings":[{"containerPort":80},{"containerPort":53,"hostPort":5353,"protocol":"udp"},
                {"containerPortRange":"9000-9001"}]}]}"#,
        ));
        let got: Vec<_> = n
            .ports
            .iter()
            .map(|p| (p.container_port, p.protocol, p.host_port))
            .collect();
        assert_eq!(
            got,
            vec![
                (80, Protocol::Tcp, None),
                (53, Protocol::Udp, Some(5353)),
                (9000, Protocol::Tcp, None),
                (9001, Protocol::Tcp, None)
            ]
        );
        let mode_needs = |mode: &str| {
            needs(&def(&format!(
                r#"{{"family":"f","networkMode":"{mode}","containerDefinitions":[{{"name":"a","image":"x","memory":8,
                    "portMappings":[{{"containerPort":8080}}]}}]}}"#
            )))
        };
        assert_eq!(mode_needs("host").ports[0].host_port, Some(8080));
        assert!(
            mode_needs("awsvpc").ports.is_empty(),
            "awsvpc publishes no host ports"
        );
    }

    #[test]
    fn static_ports_must_be_free_and_dynamic_ones_skip_taken_ports() {
        let static_port = |port: u16| TaskNeeds {
            cpu_units: 0,
            memory_mib: 0,
            ports: vec![PortNeed {
                container_name: "a".into(),
                container_port: 80,
                protocol: Protocol::Tcp,
                host_port: Some(port),
            }],
        };
        let mut alloc = AllocationRecord::default();
        let r = reserve(&static_port(8080), &host(), &alloc, 0).unwrap();
        alloc.add(&r);
        assert_eq!(
            reserve(&static_port(8080), &host(), &alloc, 0)
                .unwrap_err()
                .detail(),
            "host port 8080/tcp is already taken by another task on the container instance"
        );
        assert!(matches!(
            reserve(&static_port(22), &host(), &alloc, 0),
            Err(Shortfall::PortTaken { by_host: true, .. })
        ));
        // The same port number over udp is a different port.
        let mut udp = static_port(8080);
        udp.ports[0].protocol = Protocol::Udp;
        assert!(reserve(&udp, &host(), &alloc, 0).is_ok());

        let dynamic = TaskNeeds {
            cpu_units: 0,
            memory_mib: 0,
            ports: vec![
                PortNeed {
                    container_name: "a".into(),
                    container_port: 80,
                    protocol: Protocol::Tcp,
                    host_port: None,
                };
                3
            ],
        };
        let mut alloc = AllocationRecord::default();
        let mut seen = Vec::new();
        // 10 ports in the range, one reserved by the host: 9 usable, 3 per task.
        for seed in [2, 2, 2] {
            let r = reserve(&dynamic, &host(), &alloc, seed).unwrap();
            alloc.add(&r);
            seen.extend(r.host_ports(Protocol::Tcp));
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            vec![20000, 20001, 20002, 20004, 20005, 20006, 20007, 20008, 20009]
        );
        assert_eq!(
            reserve(&dynamic, &host(), &alloc, 5).unwrap_err().reason(),
            "RESOURCE:PORTS"
        );
    }

    #[test]
    fn memory_then_cpu_are_checked() {
        let n = |cpu, memory| TaskNeeds {
            cpu_units: cpu,
            memory_mib: memory,
            ports: vec![],
        };
        let mut alloc = AllocationRecord::default();
        alloc.add(&reserve(&n(1024, 600), &host(), &alloc, 0).unwrap());
        assert_eq!(
            reserve(&n(0, 401), &host(), &alloc, 0).unwrap_err(),
            Shortfall::Memory {
                need: 401,
                remaining: 400
            }
        );
        assert_eq!(
            reserve(&n(1025, 1), &host(), &alloc, 0)
                .unwrap_err()
                .reason(),
            "RESOURCE:CPU"
        );
        assert!(reserve(&n(1024, 400), &host(), &alloc, 0).is_ok());
    }
}
