//! The OCI runtime spec of one container, built from its ECS container
//! definition, the image's config and what the caller prepared on the host
//! (network namespace, `/etc` files, volume directories, cgroup path).
//!
//! Docker is the reference for every default here, because ECS on EC2 runs
//! Docker: the process merge ([`resolve_process`]), user lookup in the
//! image's own `/etc/passwd` ([`resolve_user`]), the default capability set,
//! mounts, masked and read-only paths, and device rules. Deliberate
//! differences, each written down where it is decided:
//! - no seccomp filter (see [`build_spec`]);
//! - `initProcessEnabled` bind-mounts a static init from the host (tini), as
//!   Docker does with `docker-init`; without one the spec is refused;
//! - SELinux `label:` options other than `label:disable` are refused.
//!
//! Everything here is a pure function of its inputs except what `host.rs`
//! holds: [`resolve_user`] (reads the rootfs), [`write_etc_files`] (writes
//! three files) and the host lookups. [`build_spec`] still reaches two of
//! those: the device nodes of `linuxParameters.devices` and `privileged`, and
//! the agent's own `RLIMIT_NOFILE` ([`default_nofile`]).

mod host;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use berth_proto::taskdef::{
    ContainerDefinition, DevicePermission, IpcMode, NetworkMode, PidMode, TaskDefinition,
    UlimitName,
};
use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDevice,
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespace,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount,
    MountBuilder, PosixRlimit, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder,
    Spec, SpecBuilder, UserBuilder,
};

pub use host::{
    default_nofile, find_init_binary, host_resolv_conf_path, resolve_user, write_etc_files,
};
use host::{device_node, host_devices};

/// The type URL containerd expects for a runtime spec inside an `Any`.
pub const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/// Where `initProcessEnabled` mounts the init binary in the container.
pub const INIT_PATH_IN_CONTAINER: &str = "/sbin/berth-init";

/// Static init binaries looked for on the host, in order. They must be
/// static: they run inside an arbitrary image's root filesystem.
pub const INIT_CANDIDATES: &[&str] = &[
    "/usr/bin/tini-static",
    "/usr/bin/docker-init",
    "/usr/libexec/docker/docker-init",
];

/// Docker's default `PATH` when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Docker's masked paths (moby `oci/defaults.go`), not applied to privileged
/// containers.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths, not applied to privileged containers.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// `RLIMIT_NOFILE` when the definition sets no `nofile` ulimit: soft 1024
/// (what `select(2)` users need) and hard 524288 (systemd's and current
/// containerd's default), so a server raises its own soft limit as needed.
/// The hard limit is capped at the agent's own (see [`default_nofile`]).
pub const DEFAULT_NOFILE: (u64, u64) = (1024, 524_288);

/// ECS's minimum CPU shares: a container `cpu` of 0, 1 or absent gets 2
/// (amazon-ecs-agent `dockerCPUShares`; 1 is invalid for the kernel, and
/// Docker would turn 0 into 1024).
pub const MIN_CPU_SHARES: u64 = 2;

const MIB: i64 = 1024 * 1024;

