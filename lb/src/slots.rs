//! Pure slot logic: which server slot of a backend each target holds, what
//! each slot should be (address, port, admin state), and the Runtime API
//! commands that take HAProxy from what it was told last to that.
//!
//! Invariants (property-tested below):
//! - a target keeps its slot for as long as it is in the snapshots;
//! - no two targets share a slot;
//! - `ready` only for `healthy` targets, `drain` for `draining`, `maint`
//!   for every other target and every free slot;
//! - a slot never is `ready` at an address it does not end up ready at,
//!   except for the address it was ready at before (a reused slot goes to
//!   `maint` before its address changes).

use std::net::IpAddr;

use crate::targets::{Target, TargetKey, TargetState};

/// A server's admin state as the Runtime API sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    Ready,
    Drain,
    Maint,
}

impl AdminState {
    fn word(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Drain => "drain",
            Self::Maint => "maint",
        }
    }

    /// Only healthy targets take new requests; draining ones finish theirs.
    pub fn of(state: TargetState) -> Self {
        match state {
            TargetState::Healthy => Self::Ready,
            TargetState::Draining => Self::Drain,
            TargetState::Initial | TargetState::Unhealthy | TargetState::Unavailable => Self::Maint,
        }
    }
}

/// What one slot should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotWant {
    /// `None`: a free slot (its address does not matter).
    pub addr: Option<(IpAddr, u16)>,
    pub state: AdminState,
}

impl SlotWant {
    pub const FREE: Self = Self {
        addr: None,
        state: AdminState::Maint,
    };
}

/// The server name of slot `index` (0-based) in the `server-template`.
pub fn server_name(index: usize) -> String {
    format!("s{}", index + 1)
}

/// Gives every target a slot: a target already in `prev` keeps its index;
/// new ones (in key order) take free slots, those free before first, then
/// the ones just given up, then new indices past the end. The result is at
/// least `prev.len()` long; longer when the targets need more slots.
pub fn assign(prev: &[Option<TargetKey>], targets: &[Target]) -> Vec<Option<TargetKey>> {
    let wanted: std::collections::BTreeSet<&TargetKey> = targets.iter().map(|t| &t.key).collect();
    let mut next: Vec<Option<TargetKey>> = prev
        .iter()
        .map(|k| k.as_ref().filter(|k| wanted.contains(k)).cloned())
        .collect();
    let placed: std::collections::BTreeSet<TargetKey> = next.iter().flatten().cloned().collect();
    let never_used = (0..prev.len()).filter(|&i| prev[i].is_none());
    let just_freed = (0..prev.len()).filter(|&i| prev[i].is_some() && next[i].is_none());
    let mut free: Vec<usize> = never_used.chain(just_freed).collect();
    free.reverse();
    for key in wanted {
        if placed.contains(key) {
            continue;
        }
        match free.pop() {
            Some(i) => next[i] = Some(key.clone()),
            None => next.push(Some(key.clone())),
        }
    }
    next
}

/// What each slot should be, for slots assigned by [`assign`].
pub fn wants(slots: &[Option<TargetKey>], targets: &[Target]) -> Vec<SlotWant> {
    let by_key: std::collections::BTreeMap<&TargetKey, &Target> =
        targets.iter().map(|t| (&t.key, t)).collect();
    slots
        .iter()
        .map(|k| match k.as_ref().and_then(|k| by_key.get(k)) {
            Some(t) => SlotWant {
                addr: Some((t.addr, t.port)),
                state: AdminState::of(t.state),
            },
            None => SlotWant::FREE,
        })
        .collect()
}

