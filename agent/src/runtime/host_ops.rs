//! [`TaskOps`] on the real host: images through [`ImageStore`], task
//! networks through [`Networking`] (CNI), limits through [`CgroupManager`],
//! containers and their processes through containerd (runc), output through
//! the `binary://` log driver.
//!
//! Per-task files live under `<task_dir>/<task id>/` (the /etc files each
//! container mounts, task-scoped volumes); logs under `<log_dir>/<task id>/`.
//! Both go in [`TaskOps::remove`], after the cleanup wait.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use berth_proto::taskdef::{ContainerDefinition, LogDriver, NetworkMode, TaskDefinition};
use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
};
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateRequest as CreateLeaseRequest, CreateTaskRequest,
    DeleteContainerRequest, DeleteProcessRequest, DeleteRequest as DeleteLeaseRequest,
    DeleteTaskRequest, ExecProcessRequest, GetContainerRequest, GetRequest, KillRequest,
    ListContainersRequest, StartRequest, WaitRequest,
};
use containerd_client::types::Mount;
use tonic::Code;

use super::cgroups::{CgroupManager, TaskLimits};
use super::containerd::Containerd;
use super::image::{ImageStore, PullPolicy, PulledImage};
use super::lifecycle::truncate_output;
use super::network::{self, Networking, PortMapping};
use super::ops::{
    ExecOutput, ExitInfo, NetworkInfo, Observed, ObservedState, OpsError, PullInfo, TaskOps,
};
use super::plan::{labels, ContainerPlan, TaskPlan};
use super::report::Binding;
use super::spec;
use super::task_env;
use crate::logs::driver::{binary_uri, DriverArgs};
use crate::logs::server::log_path;
use crate::metadata::registry::{ContainerEvent, NetworkFacts, TaskEntry};
use crate::metadata::Registry;

/// containerd's runc shim.
const RUNC_RUNTIME: &str = "io.containerd.runc.v2";
/// Default pids limit of a task cgroup (a fork bomb stays in its task).
const TASK_PIDS_MAX: i64 = 4096;
/// containerd's type for an exec'd process's OCI spec.
const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// Settings of [`HostOps`].
#[derive(Debug, Clone)]
pub struct HostOpsConfig {
    pub pull_policy: PullPolicy,
    /// The `berth-agent` binary the shim runs as the log driver.
    pub agent_binary: PathBuf,
    pub log_dir: PathBuf,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    /// Per-task files: `/etc` files, task-scoped volumes.
    pub task_dir: PathBuf,
    pub snapshotter: String,
    /// The host's name (containers in host network mode take it).
    pub hostname: String,
    /// `http://addr:port` of the task metadata endpoint; `None` when it is
    /// off (containers then get no `ECS_CONTAINER_METADATA_URI*`).
    pub metadata_base: Option<String>,
    /// The address containers get as `BERTH_HOST_IP`.
    pub host_ip: Option<std::net::IpAddr>,
}

/// What `prepare` set up for a task.
#[derive(Debug)]
pub struct PreparedTask {
    network: network::TaskNetwork,
    volumes: BTreeMap<String, PathBuf>,
    /// With pidMode/ipcMode `task`: the first container's namespaces.
    shared_ns: Mutex<Option<(PathBuf, PathBuf)>>,
}

/// The host implementation of [`TaskOps`].
#[derive(Debug)]
pub struct HostOps {
    ctd: Containerd,
    images: ImageStore,
    network: Networking,
    cgroups: CgroupManager,
    cfg: HostOpsConfig,
    init_binary: Option<PathBuf>,
    /// Image names in use by containers this agent started or adopted.
    in_use: Mutex<HashMap<String, String>>,
    /// Numbers exec ids (`berth-exec-<n>`).
    execs: AtomicU64,
    /// What the task metadata endpoint serves (written here, read there).
    metadata: Registry,
}

fn rt(op: &str, status: tonic::Status) -> OpsError {
    OpsError::Runtime(format!("containerd {op}: {}", status.message()))
}

fn system_time(t: Option<prost_types::Timestamp>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or_else(SystemTime::now)
}

fn signal_number(name: &str) -> Result<u32, OpsError> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<nix::sys::signal::Signal>()
        .map(|s| s as u32)
        .map_err(|_| OpsError::Runtime(format!("unknown stop signal {name:?}")))
}