/// Why a spec could not be built. Field errors name the JSON path within the
/// task definition (`containerDefinitions[1].linuxParameters.devices[0]`).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("no command: the image has no Entrypoint/Cmd and the container definition gives none")]
    NoCommand,
    #[error("user {user:?}: {reason}")]
    User { user: String, reason: String },
    #[error("{path}: {reason}")]
    Field { path: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("building the OCI spec: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
    #[error("encoding the OCI spec: {0}")]
    Json(#[from] serde_json::Error),
}

impl SpecError {
    fn field(path: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError::Field {
            path: path.into(),
            reason: reason.into(),
        }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        SpecError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// What the runtime needs from an image's config: the image store's type.
pub use super::image::ImageConfig;

/// The merged process: what runs, with which environment, where and as whom
/// (the user as written; [`resolve_user`] turns it into ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
}

/// Merges the image config with the container definition by Docker's rules
/// (moby `daemon/commit.go` `merge`, then `CreateDaemonEnvironment`):
///
/// - `entryPoint` given and non-empty: it replaces the image's Entrypoint and
///   the image's Cmd is dropped; `command` (if given) follows it.
/// - `entryPoint` absent: the image's Entrypoint stays; `command` replaces
///   the image's Cmd.
/// - `entryPoint: []`: no entrypoint; `command`, else the image's Cmd, runs.
/// - `command: []` counts as no command (Docker cannot tell them apart).
///
/// The environment starts with `PATH` (Docker's default) and then takes the
/// image's `Env`, `environment`, and `extra_env` (secrets, Berth's own
/// variables), each replacing earlier values of the same name in place.
/// `HOSTNAME` is added by [`build_spec`], which knows the hostname.
pub fn resolve_process(
    image: &ImageConfig,
    c: &ContainerDefinition,
    extra_env: &[(String, String)],
) -> Result<Process, SpecError> {
    let user_cmd = c.command.clone().unwrap_or_default();
    let (entrypoint, cmd) = match &c.entry_point {
        Some(ep) if !ep.is_empty() => (ep.clone(), user_cmd),
        Some(_) | None => {
            let cmd = if user_cmd.is_empty() {
                image.cmd.clone()
            } else {
                user_cmd
            };
            let ep = match &c.entry_point {
                Some(_) => Vec::new(),
                None => image.entrypoint.clone(),
            };
            (ep, cmd)
        }
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() || args[0].is_empty() {
        return Err(SpecError::NoCommand);
    }

    let mut env = Env::default();
    env.set_entry(&format!("PATH={DEFAULT_PATH}"));
    for e in &image.env {
        env.set_entry(e);
    }
    for kv in &c.environment {
        env.set(&kv.name, kv.value.as_deref().unwrap_or(""));
    }
    for (k, v) in extra_env {
        env.set(k, v);
    }

    let cwd = c
        .working_directory
        .clone()
        .or_else(|| image.working_dir.clone())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/".to_owned());
    let user = c
        .user
        .clone()
        .or_else(|| image.user.clone())
        .unwrap_or_default();
    Ok(Process {
        args,
        env: env.into_vec(),
        cwd,
        user,
    })
}

/// An ordered environment in which setting a name again replaces its value
/// in place (Docker's `ReplaceOrAppendEnvValues`).
#[derive(Debug, Default)]
struct Env(Vec<String>);

impl Env {
    fn set_entry(&mut self, entry: &str) {
        let name = entry.split_once('=').map_or(entry, |(n, _)| n);
        match self
            .0
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == name)
        {
            Some(slot) => *slot = entry.to_owned(),
            None => self.0.push(entry.to_owned()),
        }
    }

    fn set(&mut self, name: &str, value: &str) {
        self.set_entry(&format!("{name}={value}"));
    }

    fn has(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == name)
    }

    fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// The per-container `/etc` files on the host, bind-mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcFiles {
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
    pub hostname: PathBuf,
}

/// Everything [`build_spec`] needs.
#[derive(Debug)]
pub struct SpecInput<'a> {
    pub task_id: &'a str,
    pub task: &'a TaskDefinition,
    pub container: &'a ContainerDefinition,
    pub process: Process,
    pub uid_gid: (u32, u32, Vec<u32>),
    /// The task's network namespace; `None` = the host's network (ignored
    /// with `disableNetworking`, which gets a new empty namespace).
    pub netns: Option<&'a Path>,
    /// With `pidMode: task`, the PID namespace of the task's first container
    /// to join; `None` makes a new one (this container is the first).
    pub task_pid_ns: Option<&'a Path>,
    /// With `ipcMode: task`, likewise for the IPC namespace.
    pub task_ipc_ns: Option<&'a Path>,
    pub hostname: String,
    pub etc_files: EtcFiles,
    /// Volume name → host directory (a host bind, or a task-scoped directory
    /// the caller prepared).
    pub volumes: &'a BTreeMap<String, PathBuf>,
    /// `cgroupsPath` (cgroupfs style, from `CgroupManager::container_cgroups_path`).
    pub cgroups_path: String,
    /// OCI annotations: the container's labels
    /// ([`super::plan::TaskPlan::container_labels`]: its `dockerLabels` under
    /// Berth's and the ECS agent's own).
    pub labels: BTreeMap<String, String>,
    /// Container-level pids limit.
    pub pids_limit: Option<i64>,
    /// A static init on the host (see [`find_init_binary`]), needed when
    /// `initProcessEnabled` is set.
    pub init_binary: Option<PathBuf>,
    /// A private cgroup namespace (Docker's default on cgroup v2; v1 uses the host's).
    pub private_cgroupns: bool,
}

/// The JSON path of a container in its task (`containerDefinitions[2]`).
fn container_path(task: &TaskDefinition, c: &ContainerDefinition) -> String {
    let i = task
        .container_definitions
        .iter()
        .position(|d| d.name == c.name)
        .unwrap_or(0);
    format!("containerDefinitions[{i}]")
}

/// The hostname a container gets, as ECS on Docker gives it: `hostname`
/// when set; the host's in host network mode; otherwise the first 12
/// characters of the task id (Docker uses the container id's).
pub fn container_hostname(
    task: &TaskDefinition,
    c: &ContainerDefinition,
    task_id: &str,
    host_hostname: &str,
) -> String {
    if let Some(h) = c.hostname.as_ref().filter(|h| !h.is_empty()) {
        return h.clone();
    }
    if task.effective_network_mode() == NetworkMode::Host {
        return host_hostname.to_owned();
    }
    task_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect()
}

/// CPU shares for a container's `cpu` units, ECS's way (minimum 2).
pub fn container_cpu_shares(cpu: Option<u32>) -> u64 {
    u64::from(cpu.unwrap_or(0)).max(MIN_CPU_SHARES)
}

/// Builds the container's OCI runtime spec.
///
/// Seccomp: none. Docker's default profile is a 400-syscall allow list that
/// must track the kernel and libseccomp; a wrong copy breaks workloads in
/// ways that are hard to diagnose, and ECS offers no seccomp option to
/// honour. Containers are confined by namespaces, the capability set, the
/// device cgroup, and masked and read-only paths. AppArmor: only the profile
/// named by `dockerSecurityOptions` `apparmor:PROFILE`.
pub fn build_spec(input: &SpecInput) -> Result<Spec, SpecError> {
    let task = input.task;
    let c = input.container;
    let cpath = container_path(task, c);
    let privileged = c.privileged.unwrap_or(false);
    let readonly_root = c.readonly_root_filesystem.unwrap_or(false);
    let lp = c.linux_parameters.as_ref();

    // Process.
    let mut env = Env(input.process.env.clone());
    if !env.has("HOSTNAME") {
        env.set("HOSTNAME", &input.hostname);
    }
    let mut args = input.process.args.clone();
    let mut mounts = default_mounts(task, c, privileged)?;
    if lp.and_then(|l| l.init_process_enabled).unwrap_or(false) {
        let init = input.init_binary.as_ref().ok_or_else(|| {
            SpecError::field(
                format!("{cpath}.linuxParameters.initProcessEnabled"),
                format!(
                    "no static init binary on this host (looked for {}); install the `tini` package",
                    INIT_CANDIDATES.join(", ")
                ),
            )
        })?;
        mounts.push(bind_mount(init, INIT_PATH_IN_CONTAINER, true)?);
        let mut with_init = vec![INIT_PATH_IN_CONTAINER.to_owned(), "--".to_owned()];
        with_init.append(&mut args);
        args = with_init;
    }

    let mut no_new_privileges = false;
    let mut apparmor = None;
    for (i, opt) in c.docker_security_options.iter().enumerate() {
        let path = format!("{cpath}.dockerSecurityOptions[{i}]");
        if opt == "no-new-privileges" || opt == "no-new-privileges:true" {
            no_new_privileges = true;
        } else if let Some(profile) = opt.strip_prefix("apparmor:") {
            apparmor = Some(profile.to_owned());
        } else if opt == "label:disable" || opt == "label=disable" {
            // SELinux labelling off: Berth sets no labels anyway.
        } else if opt.starts_with("label:") {
            return Err(SpecError::field(
                path,
                "SELinux labels are not supported by this agent yet (only label:disable)",
            ));
        } else if opt.starts_with("credentialspec:") {
            // Windows gMSA: warned at registration, no effect here.
        } else {
            return Err(SpecError::field(path, "unsupported security option"));
        }
    }

    let caps = capabilities(c, &cpath, privileged)?;
    let caps = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()?;

    // The primary gid is also a supplementary group, as containerd (since
    // the CVE-2023-25173 fix) and Docker set it up.
    let (uid, gid, extra) = input.uid_gid.clone();
    let mut additional = vec![gid];
    additional.extend(extra.into_iter().filter(|g| *g != gid));
    let user = UserBuilder::default()
        .uid(uid)
        .gid(gid)
        .additional_gids(additional);

    let mut process = ProcessBuilder::default()
        .terminal(c.pseudo_terminal.unwrap_or(false))
        .user(user.build()?)
        .args(args)
        .env(env.into_vec())
        .cwd(PathBuf::from(&input.process.cwd))
        .capabilities(caps)
        .rlimits(rlimits(c)?)
        .no_new_privileges(no_new_privileges)
        .oom_score_adj(0);
    if let Some(profile) = apparmor {
        process = process.apparmor_profile(profile);
    }
    let process = process.build()?;

    // Mounts: /etc files, volumes, volumesFrom, tmpfs.
    let etc_ro = readonly_root;
    mounts.push(bind_mount(&input.etc_files.hosts, "/etc/hosts", etc_ro)?);
    mounts.push(bind_mount(
        &input.etc_files.resolv_conf,
        "/etc/resolv.conf",
        etc_ro,
    )?);
    mounts.push(bind_mount(
        &input.etc_files.hostname,
        "/etc/hostname",
        etc_ro,
    )?);
    let mut user_mounts = Vec::new();
    for (i, mp) in c.mount_points.iter().enumerate() {
        let src = input.volumes.get(&mp.source_volume).ok_or_else(|| {
            SpecError::field(
                format!("{cpath}.mountPoints[{i}].sourceVolume"),
                format!("no host directory for volume {:?}", mp.source_volume),
            )
        })?;
        user_mounts.push(bind_mount(
            src,
            &mp.container_path,
            mp.read_only.unwrap_or(false),
        )?);
    }
    for (i, vf) in c.volumes_from.iter().enumerate() {
        let path = format!("{cpath}.volumesFrom[{i}]");
        let source = task
            .container(&vf.source_container)
            .ok_or_else(|| SpecError::field(&path, "no such container in the task"))?;
        for mp in &source.mount_points {
            let src = input.volumes.get(&mp.source_volume).ok_or_else(|| {
                SpecError::field(
                    &path,
                    format!("no host directory for volume {:?}", mp.source_volume),
                )
            })?;
            let ro = vf.read_only.unwrap_or(false) || mp.read_only.unwrap_or(false);
            user_mounts.push(bind_mount(src, &mp.container_path, ro)?);
        }
    }
    for t in lp.map(|l| l.tmpfs.as_slice()).unwrap_or_default() {
        let mut options: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
        options.extend(t.mount_options.iter().cloned());
        options.push(format!("size={}m", t.size));
        user_mounts.push(
            MountBuilder::default()
                .destination(&t.container_path)
                .typ("tmpfs")
                .source("tmpfs")
                .options(options)
                .build()?,
        );
    }
    // Parents before children, as Docker sorts them.
    user_mounts.sort_by_key(|m| m.destination().components().count());
    mounts.extend(user_mounts);

    // Namespaces.
    let mut namespaces = vec![
        namespace(LinuxNamespaceType::Mount, None)?,
        namespace(LinuxNamespaceType::Uts, None)?,
    ];
    match task.pid_mode {
        Some(PidMode::Host) => {}
        Some(PidMode::Task) => {
            namespaces.push(namespace(LinuxNamespaceType::Pid, input.task_pid_ns)?)
        }
        None => namespaces.push(namespace(LinuxNamespaceType::Pid, None)?),
    }
    match task.ipc_mode {
        Some(IpcMode::Host) => {}
        Some(IpcMode::Task) => {
            namespaces.push(namespace(LinuxNamespaceType::Ipc, input.task_ipc_ns)?)
        }
        Some(IpcMode::None) | None => namespaces.push(namespace(LinuxNamespaceType::Ipc, None)?),
    }
    if c.disable_networking.unwrap_or(false) {
        namespaces.push(namespace(LinuxNamespaceType::Network, None)?);
    } else if let Some(netns) = input.netns {
        namespaces.push(namespace(LinuxNamespaceType::Network, Some(netns))?);
    }
    if input.private_cgroupns {
        namespaces.push(namespace(LinuxNamespaceType::Cgroup, None)?);
    }

    // Devices and resources.
    let (devices, device_rules) = devices(c, &cpath, privileged)?;
    let mut memory = LinuxMemoryBuilder::default();
    if let Some(m) = c.memory {
        let limit = i64::from(m) * MIB;
        let swap = lp
            .and_then(|l| l.max_swap)
            .map_or(0, |s| i64::from(s) * MIB);
        memory = memory.limit(limit).swap(limit + swap);
    }
    if let Some(r) = c.memory_reservation {
        memory = memory.reservation(i64::from(r) * MIB);
    }
    if let Some(s) = lp.and_then(|l| l.swappiness) {
        memory = memory.swappiness(u64::from(s));
    }
    let mut resources = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .shares(container_cpu_shares(c.cpu))
                .build()?,
        )
        .memory(memory.build()?)
        .devices(device_rules);
    if let Some(limit) = input.pids_limit {
        resources = resources.pids(LinuxPidsBuilder::default().limit(limit).build()?);
    }

    let sysctl: std::collections::HashMap<String, String> = c
        .system_controls
        .iter()
        .map(|s| (s.namespace.clone(), s.value.clone()))
        .collect();

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .devices(devices)
        .resources(resources.build()?)
        .cgroups_path(PathBuf::from(&input.cgroups_path))
        .sysctl(sysctl);
    if privileged {
        linux = linux
            .masked_paths(Vec::<String>::new())
            .readonly_paths(Vec::<String>::new());
    } else {
        linux = linux
            .masked_paths(to_strings(MASKED_PATHS))
            .readonly_paths(to_strings(READONLY_PATHS));
    }

    let annotations: std::collections::HashMap<String, String> = input
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    Ok(SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(readonly_root)
                .build()?,
        )
        .process(process)
        .hostname(input.hostname.clone())
        .mounts(mounts)
        .linux(linux.build()?)
        .annotations(annotations)
        .build()?)
}

