//! The scheduler's side of the agent link, in domain terms: an agent's
//! `Connect` stream as a loop over [`AgentEvent`]s in and [`ToAgent`]s out
//! ([`session`]), the desired set each agent is sent ([`desired`]), and which
//! instances hold a live stream, with their heartbeats ([`sessions`]).
//!
//! `api::agent` is the edge: it authenticates the stream, reads the Hello,
//! converts every `AgentMessage` into an [`AgentEvent`] and every
//! [`ToAgent`] (and [`StreamError`]) back into prost and tonic. Nothing here
//! sees a prost type.

pub mod desired;
pub mod session;
pub mod sessions;

use std::sync::Arc;

use berth_proto::arn::ArnPrefix;

use crate::agent_link::{LogPart, LogQuery, LogRouter};
use crate::db::{Db, TaskReport};
use crate::exec_link::{ExecFrame, ExecInput, ExecRouter, ExecSpec};
use crate::secrets::Secrets;

pub use desired::{DesiredSet, DesiredTask, DesiredUpdate};
pub use session::AgentSession;

/// What the agent link reads and writes besides the stream itself.
#[derive(Debug, Clone)]
pub struct Context {
    pub db: Db,
    pub arn: Arc<ArnPrefix>,
    pub secrets: Secrets,
    pub logs: LogRouter,
    pub execs: ExecRouter,
    /// Task stats, in memory ([`crate::usage`]).
    pub usage: crate::usage::UsageBook,
    /// Definitions and secrets as last rendered for the agents.
    pub rendered: desired::RenderCache,
}

/// One message from an agent, as the edge validated it.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// A Hello after the first, which opened the stream (ignored).
    Hello,
    /// A heartbeat, or a message with nothing in it: proof of life only.
    Heartbeat,
    /// A task's status.
    Report(TaskReport),
    /// A task report the edge refused, with why; it is logged and ignored.
    InvalidReport(String),
    /// Part of the answer to a log request.
    LogChunk { request_id: u64, part: LogPart },
    /// Output of an exec.
    ExecOutput { stream_id: u64, frame: ExecFrame },
    /// The agent applied a desired state (`resync`: it could not, and
    /// needs the whole set).
    DesiredAck { generation: u64, resync: bool },
    /// A usage sample of every task the agent runs.
    Usage(crate::usage::UsageBatch),
}

/// One message to an agent.
#[derive(Debug, Clone, PartialEq)]
pub enum ToAgent {
    /// The desired set, whole or as a delta from what was sent last
    /// (to agents that take deltas; [`berth_proto::delta`]).
    Desired(DesiredUpdate),
    LogRequest {
        request_id: u64,
        query: LogQuery,
    },
    LogCancel {
        request_id: u64,
    },
    ExecStart {
        stream_id: u64,
        spec: ExecSpec,
    },
    ExecInput {
        stream_id: u64,
        input: ExecInput,
    },
    ExecCancel {
        stream_id: u64,
    },
    /// Sample usage every `interval_ms` (0: the agent's own interval).
    StatsSampling {
        interval_ms: u32,
    },
}

/// How the scheduler ends an agent's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// Come back later (a failure, or the scheduler shutting down).
    Unavailable(String),
    /// The instance was deregistered.
    PermissionDenied(String),
}