fn definition(plan: &TaskPlan) -> Result<&TaskDefinition, OpsError> {
    plan.definition.as_deref().ok_or_else(|| {
        OpsError::Prepare(format!("task {} has no definition to start from", plan.arn))
    })
}

fn container_def<'a>(
    def: &'a TaskDefinition,
    name: &str,
) -> Result<&'a ContainerDefinition, OpsError> {
    def.container_definitions
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| OpsError::Create(format!("no container {name:?} in the definition")))
}

fn network_mode(m: NetworkMode) -> network::Mode {
    match m {
        NetworkMode::Bridge => network::Mode::Bridge,
        NetworkMode::Host => network::Mode::Host,
        NetworkMode::Awsvpc => network::Mode::Awsvpc,
        NetworkMode::None => network::Mode::None,
    }
}

fn network_facts(n: &network::TaskNetwork) -> NetworkFacts {
    NetworkFacts {
        ip: n.ip,
        prefix_len: n.prefix_len,
        gateway: n.gateway,
        host_veth: n.host_veth.clone(),
    }
}

/// What the runner reports of a task's network: its host ports and its
/// IPv4 address on the bridge.
fn network_info(n: &network::TaskNetwork) -> NetworkInfo {
    NetworkInfo {
        bindings: n
            .bindings
            .iter()
            .map(|b| Binding {
                bind_ip: b.bind_ip.to_string(),
                container_port: b.container_port,
                host_port: b.host_port,
                protocol: b.protocol,
            })
            .collect(),
        ipv4: match n.ip {
            Some(std::net::IpAddr::V4(ip)) => Some(ip),
            _ => None,
        },
    }
}