/// The spec as containerd takes it: JSON in an `Any`.
pub fn spec_any(spec: &Spec) -> Result<prost_types::Any, SpecError> {
    Ok(prost_types::Any {
        type_url: SPEC_TYPE_URL.to_owned(),
        value: serde_json::to_vec(spec)?,
    })
}

fn to_strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn namespace(typ: LinuxNamespaceType, path: Option<&Path>) -> Result<LinuxNamespace, SpecError> {
    let mut b = LinuxNamespaceBuilder::default().typ(typ);
    if let Some(p) = path {
        b = b.path(p.to_path_buf());
    }
    Ok(b.build()?)
}

fn bind_mount(src: &Path, dest: &str, ro: bool) -> Result<Mount, SpecError> {
    let mut options = vec!["rbind".to_owned(), "rprivate".to_owned()];
    options.push(if ro { "ro" } else { "rw" }.to_owned());
    Ok(MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(src.to_path_buf())
        .options(options)
        .build()?)
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, SpecError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(to_strings(options))
        .build()?)
}

/// Docker's default mounts; `/dev/shm` sized by `sharedMemorySize` (64 MiB
/// by default) and absent with `ipcMode: none`, as in Docker.
fn default_mounts(
    task: &TaskDefinition,
    c: &ContainerDefinition,
    privileged: bool,
) -> Result<Vec<Mount>, SpecError> {
    let sys_mode = if privileged { "rw" } else { "ro" };
    let mut m = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
    ];
    if task.ipc_mode != Some(IpcMode::None) && task.ipc_mode != Some(IpcMode::Host) {
        let shm_mib = c
            .linux_parameters
            .as_ref()
            .and_then(|l| l.shared_memory_size)
            .unwrap_or(64);
        let size = format!("size={}k", u64::from(shm_mib) * 1024);
        m.push(mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &size],
        )?);
    } else if task.ipc_mode == Some(IpcMode::Host) {
        m.push(bind_mount(Path::new("/dev/shm"), "/dev/shm", false)?);
    }
    Ok(m)
}

