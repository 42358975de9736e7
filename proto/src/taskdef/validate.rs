//! Semantic validation of a structurally valid [`TaskDefinition`]: ECS's rules
//! and Berth's decisions about each field (honoured, AWS-only with a warning,
//! or rejected), as tabled in `docs/task-definitions.md`.
//!
//! Every rule runs, so one call reports every error; each error and warning
//! names the JSON path of its field. Pure: no I/O, no clock.

use std::collections::HashMap;
use std::net::IpAddr;

use super::issue::{join, join_index, join_key, FieldIssue, InvalidTaskDefinition};
use super::model::{
    Compatibility, ContainerDefinition, DependencyCondition, HealthCheck, LogDriver, NetworkMode,
    PortMapping, ResourceType, TaskDefinition, Volume, VolumeScope,
};
use crate::ecs::Protocol;

/// Most containers ECS allows in one task definition.
pub const MAX_CONTAINERS: usize = 10;
/// ECS (Docker 20.10+) minimum memory for a container, in MiB.
pub const MIN_CONTAINER_MEMORY_MIB: u32 = 6;
/// ECS's minimum task-level cpu, in CPU units.
pub const MIN_TASK_CPU_UNITS: u32 = 128;
/// ECS's maximum `stopTimeout`, in seconds.
pub const MAX_STOP_TIMEOUT_SECS: u32 = 120;
/// ECS's minimum `startTimeout`, in seconds.
pub const MIN_START_TIMEOUT_SECS: u32 = 2;
const MAX_PLACEMENT_CONSTRAINTS: usize = 10;
const MAX_IGNORED_EXIT_CODES: usize = 50;

/// Linux capabilities accepted in `linuxParameters.capabilities` (ECS's list
/// plus the ones added to Linux since: `BPF`, `PERFMON`, `CHECKPOINT_RESTORE`).
const CAPABILITIES: &[&str] = &[
    "ALL",
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// tmpfs mount options ECS accepts (`mode`, `uid`, … take `=value`).
const TMPFS_OPTIONS: &[&str] = &[
    "defaults",
    "ro",
    "rw",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "exec",
    "noexec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "bind",
    "rbind",
    "unbindable",
    "runbindable",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "mode",
    "uid",
    "gid",
    "nr_inodes",
    "nr_blocks",
    "mpol",
];

/// IPC-namespaced `kernel.*` sysctls (runc's list); `net.*` and
/// `fs.mqueue.*` are namespaced as a whole.
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

const JSON_FILE_OPTIONS: &[&str] = &["max-size", "max-file"];

/// Checks `def`; returns the warnings when it is valid, every error otherwise.
pub fn validate(def: &TaskDefinition) -> Result<Vec<FieldIssue>, InvalidTaskDefinition> {
    let mut c = Checker::new(def);
    c.check_task();
    c.check_volumes();
    for (i, container) in def.container_definitions.iter().enumerate() {
        c.check_container(i, container);
    }
    c.check_cross_container();
    if c.errors.is_empty() {
        Ok(c.warnings)
    } else {
        Err(InvalidTaskDefinition { errors: c.errors })
    }
}

struct Checker<'a> {
    def: &'a TaskDefinition,
    mode: NetworkMode,
    task_cpu: Option<u32>,
    task_memory: Option<u32>,
    /// Container name → index of its first definition.
    containers: HashMap<&'a str, usize>,
    volumes: HashMap<&'a str, usize>,
    errors: Vec<FieldIssue>,
    warnings: Vec<FieldIssue>,
}

