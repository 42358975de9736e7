//! User lookup in a fake rootfs, and the `/etc` files as written.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use expect_test::expect;
use serde_json::json;

use super::super::resolv_conf;
use super::super::tests::task;
use super::*;

fn fake_rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let etc = dir.path().join("etc");
    fs::create_dir_all(&etc).expect("mkdir etc");
    fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         app:x:1000:1001:App:/home/app:/bin/sh\n\
         # comment\n\
         svc:x:999:999::/:/sbin/nologin\n",
    )
    .expect("passwd");
    // /etc/group is a symlink with an absolute target: it must resolve inside
    // the rootfs, not on the host.
    fs::create_dir_all(dir.path().join("usr/share")).expect("mkdir");
    fs::write(
        dir.path().join("usr/share/group"),
        "root:x:0:\nwheel:x:10:root,app\nappgrp:x:1001:\nstaff:x:50:app,svc\n",
    )
    .expect("group");
    std::os::unix::fs::symlink("/usr/share/group", etc.join("group")).expect("symlink");
    dir
}

#[test]
fn resolve_user_cases() {
    let root = fake_rootfs();
    let mut out = String::new();
    for u in [
        "",
        "root",
        "app",
        "1000",
        "app:staff",
        "app:77",
        "1000:50",
        "4242",
        "4242:4242",
        "svc",
        "ghost",
        "app:ghosts",
    ] {
        let r = match resolve_user(root.path(), u) {
            Ok(v) => format!("{v:?}"),
            Err(e) => e.to_string(),
        };
        writeln!(out, "{u:10} => {r}").ok();
    }
    expect![[r#"
                   => (0, 0, [10])
        root       => (0, 0, [10])
        app        => (1000, 1001, [10, 50])
        1000       => (1000, 1001, [10, 50])
        app:staff  => (1000, 50, [])
        app:77     => (1000, 77, [])
        1000:50    => (1000, 50, [])
        4242       => (4242, 0, [])
        4242:4242  => (4242, 4242, [])
        svc        => (999, 999, [50])
        ghost      => user "ghost": no user "ghost" in the image's /etc/passwd
        app:ghosts => user "app:ghosts": no group "ghosts" in the image's /etc/group
    "#]]
    .assert_eq(&out);

    let empty = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        resolve_user(empty.path(), "12:34").ok(),
        Some((12, 34, vec![]))
    );
    assert!(resolve_user(empty.path(), "app")
        .expect_err("no passwd")
        .to_string()
        .contains("the image has none"));
}

#[test]
fn etc_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host_resolv = dir.path().join("host-resolv.conf");
    fs::write(
        &host_resolv,
        "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0\n",
    )
    .expect("write");
    let t = task(json!({"family": "f", "containerDefinitions": [{
        "name": "app", "image": "x",
        "links": ["db:database", "cache"],
        "extraHosts": [{"hostname": "api.internal", "ipAddress": "10.1.2.3"}]
    }]}));
    let c = &t.container_definitions[0];
    let files = write_etc_files(
        &dir.path().join("app"),
        &t,
        c,
        "web-1",
        Some("172.30.0.5".parse().expect("ip")),
        &host_resolv,
    )
    .expect("writes");
    let read = |p: &Path| fs::read_to_string(p).expect("read");
    expect![[r#"
        127.0.0.1	localhost
        ::1	localhost ip6-localhost ip6-loopback
        fe00::0	ip6-localnet
        ff00::0	ip6-mcastprefix
        ff02::1	ip6-allnodes
        ff02::2	ip6-allrouters
        172.30.0.5	web-1
        10.1.2.3	api.internal
        172.30.0.5	database db
        172.30.0.5	cache
    "#]]
    .assert_eq(&read(&files.hosts));
    expect![[r#"
        search corp.example
        nameserver 10.0.0.2
        options edns0
    "#]]
    .assert_eq(&read(&files.resolv_conf));
    assert_eq!(read(&files.hostname), "web-1\n");

    // Explicit DNS settings replace the host's; host mode keeps loopback servers.
    assert_eq!(
        resolv_conf(
            "nameserver 127.0.0.1\n",
            &["1.1.1.1".into()],
            &["a.example".into(), "b.example".into()],
            false
        ),
        "search a.example b.example\nnameserver 1.1.1.1\n"
    );
    assert_eq!(
        resolv_conf("nameserver 127.0.0.1\n", &[], &[], true),
        "nameserver 127.0.0.1\n"
    );
    assert_eq!(
        resolv_conf("nameserver 127.0.0.1\n", &[], &[], false),
        "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    );
}