/// Mounts `mounts` (a snapshot's) on a temporary directory for `f`, then
/// unmounts it. Used to read the image's /etc/passwd for named users.
fn with_rootfs<T>(mounts: &[Mount], f: impl FnOnce(&Path) -> T) -> Result<T, OpsError> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let dir = tempfile::tempdir().map_err(|e| OpsError::Create(format!("temp dir: {e}")))?;
    let m = mounts
        .first()
        .ok_or_else(|| OpsError::Create("the snapshot has no mounts".into()))?;
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in &m.options {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "bind" => flags |= MsFlags::MS_BIND,
            "rw" => {}
            other => data.push(other.to_owned()),
        }
    }
    let data = data.join(",");
    mount(
        Some(m.source.as_str()),
        dir.path(),
        Some(m.r#type.as_str()),
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(|e| OpsError::Create(format!("mounting the rootfs to read users: {e}")))?;
    let out = f(dir.path());
    if let Err(e) = umount2(dir.path(), MntFlags::MNT_DETACH) {
        tracing::warn!(cause = %e, "unmounting a temporary rootfs failed");
    }
    Ok(out)
}

impl HostOps {
    pub fn new(
        ctd: Containerd,
        images: ImageStore,
        network: Networking,
        cgroups: CgroupManager,
        cfg: HostOpsConfig,
    ) -> Self {
        Self {
            ctd,
            images,
            network,
            cgroups,
            cfg,
            init_binary: spec::find_init_binary(),
            in_use: Mutex::new(HashMap::new()),
            execs: AtomicU64::new(0),
            metadata: Registry::default(),
        }
    }

    /// Shares `registry` with the task metadata endpoint: tasks are entered
    /// once their network is set up (or re-adopted) and forgotten at
    /// teardown.
    pub fn with_metadata(mut self, registry: Registry) -> Self {
        self.metadata = registry;
        self
    }

    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// Image names used by containers this agent supervises (for image GC).
    pub fn images_in_use(&self) -> std::collections::HashSet<String> {
        self.in_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn task_dir(&self, plan: &TaskPlan) -> PathBuf {
        self.cfg.task_dir.join(&plan.id)
    }

    /// The log driver's arguments for container `name`; `c` (absent for an
    /// adopted task) gives json-file's own options.
    fn log_args(&self, plan: &TaskPlan, name: &str, c: Option<&ContainerDefinition>) -> DriverArgs {
        let mut args = DriverArgs {
            file: log_path(&self.cfg.log_dir, &plan.id, name),
            max_bytes: self.cfg.log_max_bytes,
            max_files: self.cfg.log_max_files,
        };
        // json-file's own options, as Docker reads them.
        if let Some(lc) = c.and_then(|c| c.log_configuration.as_ref()) {
            if lc.log_driver == LogDriver::JsonFile {
                if let Some(v) = lc
                    .options
                    .get("max-size")
                    .and_then(|v| v.parse::<crate::config::ByteSize>().ok())
                {
                    args.max_bytes = v.0;
                }
                if let Some(v) = lc
                    .options
                    .get("max-file")
                    .and_then(|v| v.parse::<u32>().ok())
                {
                    args.max_files = v.max(1);
                }
            }
        }
        args
    }

    async fn delete_task(&self, id: &str) {
        let req = self.ctd.with_namespace(DeleteTaskRequest {
            container_id: id.to_owned(),
        });
        match self.ctd.tasks().delete(req).await {
            Ok(_) => {}
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => {
                tracing::warn!(container = %id, cause = %s.message(), "deleting the containerd task failed")
            }
        }
    }

    /// Removes a container and its snapshot left from an earlier attempt.
    async fn remove_container(&self, id: &str) -> Result<(), OpsError> {
        self.delete_task(id).await;
        let req = self
            .ctd
            .with_namespace(DeleteContainerRequest { id: id.to_owned() });
        match self.ctd.containers().delete(req).await {
            Ok(_) => {}
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => return Err(rt("delete container", s)),
        }
        let req = self.ctd.with_namespace(RemoveSnapshotRequest {
            snapshotter: self.cfg.snapshotter.clone(),
            key: id.to_owned(),
        });
        match self.ctd.snapshots().remove(req).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(rt("remove snapshot", s)),
        }
    }

    /// A lease that keeps a container's new rootfs snapshot from
    /// containerd's GC until the container that references it exists (a GC
    /// run between the two, e.g. the one a pull's finished lease triggers,
    /// would otherwise collect the unreferenced snapshot). It expires by
    /// itself should the agent die before deleting it.
    async fn start_lease(&self, c: &ContainerPlan) -> Result<String, OpsError> {
        let id = format!("berth-start-{}", c.runtime_id);
        let expire = time::OffsetDateTime::now_utc() + std::time::Duration::from_secs(3600);
        let labels = HashMap::from([(
            "containerd.io/gc.expire".to_owned(),
            expire
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        )]);
        let req = self.ctd.with_namespace(CreateLeaseRequest {
            id: id.clone(),
            labels,
        });
        match self.ctd.leases().create(req).await {
            Ok(_) => Ok(id),
            // Left by an earlier attempt that died: reuse it.
            Err(s) if s.code() == Code::AlreadyExists => Ok(id),
            Err(s) => Err(OpsError::Create(format!(
                "creating a lease for the rootfs: {}",
                s.message()
            ))),
        }
    }

    async fn end_lease(&self, lease: &str) {
        let req = self.ctd.with_namespace(DeleteLeaseRequest {
            id: lease.to_owned(),
            sync: false,
        });
        if let Err(s) = self.ctd.leases().delete(req).await {
            if s.code() != Code::NotFound {
                tracing::warn!(lease = %lease, cause = %s.message(), "cannot delete the start lease");
            }
        }
    }

    async fn prepare_snapshot(
        &self,
        c: &ContainerPlan,
        image: &PulledImage,
        lease: &str,
    ) -> Result<Vec<Mount>, OpsError> {
        for attempt in 0..2 {
            let req = self.ctd.with_lease(
                PrepareSnapshotRequest {
                    snapshotter: image.snapshotter.clone(),
                    key: c.runtime_id.clone(),
                    parent: image.snapshot_parent.clone(),
                    labels: HashMap::new(),
                },
                lease,
            );
            match self.ctd.snapshots().prepare(req).await {
                Ok(r) => return Ok(r.into_inner().mounts),
                Err(s) if s.code() == Code::AlreadyExists && attempt == 0 => {
                    tracing::info!(container = %c.runtime_id, "removing a leftover container from an earlier attempt");
                    self.remove_container(&c.runtime_id).await?;
                }
                Err(s) => {
                    return Err(OpsError::Create(format!(
                        "preparing the rootfs snapshot: {}",
                        s.message()
                    )))
                }
            }
        }
        Err(OpsError::Create(
            "preparing the rootfs snapshot: it keeps existing".into(),
        ))
    }
}

/// A user spec that needs no /etc/passwd lookup: "uid" or "uid:gid".
fn numeric_user(user: &str) -> Option<(u32, u32, Vec<u32>)> {
    match user.split_once(':') {
        None => user.parse().ok().map(|u| (u, 0, vec![])),
        Some((u, g)) => Some((u.parse().ok()?, g.parse().ok()?, vec![])),
    }
}

impl TaskOps for HostOps {
    type Image = PulledImage;
    type Prepared = PreparedTask;

    async fn pull(
        &self,
        plan: &TaskPlan,
        c: &ContainerPlan,
    ) -> Result<(PulledImage, PullInfo), OpsError> {
        // `repositoryCredentials` come resolved from the scheduler's secret
        // store; without them the agent's Docker config.json (if any) gives
        // credentials. A container that names a secret which did not arrive
        // (deleted after StartTask) is not pulled anonymously instead.
        let creds = plan.secrets.credentials_for(&c.name);
        if creds.is_none() {
            if let Some(rc) = plan
                .definition
                .as_deref()
                .and_then(|d| container_def(d, &c.name).ok())
                .and_then(|cd| cd.repository_credentials.as_ref())
            {
                return Err(OpsError::Pull(format!(
                    "the registry credentials in secret {:?} were not delivered (was the \
                     secret deleted after the task started?)",
                    rc.credentials_parameter
                )));
            }
        }
        let image = self
            .images
            .ensure(&c.image, self.cfg.pull_policy, creds)
            .await
            .map_err(|e| OpsError::Pull(e.to_string()))?;
        let info = PullInfo {
            digest: image.manifest_digest.clone(),
            stop_signal: image.config.stop_signal.clone(),
        };
        Ok((image, info))
    }

    async fn prepare(&self, plan: &TaskPlan) -> Result<(PreparedTask, NetworkInfo), OpsError> {
        let def = definition(plan)?;
        self.cgroups
            .create_task(&plan.id, &TaskLimits::for_task(def, Some(TASK_PIDS_MAX)))
            .map_err(|e| OpsError::Prepare(e.to_string()))?;
        let mode = network_mode(plan.network_mode);
        let ports: Vec<PortMapping> =
            if mode == network::Mode::Awsvpc || mode == network::Mode::None {
                vec![]
            } else {
                plan.ports
                    .iter()
                    .map(|p| PortMapping {
                        container_port: p.container_port,
                        host_port: p.host_port,
                        protocol: p.protocol,
                    })
                    .collect()
            };
        let net = match self.network.setup(&plan.id, mode, &ports).await {
            Ok(n) => n,
            Err(e) => {
                let _ = self.cgroups.remove_task(&plan.id);
                return Err(OpsError::Prepare(e.to_string()));
            }
        };
        let mut volumes = BTreeMap::new();
        for v in &def.volumes {
            let name = v.name.clone();
            let dir = match v.host.as_ref().and_then(|h| h.source_path.clone()) {
                Some(p) => PathBuf::from(p),
                // Task-scoped (empty `host`, docker local volumes, EFS
                // stand-ins): a directory that lives as long as the task.
                None => self.task_dir(plan).join("volumes").join(&name),
            };
            if let Err(e) = std::fs::create_dir_all(&dir) {
                let _ = self.network.teardown(&plan.id).await;
                let _ = self.cgroups.remove_task(&plan.id);
                return Err(OpsError::Prepare(format!(
                    "volume {name:?} at {}: {e}",
                    dir.display()
                )));
            }
            volumes.insert(name, dir);
        }
        let info = network_info(&net);
        self.metadata
            .register(TaskEntry::new(plan, network_facts(&net)));
        Ok((
            PreparedTask {
                network: net,
                volumes,
                shared_ns: Mutex::new(None),
            },
            info,
        ))
    }

    async fn adopt(&self, plan: &TaskPlan) -> Result<NetworkInfo, OpsError> {
        let net = self
            .network
            .adopt(&plan.id)
            .await
            .map_err(|e| OpsError::Runtime(e.to_string()))?;
        for c in &plan.containers {
            self.in_use
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(c.runtime_id.clone(), c.image.clone());
        }
        self.metadata.register(TaskEntry::new(
            plan,
            net.as_ref().map(network_facts).unwrap_or_default(),
        ));
        Ok(net.as_ref().map(network_info).unwrap_or_default())
    }

    async fn start(
        &self,
        plan: &TaskPlan,
        c: &ContainerPlan,
        image: &PulledImage,
        prepared: &PreparedTask,
    ) -> Result<u32, OpsError> {
        let lease = self.start_lease(c).await?;
        let res = self.start_leased(plan, c, image, prepared, &lease).await;
        self.end_lease(&lease).await;
        res
    }

    async fn wait(&self, plan: &TaskPlan, runtime_id: &str) -> Result<ExitInfo, OpsError> {
        let req = self.ctd.with_namespace(WaitRequest {
            container_id: runtime_id.to_owned(),
            ..Default::default()
        });
        let r = self
            .ctd
            .tasks()
            .wait(req)
            .await
            .map_err(|s| rt("wait", s))?
            .into_inner();
        let name = plan
            .containers
            .iter()
            .find(|c| c.runtime_id == runtime_id)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let at = system_time(r.exited_at);
        self.metadata
            .container_event(&plan.arn, &name, ContainerEvent::Finished, at);
        let oom_killed = self
            .cgroups
            .container_oom_killed(&plan.id, &name)
            .unwrap_or(false);
        Ok(ExitInfo {
            code: r.exit_status as i32,
            at,
            oom_killed,
        })
    }

    async fn signal(&self, runtime_id: &str, signal: &str) -> Result<(), OpsError> {
        let req = self.ctd.with_namespace(KillRequest {
            container_id: runtime_id.to_owned(),
            signal: signal_number(signal)?,
            all: true,
            ..Default::default()
        });
        match self.ctd.tasks().kill(req).await {
            Ok(_) => Ok(()),
            // Already gone: nothing to signal.
            Err(s)
                if s.code() == Code::NotFound
                    || s.message().contains("process already finished") =>
            {
                Ok(())
            }
            Err(s) => Err(rt("kill", s)),
        }
    }

    async fn exec(
        &self,
        plan: &TaskPlan,
        c: &ContainerPlan,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, OpsError> {
        // The container's own process settings (env, user, cwd, caps) with
        // the command's argv, as `docker exec` and Docker's health checks do.
        let req = self.ctd.with_namespace(GetContainerRequest {
            id: c.runtime_id.clone(),
        });
        let container = self
            .ctd
            .containers()
            .get(req)
            .await
            .map_err(|s| rt("get container", s))?
            .into_inner()
            .container
            .ok_or_else(|| OpsError::Runtime("containerd returned no container".into()))?;
        let spec_json = container
            .spec
            .map(|a| a.value)
            .ok_or_else(|| OpsError::Runtime("the container has no spec".into()))?;
        let mut spec: serde_json::Value = serde_json::from_slice(&spec_json)
            .map_err(|e| OpsError::Runtime(format!("the container's spec: {e}")))?;
        let mut process = spec
            .get_mut("process")
            .map(serde_json::Value::take)
            .ok_or_else(|| OpsError::Runtime("the container's spec has no process".into()))?;
        process["args"] = serde_json::json!(argv);
        process["terminal"] = serde_json::Value::Bool(false);
        let process = serde_json::to_vec(&process)
            .map_err(|e| OpsError::Runtime(format!("the exec spec: {e}")))?;

        let n = self.execs.fetch_add(1, Ordering::Relaxed);
        let exec_id = format!("berth-exec-{n}");
        let dir = self.task_dir(plan).join("exec");
        std::fs::create_dir_all(&dir)
            .map_err(|e| OpsError::Runtime(format!("{}: {e}", dir.display())))?;
        let out_path = dir.join(format!("{}-{exec_id}.out", c.runtime_id));
        // The shim appends stdout and stderr to this file.
        let uri = format!("file://{}", out_path.display());
        let req = self.ctd.with_namespace(ExecProcessRequest {
            container_id: c.runtime_id.clone(),
            exec_id: exec_id.clone(),
            stdout: uri.clone(),
            stderr: uri,
            terminal: false,
            spec: Some(prost_types::Any {
                type_url: PROCESS_TYPE_URL.to_owned(),
                value: process,
            }),
            ..Default::default()
        });
        self.ctd
            .tasks()
            .exec(req)
            .await
            .map_err(|s| rt("exec", s))?;
        let res = self.run_exec(c, &exec_id, timeout).await;
        let req = self.ctd.with_namespace(DeleteProcessRequest {
            container_id: c.runtime_id.clone(),
            exec_id: exec_id.clone(),
        });
        if let Err(s) = self.ctd.tasks().delete_process(req).await {
            if s.code() != Code::NotFound {
                tracing::warn!(container = %c.runtime_id, exec = %exec_id, cause = %s.message(), "deleting an exec'd process failed");
            }
        }
        let mut output = match std::fs::read(&out_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => String::new(),
        };
        let _ = std::fs::remove_file(&out_path);
        let (exit_code, timed_out) = res?;
        if timed_out {
            output = format!("Health check exceeded timeout ({}s)", timeout.as_secs());
        }
        truncate_output(&mut output);
        Ok(ExecOutput {
            exit_code,
            output,
            timed_out,
        })
    }

    async fn restart(&self, plan: &TaskPlan, c: &ContainerPlan) -> Result<u32, OpsError> {
        // The old (exited) process goes; the container, its snapshot and
        // its spec stay.
        self.delete_task(&c.runtime_id).await;
        let req = self.ctd.with_namespace(MountsRequest {
            snapshotter: self.cfg.snapshotter.clone(),
            key: c.runtime_id.clone(),
        });
        let mounts = self
            .ctd
            .snapshots()
            .mounts(req)
            .await
            .map_err(|s| OpsError::Start(format!("the container's rootfs: {}", s.message())))?
            .into_inner()
            .mounts;
        let cdef = plan
            .definition
            .as_deref()
            .and_then(|d| container_def(d, &c.name).ok());
        let uri = binary_uri(&self.cfg.agent_binary, &self.log_args(plan, &c.name, cdef));
        let req = self.ctd.with_namespace(CreateTaskRequest {
            container_id: c.runtime_id.clone(),
            rootfs: mounts,
            stdout: uri.clone(),
            stderr: uri,
            ..Default::default()
        });
        let pid = self
            .ctd
            .tasks()
            .create(req)
            .await
            .map_err(|s| OpsError::Start(s.message().to_owned()))?
            .into_inner()
            .pid;
        let req = self.ctd.with_namespace(StartRequest {
            container_id: c.runtime_id.clone(),
            ..Default::default()
        });
        self.ctd
            .tasks()
            .start(req)
            .await
            .map_err(|s| OpsError::Start(s.message().to_owned()))?;
        Ok(pid)
    }

    async fn teardown(&self, plan: &TaskPlan) -> Result<(), OpsError> {
        // Before the address can go to another task.
        self.metadata.forget(&plan.arn);
        for c in &plan.containers {
            self.delete_task(&c.runtime_id).await;
        }
        self.network
            .teardown(&plan.id)
            .await
            .map_err(|e| OpsError::Runtime(e.to_string()))?;
        self.cgroups
            .remove_task(&plan.id)
            .map_err(|e| OpsError::Runtime(e.to_string()))?;
        Ok(())
    }

    async fn remove(&self, plan: &TaskPlan) -> Result<(), OpsError> {
        for c in &plan.containers {
            self.remove_container(&c.runtime_id).await?;
            self.in_use
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&c.runtime_id);
        }
        for dir in [self.task_dir(plan), self.cfg.log_dir.join(&plan.id)] {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(OpsError::Runtime(format!(
                        "removing {}: {e}",
                        dir.display()
                    )))
                }
            }
        }
        Ok(())
    }

    async fn probe_target(
        &self,
        to: std::net::SocketAddrV4,
        check: &crate::desired::TargetHealthCheck,
    ) -> super::targets::ProbeOutcome {
        super::targets::probe(to, check).await
    }

    async fn observe(&self) -> Result<Vec<Observed>, OpsError> {
        let req = self.ctd.with_namespace(ListContainersRequest {
            filters: vec![format!("labels.\"{}\"", labels::TASK_ARN)],
        });
        let containers = self
            .ctd
            .containers()
            .list(req)
            .await
            .map_err(|s| rt("list containers", s))?
            .into_inner()
            .containers;
        let mut out = Vec::new();
        for c in containers {
            let req = self.ctd.with_namespace(GetRequest {
                container_id: c.id.clone(),
                ..Default::default()
            });
            let state = match self.ctd.tasks().get(req).await {
                Ok(r) => match r.into_inner().process {
                    // containerd.v1.types.Status: 1 CREATED, 2 RUNNING, 3 STOPPED, 4 PAUSED, 5 PAUSING
                    Some(p) if p.status == 2 || p.status == 4 || p.status == 5 => {
                        ObservedState::Running { pid: p.pid }
                    }
                    Some(p) if p.status == 3 => ObservedState::Exited(ExitInfo {
                        code: p.exit_status as i32,
                        at: system_time(p.exited_at),
                        oom_killed: false,
                    }),
                    _ => ObservedState::NoTask,
                },
                Err(s) if s.code() == Code::NotFound => ObservedState::NoTask,
                Err(s) => return Err(rt("get task", s)),
            };
            out.push(Observed {
                runtime_id: c.id,
                labels: c.labels.into_iter().collect(),
                state,
            });
        }
        Ok(out)
    }
}

