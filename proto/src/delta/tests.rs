//! The delta protocol under random interleavings: changes, notifications,
//! deliveries, lost messages, reconnects and restarts of either side. After
//! the link settles, the agent holds exactly the scheduler's set.

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone, PartialEq)]
struct Item {
    key: String,
    value: u32,
}

impl Keyed for Item {
    fn key(&self) -> &str {
        &self.key
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// The store changes one task (None: it leaves the set); the
    /// generation rises. Nothing is sent yet (notifications coalesce).
    Change(u8, Option<u32>),
    /// The session sees the generation move and sends what changed.
    Notify,
    /// The agent takes the next message off the stream.
    Deliver,
    /// The scheduler takes the agent's next ack or resync request.
    DeliverUp,
    /// The next message to the agent is lost.
    Lose,
    /// The periodic tick: an update unacknowledged for a whole tick is
    /// followed by the whole set.
    Tick,
    /// The stream breaks (or the agent or the scheduler restarts): both
    /// ends start over and the whole set is sent first.
    Reconnect,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..8, proptest::option::of(0u32..4)).prop_map(|(k, v)| Op::Change(k, v)),
        3 => Just(Op::Notify),
        4 => Just(Op::Deliver),
        2 => Just(Op::DeliverUp),
        1 => Just(Op::Lose),
        1 => Just(Op::Tick),
        1 => Just(Op::Reconnect),
    ]
}

enum Up {
    Ack(u64),
    Resync,
}

struct Link {
    deltas: bool,
    truth: BTreeMap<String, u32>,
    generation: u64,
    sender: DeltaSender<Item>,
    receiver: DeltaReceiver<Item>,
    down: VecDeque<Update<Item>>,
    up: VecDeque<Up>,
    sent_bytes: usize,
}

impl Link {
    fn new(deltas: bool) -> Self {
        let mut link = Self {
            deltas,
            truth: BTreeMap::new(),
            generation: 1,
            sender: DeltaSender::new(deltas),
            receiver: DeltaReceiver::default(),
            down: VecDeque::new(),
            up: VecDeque::new(),
            sent_bytes: 0,
        };
        link.notify();
        link
    }

    fn items(&self) -> Vec<Item> {
        self.truth
            .iter()
            .map(|(k, v)| Item {
                key: k.clone(),
                value: *v,
            })
            .collect()
    }

    fn notify(&mut self) {
        if let Some(u) = self.sender.update(self.generation, self.items()) {
            self.sent_bytes += u.items().len();
            self.down.push_back(u);
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Change(k, v) => {
                let key = format!("task-{k}");
                match v {
                    Some(v) => self.truth.insert(key, *v),
                    None => self.truth.remove(&key),
                };
                self.generation += 1;
            }
            Op::Notify => self.notify(),
            Op::Deliver => {
                if let Some(u) = self.down.pop_front() {
                    match self.receiver.apply(u) {
                        Ok(g) => {
                            if self.deltas {
                                self.up.push_back(Up::Ack(g));
                            }
                        }
                        Err(_) => self.up.push_back(Up::Resync),
                    }
                }
            }
            Op::DeliverUp => match self.up.pop_front() {
                Some(Up::Ack(g)) => self.sender.ack(g),
                Some(Up::Resync) => {
                    self.sender.resync();
                    self.notify();
                }
                None => {}
            },
            Op::Lose => {
                self.down.pop_front();
            }
            Op::Tick => {
                if self.sender.overdue() {
                    self.sender.resync();
                    self.notify();
                }
            }
            Op::Reconnect => {
                self.down.clear();
                self.up.clear();
                self.receiver.reset();
                self.sender = DeltaSender::new(self.deltas);
                self.notify();
            }
        }
    }

    /// No more changes: the session is notified of the last one, messages
    /// flow both ways and ticks pass until nothing is in flight.
    fn settle(&mut self) {
        self.notify();
        for _ in 0..100 {
            while !self.down.is_empty() || !self.up.is_empty() {
                self.step(&Op::Deliver);
                self.step(&Op::DeliverUp);
            }
            self.step(&Op::Tick);
            if self.down.is_empty() && self.up.is_empty() {
                self.step(&Op::Tick);
                if self.down.is_empty() {
                    return;
                }
            }
        }
        panic!("the link did not settle");
    }