fn parse_capability(name: &str) -> Option<Capability> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

fn all_capabilities() -> Capabilities {
    // Every capability the running kernel knows (cap_last_cap), by number.
    let last: u32 = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    CAPABILITY_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| u32::try_from(*i).is_ok_and(|i| i <= last))
        .filter_map(|(_, n)| parse_capability(n))
        .collect()
}

/// Capability names by number (linux/capability.h).
const CAPABILITY_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's rules: privileged = every capability; else the default set, then
/// `drop` (`ALL` empties it), then `add` (`ALL` = every capability).
fn capabilities(
    c: &ContainerDefinition,
    cpath: &str,
    privileged: bool,
) -> Result<Capabilities, SpecError> {
    if privileged {
        return Ok(all_capabilities());
    }
    let mut set: Capabilities = DEFAULT_CAPABILITIES
        .iter()
        .filter_map(|n| parse_capability(n))
        .collect();
    let Some(kc) = c
        .linux_parameters
        .as_ref()
        .and_then(|l| l.capabilities.as_ref())
    else {
        return Ok(set);
    };
    let parse = |field: &str, i: usize, name: &str| {
        parse_capability(name).ok_or_else(|| {
            SpecError::field(
                format!("{cpath}.linuxParameters.capabilities.{field}[{i}]"),
                format!("unknown capability {name:?}"),
            )
        })
    };
    for (i, name) in kc.drop.iter().enumerate() {
        if name.eq_ignore_ascii_case("ALL") {
            set.clear();
        } else {
            set.remove(&parse("drop", i, name)?);
        }
    }
    for (i, name) in kc.add.iter().enumerate() {
        if name.eq_ignore_ascii_case("ALL") {
            set.extend(all_capabilities());
        } else {
            set.insert(parse("add", i, name)?);
        }
    }
    Ok(set)
}

