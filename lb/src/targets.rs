//! The targets as `berth-lb` sees them, and the one place that reads
//! `berth.v1`'s `TargetsSnapshot` (the wire edge): every group by name with
//! its slow start and its targets, each keyed by task ARN, container and
//! container port, with an IP address, a port and an ELB health state.
//! Nothing past this module sees prost types.

use std::collections::BTreeMap;
use std::net::IpAddr;

use berth_proto::v1;

/// ELB's target health states.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TargetState {
    Initial,
    Healthy,
    Unhealthy,
    Draining,
    Unavailable,
}

impl TargetState {
    /// The wire word; an unknown word counts as `unavailable` (never routed).
    pub fn parse(s: &str) -> Self {
        match s {
            "initial" => Self::Initial,
            "healthy" => Self::Healthy,
            "unhealthy" => Self::Unhealthy,
            "draining" => Self::Draining,
            _ => Self::Unavailable,
        }
    }
}

/// What identifies a target for as long as it lives: its slot stays its own.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TargetKey {
    pub task_arn: String,
    pub container: String,
    pub container_port: u32,
}

/// One target of a group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub key: TargetKey,
    pub addr: IpAddr,
    pub port: u16,
    pub state: TargetState,
}

/// One target group's targets.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Group {
    pub slow_start_seconds: u32,
    pub targets: Vec<Target>,
}

/// Every watched group by name. It is also what `berth-lb` remembers in
/// its state dir (JSON), to serve after a restart while the scheduler is away.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub groups: BTreeMap<String, Group>,
}

/// A target the snapshot carries but no load balancer can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub group: String,
    pub task_arn: String,
    pub reason: String,
}

impl Snapshot {
    /// Converts the wire snapshot. Targets without an IP address or port
    /// are left out (and returned, to be logged): they cannot be routed to.
    pub fn from_wire(wire: v1::TargetsSnapshot) -> (Self, Vec<Skipped>) {
        let mut groups = BTreeMap::new();
        let mut skipped = Vec::new();
        for g in wire.groups {
            let Some(tg) = g.target_group else { continue };
            let name = tg.target_group_name;
            let mut group = Group {
                slow_start_seconds: tg.slow_start_seconds,
                targets: Vec::new(),
            };
            for d in g.targets {
                let target = d.target.unwrap_or_default();
                let state = TargetState::parse(
                    d.target_health
                        .as_ref()
                        .map(|h| h.state.as_str())
                        .unwrap_or_default(),
                );
                let skip = |reason: String| Skipped {
                    group: name.clone(),
                    task_arn: d.task_arn.clone(),
                    reason,
                };
                let Ok(addr) = target.address.parse::<IpAddr>() else {
                    skipped.push(skip(format!("address {:?} is not an IP", target.address)));
                    continue;
                };
                let port = match u16::try_from(target.port) {
                    Ok(p) if p != 0 => p,
                    _ => {
                        skipped.push(skip(format!("port {} is not 1–65535", target.port)));
                        continue;
                    }
                };
                group.targets.push(Target {
                    key: TargetKey {
                        task_arn: d.task_arn.clone(),
                        container: d.container_name.clone(),
                        container_port: d.container_port,
                    },
                    addr,
                    port,
                    state,
                });
            }
            groups.insert(name, group);
        }
        (Self { groups }, skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire_target(
        task: &str,
        address: &str,
        port: u32,
        state: &str,
    ) -> v1::TargetHealthDescription {
        v1::TargetHealthDescription {
            target: Some(v1::Target {
                id: "i-1".into(),
                port,
                address: address.into(),
                ..Default::default()
            }),
            target_health: Some(v1::TargetHealth {
                state: state.into(),
                ..Default::default()
            }),
            task_arn: task.into(),
            container_name: "web".into(),
            container_port: 80,
            ..Default::default()
        }
    }

    #[test]
    fn converts_groups_and_skips_unroutable_targets() {
        let wire = v1::TargetsSnapshot {
            groups: vec![v1::TargetGroupTargets {
                target_group: Some(v1::TargetGroup {
                    target_group_name: "web".into(),
                    slow_start_seconds: 30,
                    ..Default::default()
                }),
                targets: vec![
                    wire_target("t1", "10.0.0.1", 20001, "healthy"),
                    wire_target("t2", "host.example", 20002, "healthy"),
                    wire_target("t3", "10.0.0.3", 0, "healthy"),
                    wire_target("t4", "::1", 20004, "draining"),
                    wire_target("t5", "10.0.0.5", 20005, "bogus"),
                ],
            }],
        };
        let (snap, skipped) = Snapshot::from_wire(wire);
        let g = &snap.groups["web"];
        assert_eq!(g.slow_start_seconds, 30);
        let states: Vec<_> = g
            .targets
            .iter()
            .map(|t| (&*t.key.task_arn, t.state))
            .collect();
        assert_eq!(
            states,
            [
                ("t1", TargetState::Healthy),
                ("t4", TargetState::Draining),
                ("t5", TargetState::Unavailable)
            ]
        );
        assert_eq!(skipped.len(), 2);
        assert_eq!(skipped[0].task_arn, "t2");
    }
}