    fn held(&self) -> BTreeMap<String, u32> {
        self.receiver
            .items()
            .map(|i| (i.key.clone(), i.value))
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_agent_converges_to_the_schedulers_set(
        deltas in any::<bool>(),
        ops in proptest::collection::vec(op(), 0..120),
    ) {
        let mut link = Link::new(deltas);
        for op in &ops {
            link.step(op);
        }
        link.settle();
        prop_assert_eq!(link.held(), link.truth.clone());
        prop_assert_eq!(link.receiver.generation(), link.sender.sent());
        if deltas {
            prop_assert_eq!(link.sender.acked(), link.sender.sent());
        }
    }
}

#[test]
fn a_delta_carries_only_what_changed() {
    let item = |k: &str, v: u32| Item {
        key: k.into(),
        value: v,
    };
    let mut s = DeltaSender::new(true);
    let mut r = DeltaReceiver::default();
    let first = s.update(1, vec![item("a", 1), item("b", 1)]).unwrap();
    assert!(matches!(first, Update::Full { generation: 1, .. }));
    assert_eq!(r.apply(first), Ok(1));

    let next = s
        .update(2, vec![item("a", 1), item("b", 2), item("c", 1)])
        .unwrap();
    assert_eq!(
        next,
        Update::Delta {
            base: 1,
            generation: 2,
            upserts: vec![item("b", 2), item("c", 1)],
            removed: vec![],
        }
    );
    assert_eq!(r.apply(next), Ok(2));
    let gone = s.update(3, vec![item("b", 2), item("c", 1)]).unwrap();
    assert_eq!(
        gone,
        Update::Delta {
            base: 2,
            generation: 3,
            upserts: vec![],
            removed: vec!["a".into()],
        }
    );
    // A generation that changes nothing sends nothing, and stays the base.
    assert_eq!(s.update(4, vec![item("b", 2), item("c", 1)]), None);
    assert_eq!(s.sent(), Some(3));
    assert_eq!(r.apply(gone), Ok(3));
    assert_eq!(
        r.items().cloned().collect::<Vec<_>>(),
        [item("b", 2), item("c", 1)]
    );
}

#[test]
fn a_delta_on_the_wrong_base_asks_for_the_whole_set() {
    let item = |k: &str| Item {
        key: k.into(),
        value: 0,
    };
    let mut r = DeltaReceiver::default();
    let delta = |base, generation| Update::Delta {
        base,
        generation,
        upserts: vec![item("x")],
        removed: vec![],
    };
    assert_eq!(
        r.apply(delta(1, 2)),
        Err(Resync {
            base: 1,
            held: None
        })
    );
    r.apply(Update::Full {
        generation: 5,
        items: vec![],
    })
    .unwrap();
    assert_eq!(
        r.apply(delta(4, 6)),
        Err(Resync {
            base: 4,
            held: Some(5)
        })
    );
    // Nothing is held after a refusal: the next delta is refused too.
    assert!(r.apply(delta(5, 6)).is_err());
}

#[test]
fn an_agent_without_deltas_always_gets_the_whole_set_and_is_never_overdue() {
    let mut s = DeltaSender::new(false);
    let item = Item {
        key: "a".into(),
        value: 1,
    };
    for g in 1..4 {
        assert!(matches!(
            s.update(g, vec![item.clone()]),
            Some(Update::Full { .. })
        ));
        assert!(!s.overdue());
    }
}

#[test]
fn an_update_unacknowledged_for_a_whole_tick_is_overdue() {
    let mut s = DeltaSender::new(true);
    s.update(
        1,
        vec![Item {
            key: "a".into(),
            value: 1,
        }],
    );
    assert!(!s.overdue(), "the first tick only notes it");
    assert!(s.overdue(), "still unacknowledged a tick later");
    s.ack(1);
    assert!(!s.overdue());
}
