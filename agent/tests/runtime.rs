//! Real runc and real cgroups: specs from `runtime::spec` run in bundles with
//! a busybox rootfs, under task cgroups from `runtime::cgroups`.
//!
//! Needs root, `runc` and a static busybox (`busybox-static`); a test fails
//! with a clear message where one is missing. The cgroup tests exercise the
//! host's cgroup version (v1 on the development and CI hosts; the v2 paths
//! have unit tests only).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_agent::runtime::cgroups::{CgroupManager, CgroupVersion, TaskLimits};
use berth_agent::runtime::spec::{
    build_spec, find_init_binary, resolve_process, resolve_user, write_etc_files, ImageConfig,
    SpecInput,
};
use berth_proto::taskdef::TaskDefinition;
use serde_json::json;

const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];
const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "id", "pwd", "env", "hostname", "touch", "grep", "head", "tr", "sleep",
    "true",
];

fn require_root_and_runc() -> PathBuf {
    assert!(
        nix_is_root(),
        "these tests need root (they create cgroups and run runc); run them as root"
    );
    let ok = Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "runc is not installed or not on PATH (Debian: apt-get install runc)"
    );
    BUSYBOX_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no static busybox (apt-get install busybox-static)"))
}

fn nix_is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
    })
}

/// A bundle dir: `rootfs/` with busybox and its applets, `/etc/passwd` and
/// `/etc/group` (user `app` 1000:1000, also in `staff`), and `out/`, a host
/// dir for the `out` volume.
struct Bundle {
    dir: tempfile::TempDir,
    name: String,
}