fn rlimit_type(name: UlimitName) -> PosixRlimitType {
    match name {
        UlimitName::Core => PosixRlimitType::RlimitCore,
        UlimitName::Cpu => PosixRlimitType::RlimitCpu,
        UlimitName::Data => PosixRlimitType::RlimitData,
        UlimitName::Fsize => PosixRlimitType::RlimitFsize,
        UlimitName::Locks => PosixRlimitType::RlimitLocks,
        UlimitName::Memlock => PosixRlimitType::RlimitMemlock,
        UlimitName::Msgqueue => PosixRlimitType::RlimitMsgqueue,
        UlimitName::Nice => PosixRlimitType::RlimitNice,
        UlimitName::Nofile => PosixRlimitType::RlimitNofile,
        UlimitName::Nproc => PosixRlimitType::RlimitNproc,
        UlimitName::Rss => PosixRlimitType::RlimitRss,
        UlimitName::Rtprio => PosixRlimitType::RlimitRtprio,
        UlimitName::Rttime => PosixRlimitType::RlimitRttime,
        UlimitName::Sigpending => PosixRlimitType::RlimitSigpending,
        UlimitName::Stack => PosixRlimitType::RlimitStack,
    }
}

/// `ulimits` as rlimits (-1 = unlimited), plus [`DEFAULT_NOFILE`] when no
/// `nofile` is given.
fn rlimits(c: &ContainerDefinition) -> Result<Vec<PosixRlimit>, SpecError> {
    let value = |v: i64| u64::try_from(v).unwrap_or(u64::MAX);
    let mut out = Vec::new();
    if !c.ulimits.iter().any(|u| u.name == UlimitName::Nofile) {
        let (soft, hard) = default_nofile();
        out.push(
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .soft(soft)
                .hard(hard)
                .build()?,
        );
    }
    for u in &c.ulimits {
        out.push(
            PosixRlimitBuilder::default()
                .typ(rlimit_type(u.name))
                .soft(value(u.soft_limit))
                .hard(value(u.hard_limit))
                .build()?,
        );
    }
    Ok(out)
}

