//! The placement core: which container instance takes each task of a
//! request. Pure: a [`ClusterView`] in memory and a random source in,
//! placements out; the caller records them (see `crate::placer`).
//!
//! ECS's order for every task: the instance must be ACTIVE with its agent
//! connected, have the CPU, memory and host ports the task needs
//! (resources), and satisfy every constraint (binding); among the instances
//! left, the strategies choose (best effort), applied in order, each
//! breaking the ties of the one before; ties left at the end go to a random
//! one of them. Each placed task is applied to the view at once, so the next
//! task of the same request sees it (one pass for `count` > 1).
//!
//! Speed by design, so a request costs about the same on 10 or 10,000
//! instances:
//! - **Candidate sampling.** On up to [`EXHAUSTIVE_MAX`] instances every
//!   feasible instance is scored (exactly ECS's choice). On more, instances
//!   are visited in a random order and scoring stops at the first
//!   max(2, ⌈log₂ N⌉) feasible ones (Nomad's limit for binpack), so
//!   strategies choose among a sample, not the whole fleet. A task fails only
//!   after every instance was tried.
//! - **Indexes over remaining resources.** For `binpack` first in the chain,
//!   the instances with the least room that still fits are read from an
//!   ordered index and scored beside the sample, so packing stays tight.
//! - **Feasibility cached by attribute class.** A `memberOf` expression that
//!   reads only attributes is evaluated once per distinct attribute set per
//!   request.
//! - **Early failure.** When one task of a request cannot be placed, its
//!   siblings (same needs, a fuller view) are not tried again.

use std::collections::{BTreeSet, HashMap};

use rand::{Rng, RngCore};
use time::OffsetDateTime;

use super::cql::Facts;
use super::spec::{BinpackField, Constraint, SpreadField, Strategy};
use crate::records::{
    AllocationRecord, HostResources, InstanceRecord, InstanceStatus, Reservation,
};
use crate::reserve::{self, Shortfall, TaskNeeds};

/// Up to this many instances, every feasible one is scored.
pub const EXHAUSTIVE_MAX: usize = 64;

/// One container instance as placement sees it.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub status: InstanceStatus,
    pub connected: bool,
    pub agent_version: String,
    pub ec2_instance_id: String,
    pub registered_at: OffsetDateTime,
    /// Sorted by name.
    pub attributes: Vec<(String, String)>,
    pub resources: HostResources,
    pub alloc: AllocationRecord,
    /// Index of the node's attribute set in [`ClusterView`]'s classes.
    class: u32,
}

impl Node {
    /// A node from the stored records; `connected` from the sessions.
    pub fn from_records(inst: &InstanceRecord, alloc: AllocationRecord, connected: bool) -> Self {
        let registered_at =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(inst.registered_at) * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Node {
            id: inst.id.clone(),
            status: inst.status,
            connected,
            agent_version: inst.agent_version.clone(),
            ec2_instance_id: inst
                .attributes
                .iter()
                .find(|(k, _)| k == "ecs.ec2-instance-id")
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            registered_at,
            attributes: inst.attributes.clone(),
            resources: inst.resources.clone(),
            alloc,
            class: 0,
        }
    }

    fn remaining_memory(&self) -> i64 {
        self.resources.memory_mib - self.alloc.memory_mib
    }

    fn remaining_cpu(&self) -> i64 {
        self.resources.cpu_units - self.alloc.cpu_units
    }

    fn attribute_value(&self, name: &str) -> Option<&str> {
        self.attributes
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| self.attributes[i].1.as_str())
    }
}

impl Facts for Node {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attribute_value(name)
    }
    fn agent_connected(&self) -> bool {
        self.connected
    }
    fn agent_version(&self) -> &str {
        &self.agent_version
    }
    fn instance_id(&self) -> &str {
        &self.id
    }
    fn ec2_instance_id(&self) -> &str {
        &self.ec2_instance_id
    }
    fn registered_at(&self) -> OffsetDateTime {
        self.registered_at
    }
    fn running_tasks_count(&self) -> u32 {
        self.alloc.tasks
    }
    fn has_task_group(&self, group: &str) -> bool {
        self.alloc.group_count(group) > 0
    }
}

/// The instances of one cluster with what they hold, and the indexes
/// placement reads.
#[derive(Debug, Default, Clone)]
pub struct ClusterView {
    nodes: Vec<Node>,
    index: HashMap<String, u32>,
    classes: HashMap<Vec<(String, String)>, u32>,
    /// (remaining memory, node) and (remaining cpu, node).
    by_memory: BTreeSet<(i64, u32)>,
    by_cpu: BTreeSet<(i64, u32)>,
    /// group → node → tasks of the group there (mirrors `alloc.groups`).
    groups: HashMap<String, HashMap<u32, u32>>,
}

