//! Snapshot tests of the Docker merge table and the key parts of a built
//! spec (user lookup and the `/etc` files are tested in `host/tests.rs`).

use std::fmt::Write as _;

use expect_test::{expect, Expect};
use serde_json::json;

use super::*;

pub(super) fn task(v: serde_json::Value) -> TaskDefinition {
    serde_json::from_value(v).expect("test task definition parses")
}

fn container(v: serde_json::Value) -> ContainerDefinition {
    let mut base = json!({"name": "app", "image": "busybox"});
    if let (Some(b), Some(o)) = (base.as_object_mut(), v.as_object()) {
        for (k, val) in o {
            b.insert(k.clone(), val.clone());
        }
    }
    serde_json::from_value(base).expect("test container parses")
}

fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
    ImageConfig {
        entrypoint: entrypoint.iter().map(|s| (*s).to_owned()).collect(),
        cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
        env: vec!["PATH=/img/bin".into(), "A=image".into(), "B=image".into()],
        working_dir: Some("/srv".into()),
        user: Some("nobody".into()),
        ..ImageConfig::default()
    }
}

#[test]
fn docker_merge_table() {
    let images: [(&str, ImageConfig); 3] = [
        ("ep+cmd", image(&["/ep", "-x"], &["run"])),
        ("cmd only", image(&[], &["run"])),
        ("nothing", image(&[], &[])),
    ];
    let defs: [(&str, serde_json::Value); 6] = [
        ("-", json!({})),
        ("command [c]", json!({"command": ["c"]})),
        ("command []", json!({"command": []})),
        ("entryPoint [e]", json!({"entryPoint": ["e"]})),
        (
            "entryPoint [e] command [c]",
            json!({"entryPoint": ["e"], "command": ["c"]}),
        ),
        ("entryPoint []", json!({"entryPoint": []})),
    ];
    let mut out = String::new();
    for (iname, img) in &images {
        for (dname, d) in &defs {
            let c = container(d.clone());
            let r = match resolve_process(img, &c, &[]) {
                Ok(p) => format!("{:?}", p.args),
                Err(e) => e.to_string(),
            };
            writeln!(out, "{iname:8} | {dname:26} | {r}").ok();
        }
    }
    expect![[r#"
        ep+cmd   | -                          | ["/ep", "-x", "run"]
        ep+cmd   | command [c]                | ["/ep", "-x", "c"]
        ep+cmd   | command []                 | ["/ep", "-x", "run"]
        ep+cmd   | entryPoint [e]             | ["e"]
        ep+cmd   | entryPoint [e] command [c] | ["e", "c"]
        ep+cmd   | entryPoint []              | ["run"]
        cmd only | -                          | ["run"]
        cmd only | command [c]                | ["c"]
        cmd only | command []                 | ["run"]
        cmd only | entryPoint [e]             | ["e"]
        cmd only | entryPoint [e] command [c] | ["e", "c"]
        cmd only | entryPoint []              | ["run"]
        nothing  | -                          | no command: the image has no Entrypoint/Cmd and the container definition gives none
        nothing  | command [c]                | ["c"]
        nothing  | command []                 | no command: the image has no Entrypoint/Cmd and the container definition gives none
        nothing  | entryPoint [e]             | ["e"]
        nothing  | entryPoint [e] command [c] | ["e", "c"]
        nothing  | entryPoint []              | no command: the image has no Entrypoint/Cmd and the container definition gives none
    "#]]
    .assert_eq(&out);
}

#[test]
fn env_cwd_user_merge() {
    let c = container(json!({
        "command": ["x"],
        "environment": [{"name": "B", "value": "def"}, {"name": "C", "value": "def"}, {"name": "E"}],
        "workingDirectory": "/app",
        "user": "1000:1000"
    }));
    let extra = [
        ("C".to_owned(), "extra".to_owned()),
        ("D".to_owned(), "extra".to_owned()),
    ];
    let p = resolve_process(&image(&[], &[]), &c, &extra).expect("resolves");
    expect![[r#"
        Process {
            args: [
                "x",
            ],
            env: [
                "PATH=/img/bin",
                "A=image",
                "B=def",
                "C=extra",
                "E=",
                "D=extra",
            ],
            cwd: "/app",
            user: "1000:1000",
        }
    "#]]
    .assert_debug_eq(&p);

    let bare = ImageConfig {
        cmd: vec!["sh".into()],
        ..ImageConfig::default()
    };
    let p = resolve_process(&bare, &container(json!({})), &[]).expect("resolves");
    assert_eq!(p.env, vec![format!("PATH={DEFAULT_PATH}")]);
    assert_eq!(p.cwd, "/");
    assert_eq!(p.user, "");
}

struct Fixture {
    task: TaskDefinition,
    volumes: BTreeMap<String, PathBuf>,
}

impl Fixture {
    fn new(task_json: serde_json::Value) -> Self {
        Fixture {
            task: task(task_json),
            volumes: BTreeMap::from([("data".to_owned(), PathBuf::from("/var/lib/berth/v/data"))]),
        }
    }

    fn input(&self) -> SpecInput<'_> {
        let c = &self.task.container_definitions[0];
        SpecInput {
            task_id: "0123456789abcdef",
            task: &self.task,
            container: c,
            process: Process {
                args: vec!["/bin/app".into()],
                env: vec!["PATH=/bin".into()],
                cwd: "/".into(),
                user: String::new(),
            },
            uid_gid: (0, 0, vec![]),
            netns: Some(Path::new("/var/run/netns/t1")),
            task_pid_ns: None,
            task_ipc_ns: None,
            hostname: "0123456789ab".into(),
            etc_files: EtcFiles {
                hosts: "/run/berth/t/app/hosts".into(),
                resolv_conf: "/run/berth/t/app/resolv.conf".into(),
                hostname: "/run/berth/t/app/hostname".into(),
            },
            volumes: &self.volumes,
            cgroups_path: "/berth/0123456789abcdef/app".into(),
            labels: BTreeMap::from([("com.example.team".to_owned(), "web".to_owned())]),
            pids_limit: Some(4096),
            init_binary: Some("/usr/bin/tini-static".into()),
            private_cgroupns: false,
        }
    }
}

/// The parts of a spec worth reviewing, in a stable order.
fn summary(spec: &Spec) -> String {
    let mut s = String::new();
    let p = spec.process().as_ref().expect("process");
    writeln!(s, "args: {:?}", p.args().as_deref().unwrap_or_default()).ok();
    writeln!(s, "env: {:?}", p.env().as_deref().unwrap_or_default()).ok();
    writeln!(s, "user: {:?}", p.user()).ok();
    let caps = p.capabilities().as_ref().expect("caps");
    writeln!(
        s,
        "caps: {:?}",
        capability_names(caps.bounding().as_ref().expect("bounding"))
    )
    .ok();
    for r in p.rlimits().as_deref().unwrap_or_default() {
        if r.typ() == PosixRlimitType::RlimitNofile && (r.soft(), r.hard()) == default_nofile() {
            writeln!(s, "rlimit: {:?} default", r.typ()).ok();
        } else {
            writeln!(s, "rlimit: {:?} {}/{}", r.typ(), r.soft(), r.hard()).ok();
        }
    }
    writeln!(
        s,
        "no_new_privileges: {:?}, root readonly: {:?}, hostname: {:?}",
        p.no_new_privileges(),
        spec.root().as_ref().and_then(|r| r.readonly()),
        spec.hostname()
    )
    .ok();
    for m in spec.mounts().as_deref().unwrap_or_default() {
        writeln!(
            s,
            "mount: {} {} {} {}",
            m.destination().display(),
            m.typ().as_deref().unwrap_or(""),
            m.source()
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            m.options().as_deref().unwrap_or_default().join(",")
        )
        .ok();
    }
    let l = spec.linux().as_ref().expect("linux");
    for n in l.namespaces().as_deref().unwrap_or_default() {
        writeln!(s, "ns: {:?} {:?}", n.typ(), n.path()).ok();
    }
    let r = l.resources().as_ref().expect("resources");
    writeln!(
        s,
        "cpu: {}",
        serde_json::to_string(r.cpu()).unwrap_or_default()
    )
    .ok();
    writeln!(
        s,
        "memory: {}",
        serde_json::to_string(r.memory()).unwrap_or_default()
    )
    .ok();
    writeln!(
        s,
        "pids: {}",
        serde_json::to_string(r.pids()).unwrap_or_default()
    )
    .ok();
    writeln!(
        s,
        "device rules: {}",
        serde_json::to_string(r.devices()).unwrap_or_default()
    )
    .ok();
    writeln!(s, "cgroupsPath: {:?}", l.cgroups_path()).ok();
    writeln!(
        s,
        "masked: {}",
        l.masked_paths().as_ref().map_or(0, Vec::len)
    )
    .ok();
    writeln!(
        s,
        "readonly: {}",
        l.readonly_paths().as_ref().map_or(0, Vec::len)
    )
    .ok();
    let mut ann: Vec<_> = spec.annotations().iter().flatten().collect();
    ann.sort();
    writeln!(s, "annotations: {ann:?}").ok();
    s
}

fn check_spec(task_json: serde_json::Value, expect: Expect) {
    let f = Fixture::new(task_json);
    let spec = build_spec(&f.input()).expect("spec builds");
    expect.assert_eq(&summary(&spec));
}

#[test]
fn spec_defaults() {
    check_spec(
        json!({"family": "f", "containerDefinitions": [{"name": "app", "image": "x"}]}),
        expect![[r#"
            args: ["/bin/app"]
            env: ["PATH=/bin", "HOSTNAME=0123456789ab"]
            user: User { uid: 0, gid: 0, umask: None, additional_gids: Some([0]), username: None }
            caps: {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
            rlimit: RlimitNofile default
            no_new_privileges: Some(false), root readonly: Some(false), hostname: Some("0123456789ab")
            mount: /proc proc proc nosuid,noexec,nodev
            mount: /dev tmpfs tmpfs nosuid,strictatime,mode=755,size=65536k
            mount: /dev/pts devpts devpts nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5
            mount: /sys sysfs sysfs nosuid,noexec,nodev,ro
            mount: /sys/fs/cgroup cgroup cgroup nosuid,noexec,nodev,relatime,ro
            mount: /dev/mqueue mqueue mqueue nosuid,noexec,nodev
            mount: /dev/shm tmpfs shm nosuid,noexec,nodev,mode=1777,size=65536k
            mount: /etc/hosts bind /run/berth/t/app/hosts rbind,rprivate,rw
            mount: /etc/resolv.conf bind /run/berth/t/app/resolv.conf rbind,rprivate,rw
            mount: /etc/hostname bind /run/berth/t/app/hostname rbind,rprivate,rw
            ns: Mount None
            ns: Uts None
            ns: Pid None
            ns: Ipc None
            ns: Network Some("/var/run/netns/t1")
            cpu: {"shares":2}
            memory: {}
            pids: {"limit":4096}
            device rules: [{"allow":false,"access":"rwm"}]
            cgroupsPath: Some("/berth/0123456789abcdef/app")
            masked: 11
            readonly: 5
            annotations: [("com.example.team", "web")]
        "#]],
    );
}

#[test]
fn spec_with_everything() {
    check_spec(
        json!({
            "family": "f",
            "pidMode": "host",
            "ipcMode": "none",
            "volumes": [{"name": "data"}],
            "containerDefinitions": [{
                "name": "app", "image": "x",
                "cpu": 512, "memory": 32, "memoryReservation": 16,
                "readonlyRootFilesystem": true,
                "dockerSecurityOptions": ["no-new-privileges"],
                "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": true}],
                "ulimits": [{"name": "nofile", "softLimit": 100, "hardLimit": 200},
                            {"name": "core", "softLimit": -1, "hardLimit": -1}],
                "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
                "linuxParameters": {
                    "capabilities": {"add": ["SYS_PTRACE", "CAP_NET_ADMIN"], "drop": ["NET_RAW", "mknod"]},
                    "initProcessEnabled": true,
                    "maxSwap": 8, "swappiness": 10,
                    "tmpfs": [{"containerPath": "/data/tmp", "size": 16, "mountOptions": ["exec"]},
                              {"containerPath": "/scratch", "size": 8}]
                }
            }]
        }),
        expect![[r#"
            args: ["/sbin/berth-init", "--", "/bin/app"]
            env: ["PATH=/bin", "HOSTNAME=0123456789ab"]
            user: User { uid: 0, gid: 0, umask: None, additional_gids: Some([0]), username: None }
            caps: {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_ADMIN", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT", "SYS_PTRACE"}
            rlimit: RlimitNofile 100/200
            rlimit: RlimitCore 18446744073709551615/18446744073709551615
            no_new_privileges: Some(true), root readonly: Some(true), hostname: Some("0123456789ab")
            mount: /proc proc proc nosuid,noexec,nodev
            mount: /dev tmpfs tmpfs nosuid,strictatime,mode=755,size=65536k
            mount: /dev/pts devpts devpts nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5
            mount: /sys sysfs sysfs nosuid,noexec,nodev,ro
            mount: /sys/fs/cgroup cgroup cgroup nosuid,noexec,nodev,relatime,ro
            mount: /dev/mqueue mqueue mqueue nosuid,noexec,nodev
            mount: /sbin/berth-init bind /usr/bin/tini-static rbind,rprivate,ro
            mount: /etc/hosts bind /run/berth/t/app/hosts rbind,rprivate,ro
            mount: /etc/resolv.conf bind /run/berth/t/app/resolv.conf rbind,rprivate,ro
            mount: /etc/hostname bind /run/berth/t/app/hostname rbind,rprivate,ro
            mount: /data bind /var/lib/berth/v/data rbind,rprivate,ro
            mount: /scratch tmpfs tmpfs nosuid,nodev,noexec,size=8m
            mount: /data/tmp tmpfs tmpfs nosuid,nodev,noexec,exec,size=16m
            ns: Mount None
            ns: Uts None
            ns: Ipc None
            ns: Network Some("/var/run/netns/t1")
            cpu: {"shares":512}
            memory: {"limit":33554432,"reservation":16777216,"swap":41943040,"swappiness":10}
            pids: {"limit":4096}
            device rules: [{"allow":false,"access":"rwm"}]
            cgroupsPath: Some("/berth/0123456789abcdef/app")
            masked: 11
            readonly: 5
            annotations: [("com.example.team", "web")]
        "#]],
    );
}

#[test]
fn spec_privileged_and_errors() {
    let f = Fixture::new(json!({"family": "f", "containerDefinitions": [
        {"name": "app", "image": "x", "privileged": true}
    ]}));
    let spec = build_spec(&f.input()).expect("spec builds");
    let l = spec.linux().as_ref().expect("linux");
    assert_eq!(l.masked_paths().as_deref(), Some(&[][..]));
    let caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().clone())
        .and_then(|c| c.bounding().clone())
        .expect("caps");
    assert!(
        caps.contains(&Capability::SysAdmin),
        "privileged has every capability"
    );
    assert!(
        !l.devices().as_deref().unwrap_or_default().is_empty(),
        "host devices are passed"
    );

    for (def, want) in [
        (
            json!({"name": "a", "image": "x", "linuxParameters": {"initProcessEnabled": true}}),
            "containerDefinitions[1].linuxParameters.initProcessEnabled: no static init binary",
        ),
        (
            json!({"name": "a", "image": "x", "mountPoints": [{"sourceVolume": "nope", "containerPath": "/n"}]}),
            "containerDefinitions[1].mountPoints[0].sourceVolume: no host directory for volume \"nope\"",
        ),
        (
            json!({"name": "a", "image": "x", "linuxParameters": {"capabilities": {"add": ["FLY"]}}}),
            "containerDefinitions[1].linuxParameters.capabilities.add[0]: unknown capability \"FLY\"",
        ),
        (
            json!({"name": "a", "image": "x", "linuxParameters": {"devices": [{"hostPath": "/etc/passwd"}]}}),
            "containerDefinitions[1].linuxParameters.devices[0].hostPath: /etc/passwd is not a device",
        ),
        (
            json!({"name": "a", "image": "x", "dockerSecurityOptions": ["label:type:foo"]}),
            "containerDefinitions[1].dockerSecurityOptions[0]: SELinux labels are not supported",
        ),
    ] {
        let f = Fixture::new(json!({"family": "f", "containerDefinitions": [
            {"name": "first", "image": "x"}, def
        ]}));
        let mut input = f.input();
        input.container = &f.task.container_definitions[1];
        input.init_binary = None;
        let err = build_spec(&input).expect_err("must be refused").to_string();
        assert!(err.starts_with(want), "{err}\n  does not start with\n{want}");
    }
}

#[test]
fn devices_and_spec_any() {
    let f = Fixture::new(json!({"family": "f", "containerDefinitions": [{
        "name": "app", "image": "x",
        "linuxParameters": {"devices": [{"hostPath": "/dev/null", "containerPath": "/dev/mynull", "permissions": ["read"]}]}
    }]}));
    let spec = build_spec(&f.input()).expect("spec builds");
    let any = spec_any(&spec).expect("encodes");
    assert_eq!(any.type_url, SPEC_TYPE_URL);
    let v: serde_json::Value = serde_json::from_slice(&any.value).expect("json");
    expect![[r#"
        [{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"r"}]"#]]
    .assert_eq(&v["linux"]["resources"]["devices"].to_string());
    assert_eq!(v["linux"]["devices"][0]["path"], "/dev/mynull");
    assert_eq!(v["ociVersion"], "1.0.2");
}

#[test]
fn hostname_and_shares() {
    let t = task(json!({"family": "f", "containerDefinitions": [{"name": "app", "image": "x"}]}));
    let c = &t.container_definitions[0];
    assert_eq!(
        container_hostname(&t, c, "5f2c-9a1b-77aa-1234", "host1"),
        "5f2c9a1b77aa"
    );
    let th = task(
        json!({"family": "f", "networkMode": "host", "containerDefinitions": [{"name": "app", "image": "x"}]}),
    );
    assert_eq!(
        container_hostname(&th, &th.container_definitions[0], "x", "host1"),
        "host1"
    );
    assert_eq!(container_cpu_shares(None), 2);
    assert_eq!(container_cpu_shares(Some(0)), 2);
    assert_eq!(container_cpu_shares(Some(1)), 2);
    assert_eq!(container_cpu_shares(Some(3)), 3);
}