/// The Runtime API commands that take `backend` from `prev` (what HAProxy
/// was told last; `None` when unknown, which re-sends everything) to
/// `next`.
pub fn commands(backend: &str, prev: Option<&[SlotWant]>, next: &[SlotWant]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, want) in next.iter().enumerate() {
        let before = prev.and_then(|p| p.get(i));
        if before == Some(want) {
            continue;
        }
        let server = format!("{backend}/{}", server_name(i));
        let state = |s: AdminState| format!("set server {server} state {}", s.word());
        match want.addr {
            None => out.push(state(AdminState::Maint)),
            Some((ip, port)) => {
                let set_addr = format!("set server {server} addr {ip} port {port}");
                let moved = before.is_some_and(|b| b.addr != want.addr);
                if moved && before.is_some_and(|b| b.state != AdminState::Maint) {
                    // Out of rotation before the address changes, so no
                    // request goes to the new address in the wrong state.
                    out.push(state(AdminState::Maint));
                }
                if want.state == AdminState::Ready {
                    out.push(set_addr);
                    out.push(state(AdminState::Ready));
                } else {
                    out.push(state(want.state));
                    out.push(set_addr);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn key(task: &str) -> TargetKey {
        TargetKey {
            task_arn: task.into(),
            container: "web".into(),
            container_port: 80,
        }
    }

    fn target(task: &str, last: u8, state: TargetState) -> Target {
        Target {
            key: key(task),
            addr: IpAddr::from([10, 0, 0, last]),
            port: 20000 + u16::from(last),
            state,
        }
    }

    #[test]
    fn targets_keep_their_slots_and_new_ones_fill_old_gaps_first() {
        use TargetState::*;
        let t = [
            target("a", 1, Healthy),
            target("b", 2, Healthy),
            target("c", 3, Healthy),
        ];
        let s1 = assign(&[None, None, None, None], &t);
        assert_eq!(s1, [Some(key("a")), Some(key("b")), Some(key("c")), None]);
        // b leaves, d arrives: d takes the never-used slot 3, not b's.
        let t2 = [t[0].clone(), t[2].clone(), target("d", 4, Healthy)];
        let s2 = assign(&s1, &t2);
        assert_eq!(s2, [Some(key("a")), None, Some(key("c")), Some(key("d"))]);
        // More targets than slots: the table grows.
        let t3: Vec<_> = (1..=6)
            .map(|i| target(&format!("t{i}"), i, Healthy))
            .collect();
        assert_eq!(assign(&[None, None], &t3).len(), 6);
    }

    #[test]
    fn commands_for_a_drain_then_removal() {
        use TargetState::*;
        let t = [target("a", 1, Healthy), target("b", 2, Healthy)];
        let slots = assign(&[None, None, None], &t);
        let w1 = wants(&slots, &t);
        let first = commands("tg_web", None, &w1);
        assert_eq!(
            first,
            [
                "set server tg_web/s1 addr 10.0.0.1 port 20001",
                "set server tg_web/s1 state ready",
                "set server tg_web/s2 addr 10.0.0.2 port 20002",
                "set server tg_web/s2 state ready",
                "set server tg_web/s3 state maint",
            ]
        );
        let t2 = [target("a", 1, Healthy), target("b", 2, Draining)];
        let w2 = wants(&slots, &t2);
        assert_eq!(
            commands("tg_web", Some(&w1), &w2),
            [
                "set server tg_web/s2 state drain",
                "set server tg_web/s2 addr 10.0.0.2 port 20002"
            ]
        );
        let t3 = [target("a", 1, Healthy)];
        let slots3 = assign(&slots, &t3);
        let w3 = wants(&slots3, &t3);
        assert_eq!(
            commands("tg_web", Some(&w2), &w3),
            ["set server tg_web/s2 state maint"]
        );
        assert!(commands("tg_web", Some(&w3), &w3).is_empty());
    }

    #[test]
    fn a_reused_slot_leaves_rotation_before_its_address_changes() {
        use TargetState::*;
        let t = [target("a", 1, Healthy)];
        let slots = assign(&[None], &t);
        let w1 = wants(&slots, &t);
        let t2 = [target("b", 2, Healthy)];
        let slots2 = assign(&slots, &t2);
        assert_eq!(slots2, [Some(key("b"))]);
        assert_eq!(
            commands("be", Some(&w1), &wants(&slots2, &t2)),
            [
                "set server be/s1 state maint",
                "set server be/s1 addr 10.0.0.2 port 20002",
                "set server be/s1 state ready"
            ]
        );
    }

    /// HAProxy as the commands leave it: slot → (address, state).
    type Model = BTreeMap<usize, (Option<(IpAddr, u16)>, AdminState)>;

    fn apply(model: &mut Model, cmd: &str) {
        let words: Vec<&str> = cmd.split(' ').collect();
        let slot: usize = words[2].split_once("/s").unwrap().1.parse().unwrap();
        let entry = model.entry(slot - 1).or_insert((None, AdminState::Maint));
        match words[3] {
            "addr" => entry.0 = Some((words[4].parse().unwrap(), words[6].parse().unwrap())),
            "state" => {
                entry.1 = match words[4] {
                    "ready" => AdminState::Ready,
                    "drain" => AdminState::Drain,
                    _ => AdminState::Maint,
                }
            }
            other => panic!("unexpected command {other}"),
        }
    }

    fn arb_snapshot() -> impl Strategy<Value = Vec<Target>> {
        let state = prop_oneof![
            Just(TargetState::Initial),
            Just(TargetState::Healthy),
            Just(TargetState::Unhealthy),
            Just(TargetState::Draining),
            Just(TargetState::Unavailable),
        ];
        proptest::collection::btree_map(0u8..12, (state, 1u8..4), 0..10).prop_map(|m| {
            m.into_iter()
                .map(|(task, (state, host))| Target {
                    key: key(&format!("t{task}")),
                    addr: IpAddr::from([10, 0, 0, host]),
                    port: 20000 + u16::from(task),
                    state,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn slots_are_stable_and_haproxy_ends_equal_to_the_targets(
            snapshots in proptest::collection::vec(arb_snapshot(), 1..8),
            start in 1usize..6,
        ) {
            let mut slots: Vec<Option<TargetKey>> = vec![None; start];
            let mut told: Option<Vec<SlotWant>> = None;
            let mut model = Model::new();
            for targets in snapshots {
                let next = assign(&slots, &targets);
                // Stable: a target in both snapshots keeps its index.
                for (i, k) in slots.iter().enumerate() {
                    if let Some(k) = k {
                        if targets.iter().any(|t| &t.key == k) {
                            prop_assert_eq!(next[i].as_ref(), Some(k));
                        }
                    }
                }
                // Unique, and every target placed.
                let placed: Vec<_> = next.iter().flatten().collect();
                let unique: std::collections::BTreeSet<_> = placed.iter().collect();
                prop_assert_eq!(placed.len(), unique.len());
                prop_assert_eq!(placed.len(), targets.len());
                let want = wants(&next, &targets);
                let old_model = model.clone();
                for cmd in commands("be", told.as_deref(), &want) {
                    apply(&mut model, &cmd);
                    // Never ready at an address that is not ready now or
                    // was not ready there before.
                    for (slot, (addr, state)) in &model {
                        if *state == AdminState::Ready {
                            let now = want.get(*slot).is_some_and(|w| w.state == AdminState::Ready && w.addr == *addr);
                            let before = old_model.get(slot).is_some_and(|(a, s)| *s == AdminState::Ready && a == addr);
                            prop_assert!(now || before, "slot {} ready at {:?} after {}", slot, addr, cmd);
                        }
                    }
                }
                for (i, w) in want.iter().enumerate() {
                    let (addr, state) = model.get(&i).copied().unwrap_or((None, AdminState::Maint));
                    prop_assert_eq!(state, w.state);
                    if w.addr.is_some() {
                        prop_assert_eq!(addr, w.addr);
                    }
                }
                let ready: usize = want.iter().filter(|w| w.state == AdminState::Ready).count();
                let healthy = targets.iter().filter(|t| t.state == TargetState::Healthy).count();
                prop_assert_eq!(ready, healthy);
                slots = next;
                told = Some(want);
            }
        }
    }
}
