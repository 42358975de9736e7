//! A recording fake of [`TaskOps`] for unit tests of the runner and the
//! supervisor: containers are entries in a map, exits are triggered by the
//! test or by signals, every call is logged.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use berth_proto::taskdef::NetworkMode;
use tokio::sync::watch;

use super::ops::{ExecOutput, ExitInfo, NetworkInfo, Observed, OpsError, PullInfo, TaskOps};
use super::plan::{ContainerPlan, TaskPlan};
use super::report::Binding;
use super::targets::ProbeOutcome;
use crate::desired::TargetHealthCheck;

#[derive(Debug, Default)]
pub struct FakeOps {
    pub calls: Mutex<Vec<String>>,
    exits: Mutex<HashMap<String, watch::Sender<Option<ExitInfo>>>>,
    /// Images whose pull fails with this cause.
    pub failing_images: Mutex<HashMap<String, String>>,
    /// Containers that ignore SIGTERM (only SIGKILL ends them).
    pub ignore_sigterm: Mutex<Vec<String>>,
    pub observed: Mutex<Vec<Observed>>,
    /// Exit code of commands exec'd in a container (default 0).
    pub exec_codes: Mutex<HashMap<String, i32>>,
    /// What probing an address finds (default: success).
    pub probe_outcomes: Mutex<HashMap<SocketAddrV4, ProbeOutcome>>,
}

/// The address the fake's bridge gives every bridge and awsvpc task.
pub const FAKE_TASK_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

/// What the host's bridge would give `plan`: an address unless in host or
/// none mode.
fn fake_address(plan: &TaskPlan) -> Option<Ipv4Addr> {
    matches!(plan.network_mode, NetworkMode::Bridge | NetworkMode::Awsvpc).then_some(FAKE_TASK_IP)
}

impl FakeOps {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn call(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn channel(&self, id: &str) -> watch::Sender<Option<ExitInfo>> {
        self.exits
            .lock()
            .unwrap()
            .entry(id.to_owned())
            .or_insert_with(|| watch::channel(None).0)
            .clone()
    }

    /// Commands exec'd in container `id` exit with `code` from now on.
    pub fn set_exec_code(&self, id: &str, code: i32) {
        self.exec_codes.lock().unwrap().insert(id.to_owned(), code);
    }

    /// Probes of `to` find `outcome` from now on.
    pub fn set_probe(&self, to: SocketAddrV4, outcome: ProbeOutcome) {
        self.probe_outcomes.lock().unwrap().insert(to, outcome);
    }

    /// How often `call` was made (exactly).
    pub fn count(&self, call: &str) -> usize {
        self.calls().iter().filter(|c| *c == call).count()
    }

    /// The container's process exits now.
    pub fn exit(&self, id: &str, code: i32, oom: bool) {
        self.channel(id).send_replace(Some(ExitInfo {
            code,
            at: SystemTime::now(),
            oom_killed: oom,
        }));
    }
}

impl TaskOps for FakeOps {
    type Image = String;
    type Prepared = ();

    async fn pull(
        &self,
        _plan: &TaskPlan,
        c: &ContainerPlan,
    ) -> Result<(String, PullInfo), OpsError> {
        self.call(format!("pull {}", c.image));
        if let Some(cause) = self.failing_images.lock().unwrap().get(&c.image) {
            return Err(OpsError::Pull(cause.clone()));
        }
        Ok((
            c.image.clone(),
            PullInfo {
                digest: format!("sha256:{}", c.image.len()),
                stop_signal: None,
            },
        ))
    }

    async fn prepare(&self, plan: &TaskPlan) -> Result<((), NetworkInfo), OpsError> {
        self.call(format!("prepare {}", plan.id));
        let bindings = plan
            .ports
            .iter()
            .map(|p| Binding {
                bind_ip: "0.0.0.0".into(),
                container_port: p.container_port,
                host_port: p.host_port,
                protocol: p.protocol,
            })
            .collect();
        Ok((
            (),
            NetworkInfo {
                bindings,
                ipv4: fake_address(plan),
            },
        ))
    }

    async fn adopt(&self, plan: &TaskPlan) -> Result<NetworkInfo, OpsError> {
        self.call(format!("adopt {}", plan.id));
        Ok(NetworkInfo {
            bindings: vec![],
            ipv4: fake_address(plan),
        })
    }

    async fn start(
        &self,
        _plan: &TaskPlan,
        c: &ContainerPlan,
        _image: &String,
        _p: &(),
    ) -> Result<u32, OpsError> {
        self.call(format!("start {}", c.runtime_id));
        self.channel(&c.runtime_id);
        Ok(4242)
    }

    async fn wait(&self, _plan: &TaskPlan, id: &str) -> Result<ExitInfo, OpsError> {
        let mut rx = self.channel(id).subscribe();
        loop {
            if let Some(e) = rx.borrow_and_update().clone() {
                return Ok(e);
            }
            if rx.changed().await.is_err() {
                return Err(OpsError::Runtime("gone".into()));
            }
        }
    }

    async fn signal(&self, id: &str, signal: &str) -> Result<(), OpsError> {
        self.call(format!("signal {id} {signal}"));
        let ignores = self.ignore_sigterm.lock().unwrap().contains(&id.to_owned());
        match signal {
            "SIGKILL" => self.exit(id, 137, false),
            _ if !ignores => self.exit(id, 143, false),
            _ => {}
        }
        Ok(())
    }

    async fn exec(
        &self,
        _plan: &TaskPlan,
        c: &ContainerPlan,
        argv: &[String],
        _timeout: Duration,
    ) -> Result<ExecOutput, OpsError> {
        self.call(format!("exec {} {}", c.runtime_id, argv.join(" ")));
        let code = self
            .exec_codes
            .lock()
            .unwrap()
            .get(&c.runtime_id)
            .copied()
            .unwrap_or(0);
        Ok(ExecOutput {
            exit_code: code,
            output: format!("exit {code}"),
            timed_out: false,
        })
    }

    async fn restart(&self, _plan: &TaskPlan, c: &ContainerPlan) -> Result<u32, OpsError> {
        self.call(format!("restart {}", c.runtime_id));
        self.channel(&c.runtime_id).send_replace(None);
        Ok(4343)
    }

    async fn teardown(&self, plan: &TaskPlan) -> Result<(), OpsError> {
        self.call(format!("teardown {}", plan.id));
        Ok(())
    }

    async fn remove(&self, plan: &TaskPlan) -> Result<(), OpsError> {
        self.call(format!("remove {}", plan.id));
        Ok(())
    }

    async fn probe_target(&self, to: SocketAddrV4, _check: &TargetHealthCheck) -> ProbeOutcome {
        self.call(format!("probe {to}"));
        let outcome = self.probe_outcomes.lock().unwrap().get(&to).cloned();
        match outcome {
            // A timeout is a probe that never ends: the caller bounds it.
            Some(ProbeOutcome::Timeout) => std::future::pending().await,
            Some(o) => o,
            None => ProbeOutcome::Success,
        }
    }

    async fn observe(&self) -> Result<Vec<Observed>, OpsError> {
        self.call("observe".into());
        Ok(self.observed.lock().unwrap().clone())
    }
}