impl Bundle {
    fn new(busybox: &Path, name: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let rootfs = dir.path().join("rootfs");
        for d in [
            "bin", "etc", "proc", "sys", "dev", "tmp", "work", "out", "sbin",
        ] {
            fs::create_dir_all(rootfs.join(d)).expect("mkdir");
        }
        fs::copy(busybox, rootfs.join("bin/busybox")).expect("copy busybox");
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).expect("symlink");
        }
        fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/work:/bin/sh\n",
        )
        .expect("passwd");
        fs::write(
            rootfs.join("etc/group"),
            "root:x:0:\napp:x:1000:\nstaff:x:50:app\n",
        )
        .expect("group");
        for f in ["hosts", "resolv.conf", "hostname"] {
            fs::write(rootfs.join("etc").join(f), "").expect("etc file");
        }
        let out = dir.path().join("out");
        fs::create_dir_all(&out).expect("mkdir out");
        // The container may run as uid 1000.
        fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod");
        let name = format!("berth-spec-{}-{name}", std::process::id());
        Bundle { dir, name }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn rootfs(&self) -> PathBuf {
        self.path().join("rootfs")
    }

    fn out(&self, file: &str) -> String {
        fs::read_to_string(self.path().join("out").join(file))
            .unwrap_or_else(|e| panic!("the container did not write {file}: {e}"))
    }

    fn runc(&self) -> Command {
        let mut c = Command::new("runc");
        c.arg("--root").arg(self.path().join("state"));
        c
    }

    /// `runc run` in the foreground; returns the container's exit code.
    fn run(&self) -> i32 {
        let out = self
            .runc()
            .args(["run", "--bundle"])
            .arg(self.path())
            .arg(&self.name)
            .stdin(Stdio::null())
            .output()
            .expect("runc runs");
        eprintln!(
            "runc stdout: {}\nrunc stderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.status.code().unwrap_or(-1)
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = self
            .runc()
            .args(["delete", "--force", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A cgroup parent of its own per test, removed at the end.
struct Cgroups {
    mgr: CgroupManager,
    parent: String,
    task: String,
}

impl Cgroups {
    fn new(test: &str) -> Self {
        let parent = format!("berth-test-{}-{test}", std::process::id());
        let mgr = CgroupManager::detect(&parent).expect("cgroups detected");
        Cgroups {
            mgr,
            parent,
            task: "task1".to_owned(),
        }
    }

    /// Every directory of this test's parent in any hierarchy.
    fn leftovers(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        for e in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = e.path().join(&self.parent);
            if p.exists() {
                v.push(p);
            }
        }
        let p = Path::new("/sys/fs/cgroup").join(&self.parent);
        if p.exists() {
            v.push(p);
        }
        v
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        let _ = self.mgr.remove_task(&self.task);
        for p in self.leftovers() {
            let _ = fs::remove_dir(p);
        }
    }
}

fn task_def(v: serde_json::Value) -> TaskDefinition {
    serde_json::from_value(v).expect("task definition parses")
}

/// Writes `config.json` for the first container of `task` into `bundle`.
fn write_spec(bundle: &Bundle, cg: &Cgroups, task: &TaskDefinition, image: &ImageConfig) {
    let c = &task.container_definitions[0];
    let process =
        resolve_process(image, c, &[("BERTH_EXTRA".into(), "1".into())]).expect("process resolves");
    let uid_gid = resolve_user(&bundle.rootfs(), &process.user).expect("user resolves");
    let etc = write_etc_files(
        &bundle.path().join("etc"),
        task,
        c,
        "web-1",
        None,
        Path::new("/etc/resolv.conf"),
    )
    .expect("etc files");
    let volumes = BTreeMap::from([("out".to_owned(), bundle.path().join("out"))]);
    let spec = build_spec(&SpecInput {
        task_id: &cg.task,
        task,
        container: c,
        process,
        uid_gid,
        netns: None,
        task_pid_ns: None,
        task_ipc_ns: None,
        hostname: "web-1".into(),
        etc_files: etc,
        volumes: &volumes,
        cgroups_path: cg.mgr.container_cgroups_path(&cg.task, &c.name),
        labels: BTreeMap::from([("com.example.k".to_owned(), "v".to_owned())]),
        pids_limit: Some(256),
        init_binary: find_init_binary(),
        private_cgroupns: cg.mgr.version() == CgroupVersion::V2,
    })
    .expect("spec builds");
    fs::write(
        bundle.path().join("config.json"),
        serde_json::to_vec_pretty(&spec).expect("json"),
    )
    .expect("write config.json");
}

#[test]
fn process_user_env_cwd_hosts_and_ulimits() {
    let busybox = require_root_and_runc();
    let b = Bundle::new(&busybox, "proc");
    let cg = Cgroups::new("proc");
    let task = task_def(json!({
        "family": "t",
        "volumes": [{"name": "out"}],
        "containerDefinitions": [{
            "name": "app", "image": "busybox",
            "user": "app",
            "workingDirectory": "/work",
            "environment": [{"name": "GREETING", "value": "hi"}],
            "command": ["id > /out/id; pwd > /out/pwd; env > /out/env; echo \"$0\" > /out/arg0; \
                         hostname > /out/hostname; cat /etc/hosts > /out/hosts; ulimit -n > /out/nofile; \
                         ulimit -Hn > /out/nofile_hard"],
            "mountPoints": [{"sourceVolume": "out", "containerPath": "/out"}],
            "extraHosts": [{"hostname": "api.internal", "ipAddress": "10.9.8.7"}],
            "ulimits": [{"name": "nofile", "softLimit": 777, "hardLimit": 888}]
        }]
    }));
    let image = ImageConfig {
        entrypoint: vec!["/bin/sh".into(), "-c".into()],
        cmd: vec!["echo image-cmd".into()],
        env: vec!["FROM_IMAGE=yes".into(), "GREETING=image".into()],
        ..ImageConfig::default()
    };
    write_spec(&b, &cg, &task, &image);
    assert_eq!(b.run(), 0, "the container exits 0");

    // The kernel sorts supplementary groups; the primary group is one of them.
    assert_eq!(
        b.out("id").trim(),
        "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)"
    );
    assert_eq!(b.out("pwd").trim(), "/work");
    let env = b.out("env");
    for want in [
        "FROM_IMAGE=yes",
        "GREETING=hi",
        "BERTH_EXTRA=1",
        "HOSTNAME=web-1",
        "PATH=",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(want)),
            "{want} missing from\n{env}"
        );
    }
    assert_eq!(b.out("hostname").trim(), "web-1");
    let hosts = b.out("hosts");
    assert!(hosts.contains("10.9.8.7\tapi.internal"), "{hosts}");
    assert!(hosts.contains("127.0.0.1\tlocalhost"), "{hosts}");
    assert_eq!(b.out("nofile").trim(), "777");
    assert_eq!(b.out("nofile_hard").trim(), "888");
}

#[test]
fn readonly_rootfs_and_dropped_capability() {
    let busybox = require_root_and_runc();
    let b = Bundle::new(&busybox, "ro");
    let cg = Cgroups::new("ro");
    let task = task_def(json!({
        "family": "t",
        "volumes": [{"name": "out"}],
        "containerDefinitions": [{
            "name": "app", "image": "busybox",
            "readonlyRootFilesystem": true,
            "entryPoint": ["/bin/sh", "-c"],
            "command": ["touch /rootfile 2>/out/ro_err; echo $? > /out/ro_rc; \
                         grep -E '^Cap(Eff|Bnd)' /proc/self/status > /out/caps; \
                         touch /out/volume_ok"],
            "mountPoints": [{"sourceVolume": "out", "containerPath": "/out"}],
            "linuxParameters": {"capabilities": {"drop": ["NET_RAW"], "add": ["SYS_PTRACE"]}}
        }]
    }));
    write_spec(&b, &cg, &task, &ImageConfig::default());
    assert_eq!(b.run(), 0);

    assert_ne!(
        b.out("ro_rc").trim(),
        "0",
        "writing the read-only rootfs must fail"
    );
    assert!(
        b.out("ro_err").contains("Read-only file system"),
        "{}",
        b.out("ro_err")
    );
    assert!(
        b.path().join("out/volume_ok").exists(),
        "the volume stays writable"
    );

    // Docker's defaults minus NET_RAW (13) plus SYS_PTRACE (19).
    let bits = [0u32, 1, 3, 4, 5, 6, 7, 8, 10, 18, 27, 29, 31, 19];
    let want: u64 = bits.iter().map(|b| 1u64 << b).sum();
    let caps = b.out("caps");
    for line in caps.lines() {
        let (name, hex) = line.split_once(':').expect("Cap line");
        let got = u64::from_str_radix(hex.trim(), 16).expect("hex");
        assert_eq!(got, want, "{name}: {got:#x} != {want:#x}");
        assert_eq!(got & (1 << 13), 0, "NET_RAW must be dropped");
    }
}

#[test]
fn init_process_runs_as_pid_1() {
    let busybox = require_root_and_runc();
    assert!(
        find_init_binary().is_some(),
        "no static init on this host (apt-get install tini): initProcessEnabled needs one"
    );
    let b = Bundle::new(&busybox, "init");
    let cg = Cgroups::new("init");
    let task = task_def(json!({
        "family": "t",
        "volumes": [{"name": "out"}],
        "containerDefinitions": [{
            "name": "app", "image": "busybox",
            "entryPoint": ["/bin/sh", "-c"],
            "command": ["cat /proc/1/comm > /out/pid1; echo $$ > /out/self"],
            "mountPoints": [{"sourceVolume": "out", "containerPath": "/out"}],
            "linuxParameters": {"initProcessEnabled": true}
        }]
    }));
    write_spec(&b, &cg, &task, &ImageConfig::default());
    assert_eq!(b.run(), 0);
    assert_eq!(b.out("pid1").trim(), "berth-init");
    assert_ne!(b.out("self").trim(), "1");
}

fn read_trim(p: PathBuf) -> String {
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_owned()
}

#[test]
fn task_cgroup_limits_and_oom_kill() {
    let busybox = require_root_and_runc();
    let b = Bundle::new(&busybox, "oom");
    let cg = Cgroups::new("oom");
    let task = task_def(json!({
        "family": "t", "cpu": "512", "memory": "64",
        "volumes": [{"name": "out"}],
        "containerDefinitions": [{
            "name": "hog", "image": "busybox", "memory": 32,
            "entryPoint": ["/bin/sh", "-c"],
            "command": ["x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived > /out/survived"],
            "mountPoints": [{"sourceVolume": "out", "containerPath": "/out"}]
        }]
    }));
    let limits = TaskLimits::for_task(&task, Some(512));
    cg.mgr
        .create_task(&cg.task, &limits)
        .expect("task cgroup created");
    assert!(cg.mgr.task_exists(&cg.task));

    let rel = format!("{}/{}", cg.parent, cg.task);
    match cg.mgr.version() {
        CgroupVersion::V1 => {
            let root = Path::new("/sys/fs/cgroup");
            assert_eq!(
                read_trim(root.join("memory").join(&rel).join("memory.limit_in_bytes")),
                "67108864"
            );
            assert_eq!(
                read_trim(root.join("cpu").join(&rel).join("cpu.shares")),
                "512"
            );
            assert_eq!(
                read_trim(root.join("cpu").join(&rel).join("cpu.cfs_quota_us")),
                "50000"
            );
            assert_eq!(
                read_trim(root.join("cpu").join(&rel).join("cpu.cfs_period_us")),
                "100000"
            );
            assert_eq!(
                read_trim(root.join("pids").join(&rel).join("pids.max")),
                "512"
            );
        }
        CgroupVersion::V2 => {
            let dir = Path::new("/sys/fs/cgroup").join(&rel);
            assert_eq!(read_trim(dir.join("memory.max")), "67108864");
            assert_eq!(read_trim(dir.join("cpu.weight")), "20");
            assert_eq!(read_trim(dir.join("cpu.max")), "50000 100000");
            assert_eq!(read_trim(dir.join("pids.max")), "512");
        }
    }
    let stats = cg.mgr.task_stats(&cg.task).expect("stats");
    assert_eq!(stats.memory_limit_bytes, Some(64 << 20));

    write_spec(&b, &cg, &task, &ImageConfig::default());
    // Detached, so that the container's cgroup outlives its process until
    // the OOM check, as with containerd (task exit, then delete).
    let status = b
        .runc()
        .args(["run", "--detach", "--bundle"])
        .arg(b.path())
        .arg(&b.name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .expect("runc run --detach");
    assert!(status.success(), "runc run --detach failed");
    for attempt in 0.. {
        let out = b
            .runc()
            .args(["state", &b.name])
            .output()
            .expect("runc state");
        let state: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        if state["status"] == "stopped" {
            break;
        }
        assert!(
            attempt < 600,
            "the container did not stop within 60 s: {state}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !b.path().join("out/survived").exists(),
        "the container should have been killed before it finished"
    );
    assert!(
        cg.mgr
            .container_oom_killed(&cg.task, "hog")
            .expect("oom check"),
        "the OOM kill is reported"
    );
    assert!(
        !cg.mgr
            .container_oom_killed(&cg.task, "other")
            .expect("oom check"),
        "a container without a cgroup was not OOM-killed"
    );

    let del = b
        .runc()
        .args(["delete", "--force", &b.name])
        .status()
        .expect("runc delete");
    assert!(del.success());
    cg.mgr.remove_task(&cg.task).expect("task cgroup removed");
    cg.mgr.remove_task(&cg.task).expect("removal is idempotent");
    assert!(!cg.mgr.task_exists(&cg.task));
    let task_dirs: Vec<PathBuf> = cg
        .leftovers()
        .into_iter()
        .map(|p| p.join(&cg.task))
        .filter(|p| p.exists())
        .collect();
    assert!(task_dirs.is_empty(), "left behind: {task_dirs:?}");
}
