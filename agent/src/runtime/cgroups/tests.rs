//! Pure parts of the cgroup manager: conversions, parsing, paths. The real
//! cgroup work is tested in `agent/tests/runtime.rs` (cgroup v1 only: the
//! development and CI hosts are v1; the v2 paths are covered here only).

use serde_json::json;

use super::*;

#[test]
fn shares_to_weight_matches_runc() {
    // Values from runc's `TestConvertCPUSharesToCgroupV2Value`.
    assert_eq!(shares_to_weight(0), 0);
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(262_144), 10_000);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(512), 20);
    assert_eq!(shares_to_weight(1), 1, "clamped to the v1 minimum");
    assert_eq!(
        shares_to_weight(1 << 30),
        10_000,
        "clamped to the v1 maximum"
    );
}

#[test]
fn task_limits_follow_ecs() {
    let t: TaskDefinition = serde_json::from_value(json!({
        "family": "f", "cpu": "0.5 vCPU", "memory": "64",
        "containerDefinitions": [{"name": "a", "image": "x", "cpu": 100}, {"name": "b", "image": "x"}]
    }))
    .expect("parses");
    let l = TaskLimits::for_task(&t, Some(1024));
    assert_eq!(l.cpu_units, Some(512));
    assert_eq!(l.memory_mib, Some(64));
    assert_eq!(l.cpu(), (Some(512), Some(50_000)));

    let mut t2 = t.clone();
    t2.cpu = None;
    let l = TaskLimits::for_task(&t2, None);
    assert_eq!(l.implicit_cpu_shares, Some(102), "100 + the minimum 2");
    assert_eq!(l.cpu(), (Some(102), None));

    let tiny = TaskLimits {
        cpu_units: Some(2),
        ..TaskLimits::default()
    };
    assert_eq!(
        tiny.cpu(),
        (Some(2), Some(1_000)),
        "quota at the kernel minimum"
    );
}

#[test]
fn mountinfo_v1_and_v2() {
    let v1 = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n\
              35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
              40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n\
              41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n";
    let m = parse_mountinfo(v1, CgroupVersion::V1);
    assert_eq!(
        m.iter()
            .map(|(k, v)| format!("{k}={}", v.display()))
            .collect::<Vec<_>>(),
        [
            "cpu=/sys/fs/cgroup/cpu,cpuacct",
            "cpuacct=/sys/fs/cgroup/cpu,cpuacct",
            "memory=/sys/fs/cgroup/memory",
            "systemd=/sys/fs/cgroup/systemd",
            "unified=/sys/fs/cgroup/unified",
            "xattr=/sys/fs/cgroup/systemd",
        ]
    );
    let v2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
    let m = parse_mountinfo(v2, CgroupVersion::V2);
    assert_eq!(m.get("unified"), Some(&PathBuf::from("/sys/fs/cgroup")));

    let mgr = CgroupManager {
        version: CgroupVersion::V2,
        parent: "berth".into(),
        mounts: m,
    };
    assert_eq!(mgr.container_cgroups_path("t1", "web"), "/berth/t1/web");
    assert_eq!(
        mgr.dir("memory", "berth/t1").ok(),
        Some(PathBuf::from("/sys/fs/cgroup/berth/t1"))
    );
}

#[test]
fn flat_keyed_files() {
    let events = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
    assert_eq!(keyed_value(events, "oom_kill"), Some(2));
    assert_eq!(keyed_value(events, "oom"), Some(3));
    let oom_control = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
    assert_eq!(keyed_value(oom_control, "oom_kill"), Some(1));
    assert_eq!(
        keyed_value("usage_usec 1500\nuser_usec 1000\n", "usage_usec"),
        Some(1500)
    );
    assert_eq!(parse_max("max\n"), None);
    assert_eq!(parse_max("67108864\n"), Some(67_108_864));
}

#[test]
fn names_are_checked() {
    for bad in ["", "a/b", "..", "a b"] {
        assert!(check_name(bad, false).is_err(), "{bad:?}");
    }
    assert!(check_name("berth/tasks", true).is_ok());
    assert!(check_name("berth/../x", true).is_err());
    assert!(check_name("3f2a-b9c1", false).is_ok());
    assert!(OOM_REASON.starts_with("OutOfMemoryError: "));
}

#[test]
fn block_io_bytes_sum_over_devices() {
    let v2 = "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n\
              253:0 rbytes=100 wbytes=1 rios=1 wios=1 dbytes=0 dios=0\n";
    assert_eq!(io_bytes_v2(v2), (4196, 8193));
    let v1 = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 1\n8:0 Async 2\n8:0 Total 12288\n\
              253:0 Read 100\n253:0 Write 1\nTotal 12389\n";
    assert_eq!(io_bytes_v1(v1), (4196, 8193));
    assert_eq!(io_bytes_v2(""), (0, 0));
}