impl ClusterView {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.index.get(id).map(|&i| &self.nodes[i as usize])
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter()
    }

    /// Sets the agent's connection state of `id` (no-op for an unknown id).
    pub fn set_connected(&mut self, id: &str, connected: bool) {
        if let Some(&i) = self.index.get(id) {
            self.nodes[i as usize].connected = connected;
        }
    }

    /// Sets every node's connection state from `connected(id)`.
    pub fn refresh_connected(&mut self, connected: impl Fn(&str) -> bool) {
        for n in &mut self.nodes {
            n.connected = connected(&n.id);
        }
    }

    /// Records the desired-set generation the store now holds for `id`.
    pub fn set_generation(&mut self, id: &str, generation: u64) {
        if let Some(&i) = self.index.get(id) {
            self.nodes[i as usize].alloc.generation = generation;
        }
    }

    /// Adds `node`, or replaces the node with its id.
    pub fn upsert(&mut self, mut node: Node) {
        let next_class = self.classes.len() as u32;
        node.class = *self
            .classes
            .entry(node.attributes.clone())
            .or_insert(next_class);
        match self.index.get(&node.id) {
            Some(&i) => {
                self.unindex(i);
                self.nodes[i as usize] = node;
                self.reindex(i);
            }
            None => {
                let i = self.nodes.len() as u32;
                self.index.insert(node.id.clone(), i);
                self.nodes.push(node);
                self.reindex(i);
            }
        }
    }

    fn unindex(&mut self, i: u32) {
        let n = &self.nodes[i as usize];
        self.by_memory.remove(&(n.remaining_memory(), i));
        self.by_cpu.remove(&(n.remaining_cpu(), i));
        for g in n.alloc.groups.keys() {
            if let Some(m) = self.groups.get_mut(g) {
                m.remove(&i);
                if m.is_empty() {
                    self.groups.remove(g);
                }
            }
        }
    }

    fn reindex(&mut self, i: u32) {
        let n = &self.nodes[i as usize];
        self.by_memory.insert((n.remaining_memory(), i));
        self.by_cpu.insert((n.remaining_cpu(), i));
        for (g, &c) in &n.alloc.groups {
            self.groups.entry(g.clone()).or_default().insert(i, c);
        }
    }

    /// Records a placed task on node `i`: only the indexes it changes.
    fn apply(&mut self, i: u32, reservation: &Reservation, group: &str) {
        let n = &self.nodes[i as usize];
        self.by_memory.remove(&(n.remaining_memory(), i));
        self.by_cpu.remove(&(n.remaining_cpu(), i));
        let n = &mut self.nodes[i as usize];
        n.alloc.add_task(reservation, group);
        let count = n.alloc.group_count(group);
        let (memory, cpu) = (n.remaining_memory(), n.remaining_cpu());
        self.by_memory.insert((memory, i));
        self.by_cpu.insert((cpu, i));
        match self.groups.get_mut(group) {
            Some(m) => {
                m.insert(i, count);
            }
            None => {
                self.groups
                    .insert(group.to_owned(), HashMap::from([(i, count)]));
            }
        }
    }
}

/// One RunTask (or service) request: `count` tasks with the same needs.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub needs: &'a TaskNeeds,
    pub count: u32,
    pub group: &'a str,
    pub constraints: &'a [Constraint],
    pub strategies: &'a [Strategy],
}

/// A task placed on an instance, with the resources and ports it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub instance_id: String,
    pub reservation: Reservation,
}

/// Tasks that could not be placed, with ECS's reason and the closest
/// instance (the one that passed the most checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub instance_id: Option<String>,
    pub reason: String,
    pub detail: String,
    /// How many tasks of the request this failure stands for.
    pub tasks: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub placed: Vec<Placement>,
    pub failures: Vec<Failure>,
}

/// Why one instance cannot take the task, ranked: a later variant passed
/// more checks, so its instance is "closer".
#[derive(Debug, Clone, PartialEq, Eq)]
enum Miss {
    Unavailable { draining: bool },
    Resource(Shortfall),
    MemberOf,
    Distinct,
}

impl Miss {
    fn rank(&self) -> (u8, i64) {
        match self {
            Miss::Unavailable { .. } => (0, 0),
            Miss::Resource(Shortfall::Memory { remaining, .. }) => (1, *remaining),
            Miss::Resource(Shortfall::Cpu { remaining, .. }) => (2, *remaining),
            Miss::Resource(_) => (3, 0),
            Miss::MemberOf => (4, 0),
            Miss::Distinct => (5, 0),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Miss::Unavailable { draining: true } => "DRAINING",
            Miss::Unavailable { draining: false } => "AGENT",
            Miss::Resource(s) => s.reason(),
            Miss::MemberOf => "MemberOf placement constraint unsatisfied.",
            Miss::Distinct => "DistinctInstance placement constraint unsatisfied.",
        }
    }