/// Device nodes and device-cgroup rules: deny all, then allow what
/// `linuxParameters.devices` names (runc adds its default allowed devices,
/// `/dev/null` and friends, itself). Privileged containers get every host
/// device under `/dev` and an allow-all rule, as in Docker.
fn devices(
    c: &ContainerDefinition,
    cpath: &str,
    privileged: bool,
) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>), SpecError> {
    if privileged {
        let mut devs = Vec::new();
        host_devices(Path::new("/dev"), &mut devs);
        let rule = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .access("rwm")
            .build()?;
        return Ok((devs, vec![rule]));
    }
    let mut devs = Vec::new();
    let mut rules = vec![LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()?];
    let list = c
        .linux_parameters
        .as_ref()
        .map(|l| l.devices.as_slice())
        .unwrap_or_default();
    for (i, d) in list.iter().enumerate() {
        let path = format!("{cpath}.linuxParameters.devices[{i}].hostPath");
        let host = Path::new(&d.host_path);
        let dest = d.container_path.as_deref().unwrap_or(&d.host_path);
        let dev = device_node(host, dest).map_err(|reason| SpecError::field(&path, reason))?;
        let access: String = if d.permissions.is_empty() {
            "rwm".to_owned()
        } else {
            let mut a = String::new();
            for (p, ch) in [
                (DevicePermission::Read, 'r'),
                (DevicePermission::Write, 'w'),
                (DevicePermission::Mknod, 'm'),
            ] {
                if d.permissions.contains(&p) {
                    a.push(ch);
                }
            }
            a
        };
        rules.push(
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(dev.typ())
                .major(dev.major())
                .minor(dev.minor())
                .access(access)
                .build()?,
        );
        devs.push(dev);
    }
    Ok((devs, rules))
}