impl HostOps {
    /// Starts exec `exec_id` and waits for it; after `timeout` kills it.
    /// Returns the exit code and whether it timed out.
    async fn run_exec(
        &self,
        c: &ContainerPlan,
        exec_id: &str,
        timeout: Duration,
    ) -> Result<(i32, bool), OpsError> {
        // Wait before start, so that a quick exit is not missed.
        let wait_req = self.ctd.with_namespace(WaitRequest {
            container_id: c.runtime_id.clone(),
            exec_id: exec_id.to_owned(),
        });
        let mut tasks = self.ctd.tasks();
        let wait = tokio::spawn(async move { tasks.wait(wait_req).await });
        let req = self.ctd.with_namespace(StartRequest {
            container_id: c.runtime_id.clone(),
            exec_id: exec_id.to_owned(),
        });
        if let Err(s) = self.ctd.tasks().start(req).await {
            wait.abort();
            // runc could not run it (no such executable, ...): a failed
            // check, as in Docker, with the runtime's words as the output.
            return Err(OpsError::Runtime(format!("exec: {}", s.message())));
        }
        let abort = wait.abort_handle();
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(Ok(r))) => Ok((r.into_inner().exit_status as i32, false)),
            Ok(Ok(Err(s))) => Err(rt("wait exec", s)),
            Ok(Err(e)) => Err(OpsError::Runtime(format!("wait exec: {e}"))),
            Err(_) => {
                abort.abort();
                let req = self.ctd.with_namespace(KillRequest {
                    container_id: c.runtime_id.clone(),
                    exec_id: exec_id.to_owned(),
                    signal: 9,
                    all: false,
                });
                if let Err(s) = self.ctd.tasks().kill(req).await {
                    tracing::warn!(container = %c.runtime_id, exec = %exec_id, cause = %s.message(), "killing a timed-out exec failed");
                }
                Ok((-1, true))
            }
        }
    }

    /// Creates and starts container `c`, its new snapshot held by `lease`.
    async fn start_leased(
        &self,
        plan: &TaskPlan,
        c: &ContainerPlan,
        image: &PulledImage,
        prepared: &PreparedTask,
        lease: &str,
    ) -> Result<u32, OpsError> {
        let def = definition(plan)?;
        let cdef = container_def(def, &c.name)?;
        let hostname = spec::container_hostname(def, cdef, &plan.id, &self.cfg.hostname);
        let etc_dir = self.task_dir(plan).join("etc").join(&c.name);
        let etc_files = spec::write_etc_files(
            &etc_dir,
            def,
            cdef,
            &hostname,
            prepared.network.ip,
            &spec::host_resolv_conf_path(),
        )
        .map_err(|e| OpsError::Create(e.to_string()))?;
        // Secrets go last, so they win over `environment` (as in ECS).
        if let Some(s) = cdef
            .secrets
            .iter()
            .find(|s| !plan.secrets.has_env(&c.name, &s.name))
        {
            return Err(OpsError::Prepare(format!(
                "the value of secret {:?} for variable {} was not delivered (was the secret \
                 deleted after the task started?)",
                s.value_from, s.name
            )));
        }
        // The agent's variables, then the secrets (which win, as in ECS).
        let mut extra_env = task_env::agent_env(
            plan,
            cdef,
            &c.metadata_id,
            self.cfg.metadata_base.as_deref(),
            self.cfg.host_ip,
        );
        extra_env.extend(plan.secrets.env_for(&c.name));
        let process = spec::resolve_process(&image.config, cdef, &extra_env)
            .map_err(|e| OpsError::Create(e.to_string()))?;
        let mounts = self.prepare_snapshot(c, image, lease).await?;
        let uid_gid = match numeric_user(&process.user) {
            Some(u) => u,
            None if process.user.is_empty() => (0, 0, vec![]),
            None => with_rootfs(&mounts, |root| spec::resolve_user(root, &process.user))?
                .map_err(|e| OpsError::Create(e.to_string()))?,
        };
        let shared = prepared
            .shared_ns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut labels = plan.container_labels(c.index);
        if let Some(s) = &image.config.stop_signal {
            labels.insert(labels::STOP_SIGNAL.to_owned(), s.clone());
        }
        let input = spec::SpecInput {
            task_id: &plan.id,
            task: def,
            container: cdef,
            process,
            uid_gid,
            netns: prepared.network.netns.as_deref(),
            task_pid_ns: shared.as_ref().map(|(p, _)| p.as_path()),
            task_ipc_ns: shared.as_ref().map(|(_, i)| i.as_path()),
            hostname,
            etc_files,
            volumes: &prepared.volumes,
            cgroups_path: self.cgroups.container_cgroups_path(&plan.id, &c.name),
            labels: labels.clone(),
            pids_limit: None,
            init_binary: self.init_binary.clone(),
            private_cgroupns: self.cgroups.version() == super::cgroups::CgroupVersion::V2,
        };
        let spec = spec::build_spec(&input).map_err(|e| OpsError::Create(e.to_string()))?;
        let any = spec::spec_any(&spec).map_err(|e| OpsError::Create(e.to_string()))?;
        let container = Container {
            id: c.runtime_id.clone(),
            labels: labels.into_iter().collect(),
            image: image.name.clone(),
            runtime: Some(Runtime {
                name: RUNC_RUNTIME.to_owned(),
                options: None,
            }),
            spec: Some(any),
            snapshotter: image.snapshotter.clone(),
            snapshot_key: c.runtime_id.clone(),
            ..Default::default()
        };
        let req = self.ctd.with_namespace(CreateContainerRequest {
            container: Some(container),
        });
        if let Err(s) = self.ctd.containers().create(req).await {
            return Err(OpsError::Create(s.message().to_owned()));
        }
        let uri = binary_uri(
            &self.cfg.agent_binary,
            &self.log_args(plan, &c.name, Some(cdef)),
        );
        self.metadata.container_event(
            &plan.arn,
            &c.name,
            ContainerEvent::Created,
            SystemTime::now(),
        );
        let req = self.ctd.with_namespace(CreateTaskRequest {
            container_id: c.runtime_id.clone(),
            rootfs: mounts,
            stdout: uri.clone(),
            stderr: uri,
            ..Default::default()
        });
        let pid = match self.ctd.tasks().create(req).await {
            Ok(r) => r.into_inner().pid,
            Err(s) => return Err(OpsError::Start(s.message().to_owned())),
        };
        let req = self.ctd.with_namespace(StartRequest {
            container_id: c.runtime_id.clone(),
            ..Default::default()
        });
        if let Err(s) = self.ctd.tasks().start(req).await {
            return Err(OpsError::Start(s.message().to_owned()));
        }
        self.metadata.container_event(
            &plan.arn,
            &c.name,
            ContainerEvent::Started,
            SystemTime::now(),
        );
        self.in_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(c.runtime_id.clone(), image.name.clone());
        if shared.is_none() {
            let proc_ns = |ns: &str| PathBuf::from(format!("/proc/{pid}/ns/{ns}"));
            *prepared.shared_ns.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((proc_ns("pid"), proc_ns("ipc")));
        }
        Ok(pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(signal_number("SIGTERM").unwrap(), 15);
        assert_eq!(signal_number("term").unwrap(), 15);
        assert_eq!(signal_number("SIGQUIT").unwrap(), 3);
        assert_eq!(signal_number("9").unwrap(), 9);
        assert!(signal_number("SIGNOPE").is_err());
    }

    #[test]
    fn numeric_users_need_no_lookup() {
        assert_eq!(numeric_user("1000"), Some((1000, 0, vec![])));
        assert_eq!(numeric_user("1000:50"), Some((1000, 50, vec![])));
        assert_eq!(numeric_user("nobody"), None);
        assert_eq!(numeric_user("1000:staff"), None);
    }
}