    fn detail(&self) -> String {
        match self {
            Miss::Unavailable { draining: true } => {
                "every container instance is draining or deregistered".to_owned()
            }
            Miss::Unavailable { draining: false } => {
                "no container instance with a connected agent".to_owned()
            }
            Miss::Resource(s) => s.detail(),
            Miss::MemberOf => {
                "no container instance satisfies the memberOf expression(s)".to_owned()
            }
            Miss::Distinct => {
                "every container instance that fits already runs a task of the group".to_owned()
            }
        }
    }
}

/// Per-request caches.
struct Ctx<'a, R> {
    req: &'a Request<'a>,
    rng: &'a mut R,
    /// (constraint index, class) → member?
    class_cache: HashMap<(usize, u32), bool>,
    /// For each `spread` on an attribute (by strategy index): value → tasks
    /// of the group on instances with that value.
    spread_counts: Vec<HashMap<Option<String>, u32>>,
}

/// Places up to `req.count` tasks, applying each to `view`.
pub fn place<R: RngCore>(view: &mut ClusterView, req: &Request<'_>, rng: &mut R) -> Outcome {
    let mut ctx = Ctx {
        req,
        rng,
        class_cache: HashMap::new(),
        spread_counts: req
            .strategies
            .iter()
            .map(|s| match s {
                Strategy::Spread(SpreadField::Attribute(a)) => spread_counts(view, req.group, a),
                _ => HashMap::new(),
            })
            .collect(),
    };
    let mut out = Outcome::default();
    for placed in 0..req.count {
        match place_one(view, &mut ctx) {
            Ok((i, reservation)) => {
                view.apply(i, &reservation, req.group);
                let node = &view.nodes[i as usize];
                for (s, strategy) in req.strategies.iter().enumerate() {
                    if let Strategy::Spread(SpreadField::Attribute(a)) = strategy {
                        let value = node.attribute_value(a).map(str::to_owned);
                        *ctx.spread_counts[s].entry(value).or_insert(0) += 1;
                    }
                }
                out.placed.push(Placement {
                    instance_id: node.id.clone(),
                    reservation,
                });
            }
            Err(closest) => {
                let tasks = req.count - placed;
                let (instance_id, reason, detail) = match closest {
                    None => (
                        None,
                        "MISSING".to_owned(),
                        "No Container Instances were found in your cluster.".to_owned(),
                    ),
                    Some((i, miss)) => (
                        Some(view.nodes[i as usize].id.clone()),
                        miss.reason().to_owned(),
                        miss.detail(),
                    ),
                };
                out.failures.push(Failure {
                    instance_id,
                    reason,
                    detail,
                    tasks,
                });
                break;
            }
        }
    }
    out
}

fn spread_counts(view: &ClusterView, group: &str, attr: &str) -> HashMap<Option<String>, u32> {
    let mut counts = HashMap::new();
    if let Some(nodes) = view.groups.get(group) {
        for (&i, &c) in nodes {
            let value = view.nodes[i as usize]
                .attribute_value(attr)
                .map(str::to_owned);
            *counts.entry(value).or_insert(0) += c;
        }
    }
    counts
}

/// Why node `i` cannot take the task, or the reservation it would hold.
fn check<R: RngCore>(
    view: &ClusterView,
    i: u32,
    ctx: &mut Ctx<'_, R>,
) -> Result<Reservation, Miss> {
    let n = &view.nodes[i as usize];
    if n.status != InstanceStatus::Active || !n.connected {
        return Err(Miss::Unavailable {
            draining: n.status != InstanceStatus::Active,
        });
    }
    let needs = ctx.req.needs;
    // Cheap numeric checks before the port search.
    if needs.memory_mib > n.remaining_memory() {
        return Err(Miss::Resource(Shortfall::Memory {
            need: needs.memory_mib,
            remaining: n.remaining_memory().max(0),
        }));
    }
    if needs.cpu_units > n.remaining_cpu() {
        return Err(Miss::Resource(Shortfall::Cpu {
            need: needs.cpu_units,
            remaining: n.remaining_cpu().max(0),
        }));
    }
    for (c, constraint) in ctx.req.constraints.iter().enumerate() {
        match constraint {
            Constraint::DistinctInstance => {
                if n.alloc.group_count(ctx.req.group) > 0 {
                    return Err(Miss::Distinct);
                }
            }
            Constraint::MemberOf(expr) => {
                let member = if expr.depends_only_on_attributes() {
                    *ctx.class_cache
                        .entry((c, n.class))
                        .or_insert_with(|| expr.eval(n))
                } else {
                    expr.eval(n)
                };
                if !member {
                    return Err(Miss::MemberOf);
                }
            }
        }
    }
    let seed = ctx.rng.next_u64();
    reserve::reserve(needs, &n.resources, &n.alloc, seed).map_err(Miss::Resource)
}