fn nameservers(conf: &str) -> impl Iterator<Item = &str> {
    conf.lines().filter_map(|l| {
        let mut f = l.split_whitespace();
        (f.next() == Some("nameserver")).then(|| f.next()).flatten()
    })
}

fn hosts_file(c: &ContainerDefinition, hostname: &str, ip: Option<IpAddr>) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    let own = ip.map_or_else(|| "127.0.1.1".to_owned(), |ip| ip.to_string());
    s.push_str(&format!("{own}\t{hostname}\n"));
    for h in &c.extra_hosts {
        s.push_str(&format!("{}\t{}\n", h.ip_address, h.hostname));
    }
    let link_ip = ip.map_or_else(|| "127.0.0.1".to_owned(), |ip| ip.to_string());
    for l in &c.links {
        match l.split_once(':') {
            Some((name, alias)) if alias != name => {
                s.push_str(&format!("{link_ip}\t{alias} {name}\n"));
            }
            Some((name, _)) => s.push_str(&format!("{link_ip}\t{name}\n")),
            None => s.push_str(&format!("{link_ip}\t{l}\n")),
        }
    }
    s
}

fn is_loopback(ns: &str) -> bool {
    ns.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn resolv_conf(host: &str, servers: &[String], search: &[String], host_network: bool) -> String {
    let mut out = Vec::new();
    let mut host_servers = Vec::new();
    let mut host_search = None;
    for line in host.lines() {
        let t = line.trim_start();
        if t.starts_with("nameserver") {
            host_servers.extend(t.split_whitespace().nth(1).map(str::to_owned));
        } else if t.starts_with("search") || t.starts_with("domain") {
            host_search = Some(line.to_owned());
        } else if t.starts_with("options") {
            out.push(line.to_owned());
        }
    }
    let servers: Vec<String> = if !servers.is_empty() {
        servers.to_vec()
    } else {
        let mut s: Vec<String> = host_servers
            .into_iter()
            .filter(|n| host_network || !is_loopback(n))
            .collect();
        if s.is_empty() && !host_network {
            s = vec!["8.8.8.8".to_owned(), "8.8.4.4".to_owned()];
        }
        s
    };
    let mut lines: Vec<String> = Vec::new();
    if !search.is_empty() {
        lines.push(format!("search {}", search.join(" ")));
    } else if let Some(s) = host_search {
        lines.push(s);
    }
    lines.extend(servers.iter().map(|n| format!("nameserver {n}")));
    lines.extend(out);
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

/// The set of capability names in a spec, sorted (for display and tests).
pub fn capability_names(caps: &Capabilities) -> BTreeSet<String> {
    caps.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests;