impl<'a> Checker<'a> {
    fn new(def: &'a TaskDefinition) -> Self {
        let mut containers = HashMap::new();
        for (i, c) in def.container_definitions.iter().enumerate() {
            containers.entry(c.name.as_str()).or_insert(i);
        }
        let mut volumes = HashMap::new();
        for (i, v) in def.volumes.iter().enumerate() {
            volumes.entry(v.name.as_str()).or_insert(i);
        }
        Self {
            def,
            mode: def.effective_network_mode(),
            task_cpu: None,
            task_memory: None,
            containers,
            volumes,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldIssue::new(path, message));
    }

    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(FieldIssue::new(path, message));
    }

    fn check_task(&mut self) {
        let d = self.def;
        if !is_name(&d.family) {
            self.err("family", name_rule(&d.family));
        }
        if d.task_role_arn.is_some() {
            self.warn(
                "taskRoleArn",
                "AWS-only: Berth has no IAM, so the task gets no role credentials; \
                 the ARN is stored and returned",
            );
        }
        if d.execution_role_arn.is_some() {
            self.warn(
                "executionRoleArn",
                "AWS-only: Berth pulls images and reads secrets with its own \
                 credentials; the ARN is stored and returned",
            );
        }
        if self.mode == NetworkMode::Awsvpc {
            self.warn(
                "networkMode",
                "awsvpc needs AWS network interfaces: Berth gives the task its own \
                 address on the Berth bridge (reachable from the host and other tasks) \
                 and publishes no host ports, as an ENI publishes none",
            );
        }
        let n = d.container_definitions.len();
        if n == 0 {
            self.err("containerDefinitions", "at least one container is required");
        } else if n > MAX_CONTAINERS {
            self.err(
                "containerDefinitions",
                format!("at most {MAX_CONTAINERS} containers per task definition, got {n}"),
            );
        }
        if let Some(cpu) = &d.cpu {
            match cpu.cpu_units() {
                Err(e) => self.err("cpu", format!("cannot read {cpu} as CPU units: {e}")),
                Ok(u) if u < MIN_TASK_CPU_UNITS => self.err(
                    "cpu",
                    format!(
                        "task cpu must be at least {MIN_TASK_CPU_UNITS} CPU units \
                         (0.125 vCPU), got {u}"
                    ),
                ),
                Ok(u) => self.task_cpu = Some(u),
            }
        }
        if let Some(mem) = &d.memory {
            match mem.memory_mib() {
                Err(e) => self.err("memory", format!("cannot read {mem} as MiB: {e}")),
                Ok(m) if m < MIN_CONTAINER_MEMORY_MIB => self.err(
                    "memory",
                    format!("task memory must be at least {MIN_CONTAINER_MEMORY_MIB} MiB, got {m}"),
                ),
                Ok(m) => self.task_memory = Some(m),
            }
        }
        if d.placement_constraints.len() > MAX_PLACEMENT_CONSTRAINTS {
            self.err(
                "placementConstraints",
                format!(
                    "at most {MAX_PLACEMENT_CONSTRAINTS} placement constraints, got {}",
                    d.placement_constraints.len()
                ),
            );
        }
        for (i, pc) in d.placement_constraints.iter().enumerate() {
            if pc.expression.as_deref().is_none_or(|e| e.trim().is_empty()) {
                self.err(
                    join(&join_index("", "placementConstraints", i), "expression"),
                    "a memberOf constraint needs a Cluster Query Language expression",
                );
            }
        }
        for (i, compat) in d.requires_compatibilities.iter().enumerate() {
            let name = match compat {
                Compatibility::Ec2 | Compatibility::External => continue,
                Compatibility::Fargate => "FARGATE",
                Compatibility::ManagedInstances => "MANAGED_INSTANCES",
            };
            self.warn(
                join_index("", "requiresCompatibilities", i),
                format!(
                    "{name} is AWS-only: Berth runs the task on its own instances, \
                     as for EC2 and EXTERNAL"
                ),
            );
        }
        self.check_tags();
        if let Some(proxy) = &d.proxy_configuration {
            self.warn(
                "proxyConfiguration",
                "AWS-only (App Mesh): stored and returned; Berth sets up no proxy \
                 and no traffic redirection",
            );
            if !self.containers.contains_key(proxy.container_name.as_str()) {
                self.err(
                    "proxyConfiguration.containerName",
                    format!(
                        "no container named {:?} in this task definition",
                        proxy.container_name
                    ),
                );
            }
        }
        if !d.inference_accelerators.is_empty() {
            self.warn(
                "inferenceAccelerators",
                "AWS-only (Elastic Inference): stored and returned; no accelerator is attached",
            );
        }
        if d.ephemeral_storage.is_some() {
            self.warn(
                "ephemeralStorage",
                "AWS-only (Fargate): stored and returned; containers write to the \
                 instance's disk, limited only by it",
            );
        }
        if let Some(os) = d
            .runtime_platform
            .as_ref()
            .and_then(|p| p.operating_system_family.as_deref())
        {
            if os != "LINUX" {
                self.err(
                    "runtimePlatform.operatingSystemFamily",
                    format!("Berth runs Linux containers only: expected LINUX, got {os:?}"),
                );
            }
        }
        if d.enable_fault_injection == Some(true) {
            self.warn(
                "enableFaultInjection",
                "AWS-only (AWS Fault Injection Service): stored and returned; no fault \
                 injection endpoints are provided",
            );
        }
    }

    /// ECS's tag rules, written once in [`crate::names::check_tags`].
    fn check_tags(&mut self) {
        let findings = crate::names::check_tags(
            self.def
                .tags
                .iter()
                .map(|t| (t.key.as_str(), t.value.as_str())),
        );
        for (field, e) in findings {
            self.err(field.path("tags"), e.to_string());
        }
    }

    fn check_volumes(&mut self) {
        let volumes = &self.def.volumes;
        for (i, v) in volumes.iter().enumerate() {
            let p = join_index("", "volumes", i);
            if !is_name(&v.name) {
                self.err(join(&p, "name"), name_rule(&v.name));
            } else if let Some(first) = self.volumes.get(v.name.as_str()).copied() {
                if first != i {
                    self.err(
                        join(&p, "name"),
                        format!("duplicate volume name {:?} (also volumes[{first}])", v.name),
                    );
                }
            }
            self.check_volume(&p, v);
        }
    }

    fn check_volume(&mut self, p: &str, v: &Volume) {
        let kinds = [
            v.host.is_some(),
            v.docker_volume_configuration.is_some(),
            v.efs_volume_configuration.is_some(),
            v.fsx_windows_file_server_volume_configuration.is_some(),
            v.configured_at_launch == Some(true),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            self.err(
                p,
                "give at most one of host, dockerVolumeConfiguration, efsVolumeConfiguration, \
                 fsxWindowsFileServerVolumeConfiguration and configuredAtLaunch",
            );
        }
        if let Some(sp) = v.host.as_ref().and_then(|h| h.source_path.as_deref()) {
            if !sp.is_empty() && !sp.starts_with('/') {
                self.err(
                    join(p, "host.sourcePath"),
                    format!("must be an absolute path on the host, got {sp:?}"),
                );
            }
        }
        if let Some(dv) = &v.docker_volume_configuration {
            let dp = join(p, "dockerVolumeConfiguration");
            if let Some(driver) = dv.driver.as_deref() {
                if driver != "local" {
                    self.err(
                        join(&dp, "driver"),
                        format!(
                            "Berth provides Docker volumes as local directories: driver must be \
                             `local` or absent, got {driver:?}"
                        ),
                    );
                }
            }
            if !dv.driver_opts.is_empty() {
                self.err(
                    join(&dp, "driverOpts"),
                    "not supported: Berth's local volumes are plain directories on the host \
                     (use a host volume for a filesystem mounted on the host)",
                );
            }
            if dv.autoprovision == Some(true) && dv.scope != Some(VolumeScope::Shared) {
                self.err(
                    join(&dp, "autoprovision"),
                    "autoprovision is only valid with scope `shared`",
                );
            }
        }
        if v.efs_volume_configuration.is_some() {
            self.warn(
                join(p, "efsVolumeConfiguration"),
                "AWS-only (Amazon EFS): stored and returned; Berth mounts an empty directory \
                 that lives as long as the task instead",
            );
        }
        if v.fsx_windows_file_server_volume_configuration.is_some() {
            self.warn(
                join(p, "fsxWindowsFileServerVolumeConfiguration"),
                "AWS-only (Amazon FSx): stored and returned; Berth mounts an empty directory \
                 that lives as long as the task instead",
            );
        }
        if v.configured_at_launch == Some(true) {
            self.warn(
                join(p, "configuredAtLaunch"),
                "AWS-only (EBS volume configured at launch): Berth mounts an empty directory \
                 that lives as long as the task instead",
            );
        }
    }

    fn check_container(&mut self, i: usize, c: &'a ContainerDefinition) {
        let p = join_index("", "containerDefinitions", i);
        self.check_identity(&p, i, c);
        self.check_resources(&p, c);
        self.check_links(&p, i, c);
        self.check_ports(&p, c);
        self.check_restart_policy(&p, c);
        self.check_environment(&p, c);
        self.check_mounts(&p, i, c);
        self.check_linux_parameters(&p, c);
        self.check_depends_on(&p, i, c);
        self.check_timeouts(&p, c);
        self.check_host_settings(&p, c);
        self.check_security_options(&p, c);
        self.check_labels(&p, c);
        self.check_ulimits(&p, c);
        self.check_logging(&p, c);
        self.check_health_check(&p, c);
        self.check_system_controls(&p, c);
        self.check_resource_requirements(&p, c);
        self.check_aws_only(&p, c);
    }

    fn check_identity(&mut self, p: &str, i: usize, c: &ContainerDefinition) {
        if !is_name(&c.name) {
            self.err(join(p, "name"), name_rule(&c.name));
        } else if let Some(first) = self.containers.get(c.name.as_str()).copied() {
            if first != i {
                self.err(
                    join(p, "name"),
                    format!(
                        "duplicate container name {:?} (also containerDefinitions[{first}].name)",
                        c.name
                    ),
                );
            }
        }
        if c.image.trim().is_empty() {
            self.err(
                join(p, "image"),
                "required: an image reference such as `nginx:1.27` or `registry/repo@sha256:…`",
            );
        } else if c.image.chars().any(char::is_whitespace) {
            self.err(join(p, "image"), "must not contain whitespace");
        } else if c.image.len() > 255 {
            self.err(join(p, "image"), "must be at most 255 characters");
        }
        if let Some(rc) = &c.repository_credentials {
            if rc.credentials_parameter.trim().is_empty() {
                self.err(
                    join(p, "repositoryCredentials.credentialsParameter"),
                    "must name the secret holding the registry credentials",
                );
            } else if let Err(e) = crate::secret_ref::secret_name(&rc.credentials_parameter) {
                self.err(join(p, "repositoryCredentials.credentialsParameter"), e);
            }
        }
    }

    fn check_restart_policy(&mut self, p: &str, c: &ContainerDefinition) {
        if let Some(rp) = &c.restart_policy {
            if let Some(period) = rp.restart_attempt_period {
                if !(60..=1800).contains(&period) {
                    self.err(
                        join(p, "restartPolicy.restartAttemptPeriod"),
                        format!("must be 60–1800 seconds, got {period}"),
                    );
                }
            }
            if rp.ignored_exit_codes.len() > MAX_IGNORED_EXIT_CODES {
                self.err(
                    join(p, "restartPolicy.ignoredExitCodes"),
                    format!(
                        "at most {MAX_IGNORED_EXIT_CODES} exit codes, got {}",
                        rp.ignored_exit_codes.len()
                    ),
                );
            }
        }
    }

    fn check_timeouts(&mut self, p: &str, c: &ContainerDefinition) {
        if let Some(t) = c.start_timeout {
            if t < MIN_START_TIMEOUT_SECS {
                self.err(
                    join(p, "startTimeout"),
                    format!("must be at least {MIN_START_TIMEOUT_SECS} seconds, got {t}"),
                );
            }
        }
        if let Some(t) = c.stop_timeout {
            if t > MAX_STOP_TIMEOUT_SECS {
                self.err(
                    join(p, "stopTimeout"),
                    format!("must be 0–{MAX_STOP_TIMEOUT_SECS} seconds (ECS's maximum), got {t}"),
                );
            }
        }
    }

    fn check_host_settings(&mut self, p: &str, c: &ContainerDefinition) {
        if let Some(h) = &c.hostname {
            if self.mode == NetworkMode::Awsvpc {
                self.err(
                    join(p, "hostname"),
                    "not supported in awsvpc network mode (an ECS rule)",
                );
            } else if !is_hostname(h) {
                self.err(
                    join(p, "hostname"),
                    format!("{h:?} is not a valid hostname (RFC 1123)"),
                );
            }
        }
        if let Some(wd) = &c.working_directory {
            if !wd.starts_with('/') {
                self.err(
                    join(p, "workingDirectory"),
                    format!("must be an absolute path, got {wd:?}"),
                );
            }
        }
        for (k, s) in c.dns_servers.iter().enumerate() {
            if s.parse::<IpAddr>().is_err() {
                self.err(
                    join_index(p, "dnsServers", k),
                    format!("{s:?} is not an IP address"),
                );
            }
        }
        for (k, s) in c.dns_search_domains.iter().enumerate() {
            if s.is_empty() || s.chars().any(char::is_whitespace) {
                self.err(
                    join_index(p, "dnsSearchDomains", k),
                    format!("{s:?} is not a domain name"),
                );
            }
        }
        for (k, h) in c.extra_hosts.iter().enumerate() {
            let hp = join_index(p, "extraHosts", k);
            if h.hostname.is_empty() || h.hostname.chars().any(char::is_whitespace) {
                self.err(
                    join(&hp, "hostname"),
                    format!("{:?} is not a hostname", h.hostname),
                );
            }
            if h.ip_address.parse::<IpAddr>().is_err() {
                self.err(
                    join(&hp, "ipAddress"),
                    format!("{:?} is not an IP address", h.ip_address),
                );
            }
        }
    }

    fn check_labels(&mut self, p: &str, c: &ContainerDefinition) {
        for (key, value) in &c.docker_labels {
            let path = join_key(&join(p, "dockerLabels"), key);
            if key.is_empty() {
                self.err(path, "label keys must not be empty");
            } else if key.starts_with("berth.") {
                self.warn(
                    path,
                    "labels in Berth's namespace `berth.` are reserved for the agent: \
                     this one is not set on the container",
                );
            } else if key.len() + value.len() > 4096 {
                self.warn(
                    path,
                    "over containerd's limit of 4096 bytes for a label's key and value: \
                     this one is not set on the container",
                );
            }
        }
    }

    fn check_resource_requirements(&mut self, p: &str, c: &ContainerDefinition) {
        for (k, rr) in c.resource_requirements.iter().enumerate() {
            let rp = join_index(p, "resourceRequirements", k);
            if rr.value.trim().is_empty() {
                self.err(join(&rp, "value"), "required");
            }
            match rr.kind {
                ResourceType::Gpu => self.err(
                    join(&rp, "type"),
                    "GPU requirements are not supported by Berth yet",
                ),
                ResourceType::InferenceAccelerator => self.warn(
                    rp,
                    "AWS-only (Elastic Inference): stored and returned; no accelerator is attached",
                ),
            }
        }
    }

    /// Warnings for the container fields that only mean something on AWS.
    fn check_aws_only(&mut self, p: &str, c: &ContainerDefinition) {
        for j in 0..c.environment_files.len() {
            self.warn(
                join_index(p, "environmentFiles", j),
                "AWS-only: environment files are read from S3, which Berth does not reach; \
                 the container starts without the variables it holds",
            );
        }
        if c.firelens_configuration.is_some() {
            self.warn(
                join(p, "firelensConfiguration"),
                "AWS-only (FireLens): stored and returned; Berth configures no log router",
            );
        }
        if !c.credential_specs.is_empty() {
            self.warn(
                join(p, "credentialSpecs"),
                "AWS-only (Windows gMSA credential specs): stored and returned, not used",
            );
        }
    }

    fn check_resources(&mut self, p: &str, c: &ContainerDefinition) {
        if let (Some(cpu), Some(task)) = (c.cpu, self.task_cpu) {
            if cpu > task {
                self.err(
                    join(p, "cpu"),
                    format!("container cpu ({cpu} units) exceeds the task cpu ({task} units)"),
                );
            }
        }
        for (field, value) in [
            ("memory", c.memory),
            ("memoryReservation", c.memory_reservation),
        ] {
            if let Some(v) = value {
                if v < MIN_CONTAINER_MEMORY_MIB {
                    self.err(
                        join(p, field),
                        format!(
                            "must be at least {MIN_CONTAINER_MEMORY_MIB} MiB \
                             (Docker's minimum), got {v}"
                        ),
                    );
                }
            }
        }
        match (c.memory, c.memory_reservation) {
            (Some(hard), Some(soft)) if soft > hard => self.err(
                join(p, "memoryReservation"),
                format!("memoryReservation ({soft} MiB) must not exceed memory ({hard} MiB)"),
            ),
            (None, None) if self.def.memory.is_none() => self.err(
                join(p, "memory"),
                "set memory or memoryReservation (or the task-level memory)",
            ),
            _ => {}
        }
    }

    fn check_links(&mut self, p: &str, i: usize, c: &ContainerDefinition) {
        if c.links.is_empty() {
            return;
        }
        if self.mode != NetworkMode::Bridge {
            self.err(
                join(p, "links"),
                format!(
                    "links are supported in bridge network mode only, not {}",
                    self.mode.as_str()
                ),
            );
            return;
        }
        for (k, link) in c.links.iter().enumerate() {
            let lp = join_index(p, "links", k);
            let (target, alias) = match link.split_once(':') {
                Some((t, a)) => (t, Some(a)),
                None => (link.as_str(), None),
            };
            match self.containers.get(target) {
                None => self.err(
                    lp,
                    format!("no container named {target:?} in this task definition"),
                ),
                Some(&t) if t == i => self.err(lp, "a container cannot link to itself"),
                Some(_) => {
                    if alias.is_some_and(|a| !is_name(a)) {
                        self.err(
                            lp,
                            "expected `name` or `name:alias` with an alias of 1–255 letters, \
                             digits, `_` or `-`",
                        );
                    }
                }
            }
        }
    }

    fn check_ports(&mut self, p: &str, c: &ContainerDefinition) {
        if c.port_mappings.is_empty() {
            return;
        }
        if self.mode == NetworkMode::None {
            self.err(
                join(p, "portMappings"),
                "port mappings are not allowed in the none network mode",
            );
            return;
        }
        if c.disable_networking == Some(true) {
            self.err(
                join(p, "portMappings"),
                "port mappings are not allowed when disableNetworking is true",
            );
        }
        for (j, pm) in c.port_mappings.iter().enumerate() {
            self.check_port_mapping(&join_index(p, "portMappings", j), pm);
        }
    }

    fn check_port_mapping(&mut self, pp: &str, pm: &PortMapping) {
        match (pm.container_port, pm.container_port_range.as_deref()) {
            (None, None) => self.err(
                join(pp, "containerPort"),
                "required (or give containerPortRange)",
            ),
            (Some(_), Some(_)) => self.err(
                join(pp, "containerPortRange"),
                "give either containerPort or containerPortRange, not both",
            ),
            (Some(cp), None) => {
                if !(1..=65535).contains(&cp) {
                    self.err(
                        join(pp, "containerPort"),
                        format!("must be 1–65535, got {cp}"),
                    );
                }
            }
            (None, Some(range)) => {
                let rp = join(pp, "containerPortRange");
                if parse_port_range(range).is_none() {
                    self.err(
                        &rp,
                        format!(
                            "expected `first-last` with 1 ≤ first < last ≤ 65535, got {range:?}"
                        ),
                    );
                }
                if self.mode == NetworkMode::Host {
                    self.err(
                        &rp,
                        "containerPortRange is supported in bridge and awsvpc network modes only",
                    );
                }
                if pm.host_port.is_some() {
                    self.err(
                        join(pp, "hostPort"),
                        "not allowed with containerPortRange: host ports are assigned by Berth",
                    );
                }
            }
        }
        if let Some(hp) = pm.host_port {
            if hp > 65535 {
                self.err(
                    join(pp, "hostPort"),
                    format!("must be 1–65535, or 0 for a dynamic port, got {hp}"),
                );
            } else if let (Some(cp), NetworkMode::Host | NetworkMode::Awsvpc) =
                (pm.container_port, self.mode)
            {
                if hp != cp {
                    self.err(
                        join(pp, "hostPort"),
                        format!(
                            "in {} network mode hostPort must be omitted or equal \
                             containerPort ({cp}), got {hp}",
                            self.mode.as_str()
                        ),
                    );
                }
            }
        }
        if let Some(name) = &pm.name {
            if !is_port_name(name) {
                self.err(
                    join(pp, "name"),
                    format!(
                        "must be 1–64 lowercase letters, digits, `_` or `-`, not starting \
                         with `-`, got {name:?}"
                    ),
                );
            }
        }
        if pm.app_protocol.is_some() {
            self.warn(
                join(pp, "appProtocol"),
                "AWS-only (Service Connect): stored and returned; Berth does not proxy \
                 by application protocol",
            );
        }
    }

    fn check_environment(&mut self, p: &str, c: &ContainerDefinition) {
        let mut seen: HashMap<&str, String> = HashMap::new();
        for (k, kv) in c.environment.iter().enumerate() {
            let np = join(&join_index(p, "environment", k), "name");
            if kv.name.is_empty() {
                self.err(np, "must not be empty");
            } else if kv.name.contains('=') || kv.name.contains('\0') {
                self.err(np, "must not contain `=` or NUL");
            } else if let Some(first) = seen.get(kv.name.as_str()) {
                self.err(
                    np,
                    format!(
                        "duplicate environment variable {:?} (also {first})",
                        kv.name
                    ),
                );
            } else {
                seen.insert(kv.name.as_str(), format!("environment[{k}]"));
            }
        }
        for (k, s) in c.secrets.iter().enumerate() {
            let sp = join_index(p, "secrets", k);
            if s.name.is_empty() {
                self.err(join(&sp, "name"), "must not be empty");
            } else if s.name.contains('=') || s.name.contains('\0') {
                self.err(join(&sp, "name"), "must not contain `=` or NUL");
            } else if let Some(first) = seen.get(s.name.as_str()) {
                self.err(
                    join(&sp, "name"),
                    format!("duplicate environment variable {:?} (also {first})", s.name),
                );
            } else {
                seen.insert(s.name.as_str(), format!("secrets[{k}]"));
            }
            if s.value_from.trim().is_empty() {
                self.err(join(&sp, "valueFrom"), "must name a secret");
            } else if let Err(e) = crate::secret_ref::secret_name(&s.value_from) {
                self.err(join(&sp, "valueFrom"), e);
            }
        }
    }

    fn check_mounts(&mut self, p: &str, i: usize, c: &ContainerDefinition) {
        let mut paths: HashMap<&str, usize> = HashMap::new();
        for (j, mp) in c.mount_points.iter().enumerate() {
            let mpp = join_index(p, "mountPoints", j);
            if !self.volumes.contains_key(mp.source_volume.as_str()) {
                self.err(
                    join(&mpp, "sourceVolume"),
                    format!(
                        "no volume named {:?} in the task definition's volumes",
                        mp.source_volume
                    ),
                );
            }
            if mp.container_path.is_empty() {
                self.err(join(&mpp, "containerPath"), "required");
            } else if !mp.container_path.starts_with('/') {
                self.err(
                    join(&mpp, "containerPath"),
                    format!("must be an absolute path, got {:?}", mp.container_path),
                );
            } else if let Some(first) = paths.get(mp.container_path.as_str()) {
                self.err(
                    join(&mpp, "containerPath"),
                    format!(
                        "{:?} is already mounted by mountPoints[{first}]",
                        mp.container_path
                    ),
                );
            } else {
                paths.insert(mp.container_path.as_str(), j);
            }
        }
        for (j, vf) in c.volumes_from.iter().enumerate() {
            let vp = join(&join_index(p, "volumesFrom", j), "sourceContainer");
            match self.containers.get(vf.source_container.as_str()) {
                None => self.err(
                    vp,
                    format!(
                        "no container named {:?} in this task definition",
                        vf.source_container
                    ),
                ),
                Some(&t) if t == i => self.err(vp, "a container cannot take volumes from itself"),
                Some(_) => {}
            }
        }
    }

    fn check_linux_parameters(&mut self, p: &str, c: &ContainerDefinition) {
        let Some(lp) = &c.linux_parameters else {
            return;
        };
        let lpp = join(p, "linuxParameters");
        if let Some(caps) = &lp.capabilities {
            for (field, list) in [("add", &caps.add), ("drop", &caps.drop)] {
                for (k, cap) in list.iter().enumerate() {
                    let name = cap.strip_prefix("CAP_").unwrap_or(cap);
                    if !CAPABILITIES.contains(&name) {
                        self.err(
                            join_index(&join(&lpp, "capabilities"), field, k),
                            format!(
                                "unknown capability {cap:?}, expected a name such as \
                                 SYS_PTRACE or NET_ADMIN (uppercase, without CAP_)"
                            ),
                        );
                    }
                }
            }
        }
        for (k, dev) in lp.devices.iter().enumerate() {
            let dp = join_index(&lpp, "devices", k);
            if !dev.host_path.starts_with('/') {
                self.err(
                    join(&dp, "hostPath"),
                    format!("must be an absolute path, got {:?}", dev.host_path),
                );
            }
            if let Some(cp) = &dev.container_path {
                if !cp.starts_with('/') {
                    self.err(
                        join(&dp, "containerPath"),
                        format!("must be an absolute path, got {cp:?}"),
                    );
                }
            }
        }
        if lp.shared_memory_size == Some(0) {
            self.err(join(&lpp, "sharedMemorySize"), "must be at least 1 MiB");
        }
        for (k, t) in lp.tmpfs.iter().enumerate() {
            let tp = join_index(&lpp, "tmpfs", k);
            if !t.container_path.starts_with('/') {
                self.err(
                    join(&tp, "containerPath"),
                    format!("must be an absolute path, got {:?}", t.container_path),
                );
            }
            if t.size == 0 {
                self.err(join(&tp, "size"), "must be at least 1 MiB");
            }
            for (m, opt) in t.mount_options.iter().enumerate() {
                let key = opt.split_once('=').map_or(opt.as_str(), |(k, _)| k);
                if !TMPFS_OPTIONS.contains(&key) {
                    self.err(
                        join_index(&tp, "mountOptions", m),
                        format!("unknown tmpfs mount option {opt:?}"),
                    );
                }
            }
        }
        if let Some(s) = lp.swappiness {
            if s > 100 {
                self.err(join(&lpp, "swappiness"), format!("must be 0–100, got {s}"));
            }
        }
    }

    fn check_depends_on(&mut self, p: &str, i: usize, c: &ContainerDefinition) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (j, dep) in c.depends_on.iter().enumerate() {
            let dp = join_index(p, "dependsOn", j);
            let name = dep.container_name.as_str();
            if let Some(first) = seen.insert(name, j) {
                self.err(
                    join(&dp, "containerName"),
                    format!("{name:?} is already listed in dependsOn[{first}]"),
                );
                continue;
            }
            let target = match self.containers.get(name) {
                None => {
                    self.err(
                        join(&dp, "containerName"),
                        format!("no container named {name:?} in this task definition"),
                    );
                    continue;
                }
                Some(&t) if t == i => {
                    self.err(
                        join(&dp, "containerName"),
                        "a container cannot depend on itself",
                    );
                    continue;
                }
                Some(&t) => &self.def.container_definitions[t],
            };
            match dep.condition {
                DependencyCondition::Healthy => {
                    if target
                        .health_check
                        .as_ref()
                        .is_none_or(HealthCheck::is_disabled)
                    {
                        self.err(
                            join(&dp, "condition"),
                            format!("HEALTHY needs {name:?} to have a healthCheck"),
                        );
                    }
                }
                DependencyCondition::Complete | DependencyCondition::Success => {
                    if target.is_essential() {
                        self.err(
                            join(&dp, "condition"),
                            format!(
                                "{} waits for {name:?} to exit, but {name:?} is essential and \
                                 its exit stops the task: set its essential to false",
                                dep.condition.as_str()
                            ),
                        );
                    }
                }
                DependencyCondition::Start => {}
            }
        }
    }

    fn check_security_options(&mut self, p: &str, c: &ContainerDefinition) {
        for (k, opt) in c.docker_security_options.iter().enumerate() {
            let op = join_index(p, "dockerSecurityOptions", k);
            let ok = opt == "no-new-privileges"
                || opt
                    .strip_prefix("apparmor:")
                    .or_else(|| opt.strip_prefix("label:"))
                    .is_some_and(|v| !v.is_empty());
            if ok {
                continue;
            }
            if opt.starts_with("credentialspec:") {
                self.warn(
                    op,
                    "AWS-only (Windows gMSA credential spec): stored and returned, not used",
                );
            } else {
                self.err(
                    op,
                    format!(
                        "unsupported security option {opt:?}; supported: no-new-privileges, \
                         apparmor:PROFILE, label:VALUE"
                    ),
                );
            }
        }
    }

    fn check_ulimits(&mut self, p: &str, c: &ContainerDefinition) {
        let mut seen = HashMap::new();
        for (k, u) in c.ulimits.iter().enumerate() {
            let up = join_index(p, "ulimits", k);
            if let Some(first) = seen.insert(u.name, k) {
                self.err(
                    join(&up, "name"),
                    format!("ulimit already set by ulimits[{first}]"),
                );
            }
            let mut ok = true;
            for (field, v) in [("softLimit", u.soft_limit), ("hardLimit", u.hard_limit)] {
                if v < -1 {
                    ok = false;
                    self.err(
                        join(&up, field),
                        format!("must be at least 0, or -1 for unlimited, got {v}"),
                    );
                }
            }
            let unlimited = |v: i64| if v == -1 { i64::MAX } else { v };
            if ok && unlimited(u.soft_limit) > unlimited(u.hard_limit) {
                self.err(
                    join(&up, "softLimit"),
                    format!(
                        "softLimit ({}) must not exceed hardLimit ({})",
                        u.soft_limit, u.hard_limit
                    ),
                );
            }
        }
    }

    fn check_logging(&mut self, p: &str, c: &ContainerDefinition) {
        let Some(lc) = &c.log_configuration else {
            return;
        };
        let lp = join(p, "logConfiguration");
        match &lc.log_driver {
            LogDriver::JsonFile => {
                for (key, value) in &lc.options {
                    let op = join_key(&join(&lp, "options"), key);
                    match key.as_str() {
                        "max-size" if !is_byte_size(value) => self.err(
                            op,
                            format!("expected a size such as `10m` or `1g`, got {value:?}"),
                        ),
                        "max-file" if value.parse::<u32>().map_or(true, |n| n == 0) => self.err(
                            op,
                            format!("expected a whole number of files ≥ 1, got {value:?}"),
                        ),
                        k if !JSON_FILE_OPTIONS.contains(&k) => self.err(
                            op,
                            "json-file option not supported by Berth; supported: max-size, max-file",
                        ),
                        _ => {}
                    }
                }
                if !lc.secret_options.is_empty() {
                    self.err(
                        join(&lp, "secretOptions"),
                        "the json-file driver takes no secret options",
                    );
                }
            }
            LogDriver::None => {
                if !lc.options.is_empty() {
                    self.err(join(&lp, "options"), "the none driver takes no options");
                }
                if !lc.secret_options.is_empty() {
                    self.err(
                        join(&lp, "secretOptions"),
                        "the none driver takes no secret options",
                    );
                }
            }
            LogDriver::Awslogs => self.warn(
                join(&lp, "logDriver"),
                "awslogs is AWS-only: Berth keeps this container's logs locally as json-file; \
                 the awslogs options are stored and returned but not used",
            ),
            LogDriver::Other(name) => self.err(
                join(&lp, "logDriver"),
                format!(
                    "log driver {name:?} is not supported by Berth; supported: json-file, none, \
                     awslogs (kept locally as json-file, with a warning)"
                ),
            ),
        }
    }

    fn check_health_check(&mut self, p: &str, c: &ContainerDefinition) {
        let Some(hc) = &c.health_check else {
            return;
        };
        let hp = join(p, "healthCheck");
        let cmd = &hc.command;
        match cmd.first().map(String::as_str) {
            None => self.err(
                join(&hp, "command"),
                "required: [\"CMD\", exe, args…], [\"CMD-SHELL\", command] or [\"NONE\"]",
            ),
            Some("CMD" | "CMD-SHELL") if cmd.len() < 2 => self.err(
                join(&hp, "command"),
                format!("{} needs the command to run after it", cmd[0]),
            ),
            Some("CMD" | "CMD-SHELL") => {}
            Some("NONE") if cmd.len() > 1 => {
                self.err(join(&hp, "command"), "[\"NONE\"] takes nothing after NONE")
            }
            Some("NONE") => {}
            Some(other) => self.err(
                join_index(&hp, "command", 0),
                format!("must be \"CMD\", \"CMD-SHELL\" or \"NONE\", got {other:?}"),
            ),
        }
        let ranges = [
            ("interval", hc.interval, 5, 300),
            ("timeout", hc.timeout, 2, 120),
            ("retries", hc.retries, 1, 10),
            ("startPeriod", hc.start_period, 0, 300),
        ];
        for (field, value, lo, hi) in ranges {
            if let Some(v) = value {
                if !(lo..=hi).contains(&v) {
                    let unit = if field == "retries" { "" } else { " seconds" };
                    self.err(
                        join(&hp, field),
                        format!("must be {lo}–{hi}{unit}, got {v}"),
                    );
                }
            }
        }
    }

    fn check_system_controls(&mut self, p: &str, c: &ContainerDefinition) {
        for (k, sc) in c.system_controls.iter().enumerate() {
            let np = join(&join_index(p, "systemControls", k), "namespace");
            let ns = sc.namespace.as_str();
            let net = ns.starts_with("net.");
            let ipc = IPC_SYSCTLS.contains(&ns) || ns.starts_with("fs.mqueue.");
            if !net && !ipc {
                self.err(
                    np,
                    format!(
                        "{ns:?} is not a namespaced sysctl; allowed: net.*, fs.mqueue.* and \
                         {}",
                        IPC_SYSCTLS.join(", ")
                    ),
                );
            } else if net && self.mode == NetworkMode::Host {
                self.err(
                    np,
                    "network sysctls are not allowed in host network mode: they would change \
                     the host's own settings",
                );
            } else if ipc && self.def.ipc_mode == Some(super::model::IpcMode::Host) {
                self.err(
                    np,
                    "IPC sysctls are not allowed with ipcMode host: they would change the \
                     host's own settings",
                );
            }
        }
    }

    fn check_cross_container(&mut self) {
        let d = self.def;
        if !d.container_definitions.is_empty()
            && !d
                .container_definitions
                .iter()
                .any(ContainerDefinition::is_essential)
        {
            self.err(
                "containerDefinitions",
                "at least one container must be essential (essential defaults to true)",
            );
        }
        if let Some(task) = self.task_memory {
            let hard: u64 = d
                .container_definitions
                .iter()
                .filter_map(|c| c.memory)
                .map(u64::from)
                .sum();
            let reserved: u64 = d
                .container_definitions
                .iter()
                .filter_map(|c| c.memory_reservation.or(c.memory))
                .map(u64::from)
                .sum();
            if hard > u64::from(task) {
                self.err(
                    "memory",
                    format!(
                        "the containers' memory limits add up to {hard} MiB, more than the \
                         task memory ({task} MiB)"
                    ),
                );
            } else if reserved > u64::from(task) {
                self.err(
                    "memory",
                    format!(
                        "the containers' memory reservations add up to {reserved} MiB, more \
                         than the task memory ({task} MiB)"
                    ),
                );
            }
        }
        if let Some(task) = self.task_cpu {
            let each_fits = d
                .container_definitions
                .iter()
                .all(|c| c.cpu.is_none_or(|v| v <= task));
            let total: u64 = d
                .container_definitions
                .iter()
                .filter_map(|c| c.cpu)
                .map(u64::from)
                .sum();
            if each_fits && total > u64::from(task) {
                self.err(
                    "cpu",
                    format!(
                        "the containers' cpu add up to {total} units, more than the task \
                         cpu ({task} units)"
                    ),
                );
            }
        }
        self.check_host_ports();
        self.check_port_names();
        self.check_dependency_cycles();
    }

    /// The same host port and protocol may not be published twice in a task.
    fn check_host_ports(&mut self) {
        if self.mode == NetworkMode::None {
            return;
        }
        struct Fixed {
            lo: u32,
            hi: u32,
            proto: Protocol,
            path: String,
            owner: String,
        }
        let mut fixed: Vec<Fixed> = Vec::new();
        let same_as_container = matches!(self.mode, NetworkMode::Host | NetworkMode::Awsvpc);
        for (i, c) in self.def.container_definitions.iter().enumerate() {
            for (j, pm) in c.port_mappings.iter().enumerate() {
                let pp = join_index(
                    &join_index("", "containerDefinitions", i),
                    "portMappings",
                    j,
                );
                let range = match (pm.host_port, pm.container_port, &pm.container_port_range) {
                    (Some(h), _, _) if h != 0 && h <= 65535 => Some((h, h, "hostPort")),
                    (None, Some(cp), _) if same_as_container && (1..=65535).contains(&cp) => {
                        Some((cp, cp, "containerPort"))
                    }
                    (None, None, Some(r)) if same_as_container => {
                        parse_port_range(r).map(|(lo, hi)| (lo, hi, "containerPortRange"))
                    }
                    _ => None,
                };
                if let Some((lo, hi, field)) = range {
                    fixed.push(Fixed {
                        lo,
                        hi,
                        proto: pm.effective_protocol(),
                        path: join(&pp, field),
                        owner: pp,
                    });
                }
            }
        }
        for (k, b) in fixed.iter().enumerate() {
            if let Some(a) = fixed[..k]
                .iter()
                .find(|a| a.proto == b.proto && a.lo <= b.hi && b.lo <= a.hi)
            {
                let port = if b.lo == b.hi {
                    format!("host port {}/{}", b.lo, b.proto.as_str())
                } else {
                    format!("host ports {}-{}/{}", b.lo, b.hi, b.proto.as_str())
                };
                let message = format!("{port} is already published by {}", a.owner);
                self.errors.push(FieldIssue::new(b.path.clone(), message));
            }
        }
    }

    fn check_port_names(&mut self) {
        let mut seen: HashMap<&str, String> = HashMap::new();
        for (i, c) in self.def.container_definitions.iter().enumerate() {
            for (j, pm) in c.port_mappings.iter().enumerate() {
                let Some(name) = pm.name.as_deref() else {
                    continue;
                };
                let pp = join_index(
                    &join_index("", "containerDefinitions", i),
                    "portMappings",
                    j,
                );
                if let Some(first) = seen.get(name) {
                    let message = format!("duplicate port mapping name {name:?} (also {first})");
                    self.errors
                        .push(FieldIssue::new(join(&pp, "name"), message));
                } else {
                    seen.insert(name, pp);
                }
            }
        }
    }

    /// Reports each dependsOn cycle once, at the dependsOn entry of its first
    /// container (in definition order) that closes it.
    fn check_dependency_cycles(&mut self) {
        let cs = &self.def.container_definitions;
        // Edges i → (target, dependsOn index), skipping self-loops and unknown
        // names (already reported).
        let edges: Vec<Vec<(usize, usize)>> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.depends_on
                    .iter()
                    .enumerate()
                    .filter_map(|(j, d)| {
                        self.containers
                            .get(d.container_name.as_str())
                            .copied()
                            .filter(|&t| t != i)
                            .map(|t| (t, j))
                    })
                    .collect()
            })
            .collect();
        let mut state = vec![0u8; cs.len()]; // 0 new, 1 on the stack, 2 done
        let mut cycles: Vec<Vec<usize>> = Vec::new();
        for start in 0..cs.len() {
            if state[start] != 0 {
                continue;
            }
            // Iterative DFS: (node, next edge to follow).
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            state[start] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&(target, _)) = edges[node].get(*next) {
                    *next += 1;
                    match state[target] {
                        0 => {
                            state[target] = 1;
                            stack.push((target, 0));
                        }
                        1 => {
                            let from = stack.iter().position(|&(n, _)| n == target);
                            if let Some(from) = from {
                                let mut cycle: Vec<usize> =
                                    stack[from..].iter().map(|&(n, _)| n).collect();
                                // Normalise: start at the smallest index.
                                if let Some(min) = cycle
                                    .iter()
                                    .enumerate()
                                    .min_by_key(|&(_, n)| *n)
                                    .map(|(k, _)| k)
                                {
                                    cycle.rotate_left(min);
                                }
                                if !cycles.contains(&cycle) {
                                    cycles.push(cycle);
                                }
                            }
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                }
            }
        }
        for cycle in cycles {
            let (Some(&first), Some(&second)) = (cycle.first(), cycle.get(1).or(cycle.first()))
            else {
                continue;
            };
            let j = edges[first]
                .iter()
                .find(|&&(t, _)| t == second)
                .map_or(0, |&(_, j)| j);
            let mut names: Vec<&str> = cycle.iter().map(|&n| cs[n].name.as_str()).collect();
            names.push(cs[first].name.as_str());
            let path = join(
                &join_index(
                    &join_index("", "containerDefinitions", first),
                    "dependsOn",
                    j,
                ),
                "containerName",
            );
            self.err(path, format!("dependency cycle: {}", names.join(" -> ")));
        }
    }
}

/// 1–255 of `[A-Za-z0-9_-]`: ECS's rule for family, container and volume names.
fn is_name(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn name_rule(got: &str) -> String {
    format!("must be 1–255 letters, digits, `_` or `-`, got {got:?}")
}

fn is_port_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// RFC 1123 hostname: dot-separated labels of 1–63 letters, digits and `-`,
/// not starting or ending with `-`; at most 253 characters.
fn is_hostname(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Docker's size syntax for `max-size`: digits with an optional `k`, `m`
/// or `g` (optionally followed by `b`), any case.
fn is_byte_size(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let unitless = lower.strip_suffix('b').unwrap_or(&lower);
    let digits = unitless.strip_suffix(['k', 'm', 'g']).unwrap_or(unitless);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && digits.len() <= 12
}

/// `"8000-8010"` → `(8000, 8010)` when 1 ≤ first < last ≤ 65535.
pub fn parse_port_range(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    let a: u32 = a.trim().parse().ok()?;
    let b: u32 = b.trim().parse().ok()?;
    (1 <= a && a < b && b <= 65535).then_some((a, b))
}