fn better(a: &Miss, b: &Miss) -> bool {
    a.rank() > b.rank()
}

/// A strategy's score for node `i` (lower is better).
fn score<R: RngCore>(view: &ClusterView, i: u32, ctx: &mut Ctx<'_, R>, s: usize) -> i64 {
    let n = &view.nodes[i as usize];
    match &ctx.req.strategies[s] {
        Strategy::Binpack(BinpackField::Memory) => n.remaining_memory() - ctx.req.needs.memory_mib,
        Strategy::Binpack(BinpackField::Cpu) => n.remaining_cpu() - ctx.req.needs.cpu_units,
        Strategy::Spread(SpreadField::Instance) => i64::from(n.alloc.group_count(ctx.req.group)),
        Strategy::Spread(SpreadField::Attribute(a)) => {
            let value = n.attribute_value(a).map(str::to_owned);
            i64::from(ctx.spread_counts[s].get(&value).copied().unwrap_or(0))
        }
        Strategy::Random => (ctx.rng.next_u64() >> 1) as i64,
    }
}

type Candidate = (u32, Reservation);

/// The node for the next task, or the closest miss (None: no nodes).
fn place_one<R: RngCore>(
    view: &ClusterView,
    ctx: &mut Ctx<'_, R>,
) -> Result<Candidate, Option<(u32, Miss)>> {
    let n = view.nodes.len();
    if n == 0 {
        return Err(None);
    }
    let exhaustive = n <= EXHAUSTIVE_MAX;
    let limit = if exhaustive {
        n
    } else {
        (usize::BITS - (n - 1).leading_zeros()).max(2) as usize
    };
    let mut candidates: Vec<Candidate> = Vec::with_capacity(limit.min(n) + 4);
    let mut seen: Vec<u32> = Vec::new();
    let mut closest: Option<(u32, Miss)> = None;
    let mut consider =
        |i: u32, ctx: &mut Ctx<'_, R>, candidates: &mut Vec<Candidate>| match check(view, i, ctx) {
            Ok(r) => candidates.push((i, r)),
            Err(m) => {
                if closest.as_ref().is_none_or(|(_, c)| better(&m, c)) {
                    closest = Some((i, m));
                }
            }
        };
    if exhaustive {
        for i in 0..n as u32 {
            consider(i, ctx, &mut candidates);
        }
    } else {
        // Index hints: the tightest fits for binpack first in the chain.
        if let Some(Strategy::Binpack(field)) = ctx.req.strategies.first() {
            let (index, need) = match field {
                BinpackField::Memory => (&view.by_memory, ctx.req.needs.memory_mib),
                BinpackField::Cpu => (&view.by_cpu, ctx.req.needs.cpu_units),
            };
            let hints: Vec<u32> = index
                .range((need, 0)..)
                .take(limit * 4)
                .map(|&(_, i)| i)
                .collect();
            for i in hints {
                let before = candidates.len();
                consider(i, ctx, &mut candidates);
                seen.push(i);
                if candidates.len() > before && candidates.len() >= limit {
                    break;
                }
            }
        }
        // A random walk over every node: start anywhere, step by a stride
        // coprime with n, so each node is visited once.
        let start = ctx.rng.random_range(0..n);
        let mut stride = ctx.rng.random_range(1..n.max(2));
        while gcd(stride, n) != 1 {
            stride += 1;
        }
        let hinted = candidates.len();
        for k in 0..n {
            if candidates.len() >= limit + hinted {
                break;
            }
            let i = ((start + k * stride) % n) as u32;
            if seen.contains(&i) {
                continue;
            }
            consider(i, ctx, &mut candidates);
        }
    }
    if candidates.is_empty() {
        return Err(closest);
    }
    // Each strategy keeps the best-scoring candidates; the next breaks ties.
    for s in 0..ctx.req.strategies.len() {
        if candidates.len() == 1 {
            break;
        }
        let scores: Vec<i64> = candidates
            .iter()
            .map(|(i, _)| score(view, *i, ctx, s))
            .collect();
        let best = scores.iter().copied().min().unwrap_or(0);
        let mut k = 0;
        candidates.retain(|_| {
            let keep = scores[k] == best;
            k += 1;
            keep
        });
    }
    let pick = ctx.rng.random_range(0..candidates.len());
    Ok(candidates.swap_remove(pick))
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests;
