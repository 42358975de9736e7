//! Image pulls against a real containerd and a real registry (both from
//! `berth-testkit`): OCI, Docker v2s2 and multi-arch images, the pull
//! behaviours, the cache, basic auth, and image GC. Needs root.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use berth_agent::runtime::containerd::Containerd;
use berth_agent::runtime::image::{
    Credentials, ImageError, ImageStore, ImageStoreConfig, PullPolicy,
};
use berth_testkit::{ImageFormat, ImageOptions, Registry};
use containerd_client::services::v1::snapshots::{RemoveSnapshotRequest, ViewSnapshotRequest};
use containerd_client::services::v1::{
    CreateRequest as CreateLeaseRequest, DeleteRequest as DeleteLeaseRequest,
};
use tokio::time::Instant;

async fn store_with(
    ctd: &berth_testkit::Containerd,
    reg: &Registry,
    f: impl FnOnce(&mut ImageStoreConfig),
) -> ImageStore {
    let conn = Containerd::connect(ctd.socket(), "berth")
        .await
        .expect("connect to the test containerd");
    let mut cfg = ImageStoreConfig {
        insecure_registries: vec![reg.addr()],
        platform: ("linux".to_owned(), "amd64".to_owned()),
        ..ImageStoreConfig::default()
    };
    f(&mut cfg);
    ImageStore::new(conn, cfg)
}

async fn store(ctd: &berth_testkit::Containerd, reg: &Registry) -> ImageStore {
    store_with(ctd, reg, |_| {}).await
}

/// Asserts the committed snapshot `chain_id` holds `bin/busybox`, looking
/// through a read-only view of it.
async fn assert_snapshot_has_busybox(ctd: &berth_testkit::Containerd, chain_id: &str) {
    let conn = Containerd::connect(ctd.socket(), "berth").await.unwrap();
    let key = format!("view-{}", &chain_id[7..19]);
    // A lease keeps containerd's GC (which a finished pull triggers) from
    // collecting the unreferenced view while it is read.
    let lease = format!("lease-{key}");
    conn.leases()
        .create(conn.with_namespace(CreateLeaseRequest {
            id: lease.clone(),
            labels: Default::default(),
        }))
        .await
        .unwrap();
    let mounts = conn
        .snapshots()
        .view(conn.with_lease(
            ViewSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: key.clone(),
                parent: chain_id.to_owned(),
                labels: Default::default(),
            },
            &lease,
        ))
        .await
        .expect("view the image snapshot")
        .into_inner()
        .mounts;
    let m = &mounts[0];
    let dir = if m.r#type == "bind" {
        m.source.clone()
    } else {
        m.options
            .iter()
            .find_map(|o| o.strip_prefix("lowerdir="))
            .and_then(|l| l.split(':').next())
            .expect("an overlay lowerdir")
            .to_owned()
    };
    assert!(
        Path::new(&dir).join("bin/busybox").is_file(),
        "no bin/busybox in {dir} ({mounts:?})"
    );
    assert!(Path::new(&dir).join("bin/sh").is_symlink());
    conn.snapshots()
        .remove(conn.with_namespace(RemoveSnapshotRequest {
            snapshotter: "overlayfs".into(),
            key,
        }))
        .await
        .unwrap();
    conn.leases()
        .delete(conn.with_namespace(DeleteLeaseRequest {
            id: lease,
            sync: false,
        }))
        .await
        .unwrap();
}

fn ctr_stdout(ctd: &berth_testkit::Containerd, args: &[&str]) -> String {
    let out = ctd.ctr(args);
    assert!(out.status.success(), "ctr {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn pulls_an_oci_image_once_then_serves_it_from_the_cache() {
    let ctd = berth_testkit::Containerd::start();
    let mut reg = Registry::start(None);
    let opts = ImageOptions {
        stop_signal: Some("SIGQUIT".into()),
        labels: BTreeMap::from([("team".into(), "berth".into())]),
        exposed_ports: vec!["8080/tcp".into()],
        ..ImageOptions::default()
    };
    let pushed = reg.push_busybox_with("berth/busybox", "latest", &opts, ImageFormat::Oci);
    let images = store(&ctd, &reg).await;
    let reference = format!("{}/berth/busybox", reg.addr());

    let started = Instant::now();
    let img = images
        .ensure(&reference, PullPolicy::Default, None)
        .await
        .expect("cold pull");
    let cold = started.elapsed();
    assert!(img.pulled);
    assert_eq!(img.name, format!("{reference}:latest"));
    assert_eq!(img.manifest_digest, pushed.digest);
    assert_eq!(img.snapshotter, "overlayfs");
    assert_eq!(img.config.cmd, ["sh"]);
    assert!(img.config.env.iter().any(|e| e.starts_with("PATH=")));
    assert_eq!(img.config.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(
        img.config.labels.get("team").map(String::as_str),
        Some("berth")
    );
    assert_eq!(img.config.exposed_ports, ["8080/tcp"]);
    let layer = berth_testkit::image::busybox_layer();
    assert_eq!(
        img.snapshot_parent, layer.diff_id,
        "one layer: chain id = diff id"
    );
    assert_snapshot_has_busybox(&ctd, &img.snapshot_parent).await;
    assert!(ctr_stdout(&ctd, &["images", "ls", "-q"]).contains(&img.name));
    assert!(ctr_stdout(&ctd, &["snapshots", "ls"]).contains(&img.snapshot_parent));

    // Default pulls again: the manifest is resolved, nothing is downloaded.
    let started = Instant::now();
    let again = images
        .ensure(&reference, PullPolicy::Default, None)
        .await
        .expect("warm ensure");
    let warm = started.elapsed();
    assert!(
        !again.pulled,
        "the second ensure downloaded or unpacked again"
    );
    assert_eq!(again.snapshot_parent, img.snapshot_parent);
    eprintln!("busybox pull: cold {cold:?}, warm (default policy) {warm:?}");

    // With the registry gone, the cache still serves every cache-using policy.
    reg.stop();
    for policy in [
        PullPolicy::PreferCached,
        PullPolicy::Once,
        PullPolicy::Default,
    ] {
        let cached = images
            .ensure(&reference, policy, None)
            .await
            .unwrap_or_else(|e| panic!("{policy} with the registry down: {e}"));
        assert!(!cached.pulled);
        assert_eq!(cached.manifest_digest, pushed.digest);
        assert_eq!(cached.config, img.config);
    }
    let err = images
        .ensure(&reference, PullPolicy::Always, None)
        .await
        .expect_err("always must fail with the registry down");
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&reg.addr()), "{msg}");
    assert!(msg.to_lowercase().contains("connection refused"), "{msg}");
}

#[tokio::test]
async fn pulls_a_docker_v2s2_image() {
    let ctd = berth_testkit::Containerd::start();
    let reg = Registry::start(None);
    let pushed = reg.push_busybox_with(
        "berth/v2",
        "1.0",
        &ImageOptions::default(),
        ImageFormat::DockerV2S2,
    );
    let images = store(&ctd, &reg).await;
    let img = images
        .ensure(&pushed.reference, PullPolicy::Always, None)
        .await
        .expect("pull a v2s2 image");
    assert!(img.pulled);
    assert_eq!(img.manifest_digest, pushed.digest);
    assert_eq!(img.config.cmd, ["sh"]);
    assert_snapshot_has_busybox(&ctd, &img.snapshot_parent).await;
    let listed = ctr_stdout(&ctd, &["images", "ls"]);
    assert!(
        listed.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{listed}"
    );
}

#[tokio::test]
async fn resolves_a_multi_arch_index_to_the_configured_platform() {
    let ctd = berth_testkit::Containerd::start();
    let reg = Registry::start(None);
    let pushed = reg.push_busybox_multiarch("berth/multi", "latest");

    let amd64 = store(&ctd, &reg).await;
    let img = amd64
        .ensure(&pushed.reference, PullPolicy::Always, None)
        .await
        .expect("pull the index for linux/amd64");
    assert_eq!(img.manifest_digest, pushed.digests.amd64);
    assert_eq!(img.config.labels["berth.test.arch"], "amd64");
    assert_snapshot_has_busybox(&ctd, &img.snapshot_parent).await;
    // The record points at the index, as containerd's own pull does.
    assert!(ctr_stdout(&ctd, &["images", "ls"]).contains(&pushed.digests.index));

    let arm64 = store_with(&ctd, &reg, |c| c.platform.1 = "arm64".into()).await;
    let img = arm64
        .ensure(&pushed.reference, PullPolicy::Always, None)
        .await
        .expect("pull the index for linux/arm64");
    assert_eq!(img.manifest_digest, pushed.digests.arm64);
    assert_eq!(img.config.labels["berth.test.arch"], "arm64");

    let s390x = store_with(&ctd, &reg, |c| c.platform.1 = "s390x".into()).await;
    let err = s390x
        .ensure(&pushed.reference, PullPolicy::Always, None)
        .await
        .expect_err("no s390x manifest");
    assert_eq!(
        err.to_string(),
        format!("no manifest for linux/s390x in {}", pushed.reference)
    );
}

#[tokio::test]
async fn a_registry_behind_basic_auth_works_with_credentials_and_fails_clearly_without() {
    let ctd = berth_testkit::Containerd::start();
    let reg = Registry::start(Some(("berth", "s3cret")));
    let pushed = reg.push_busybox("private/busybox", "latest");
    let images = store(&ctd, &reg).await;

    for policy in [PullPolicy::Default, PullPolicy::Always] {
        let err = images
            .ensure(&pushed.reference, policy, None)
            .await
            .expect_err("an anonymous pull must fail");
        assert_eq!(
            err.to_string(),
            format!(
                "unauthorized: authentication required for {}",
                pushed.reference
            )
        );
    }
    let wrong = Credentials {
        username: "berth".into(),
        password: "guess".into(),
    };
    let err = images
        .ensure(&pushed.reference, PullPolicy::Always, Some(&wrong))
        .await
        .expect_err("a wrong password must fail");
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err:?}");

    let right = Credentials {
        username: "berth".into(),
        password: "s3cret".into(),
    };
    let img = images
        .ensure(&pushed.reference, PullPolicy::Always, Some(&right))
        .await
        .expect("pull with explicit credentials");
    assert_eq!(img.manifest_digest, pushed.digest);

    // Credentials from a Docker config.json, on a fresh containerd so that
    // the pull really goes to the registry.
    let ctd2 = berth_testkit::Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let auth = base64_encode("berth:s3cret");
    std::fs::write(
        &config,
        format!(
            r#"{{"auths": {{"http://{}": {{"auth": "{auth}"}}}}}}"#,
            reg.addr()
        ),
    )
    .unwrap();
    let from_file = store_with(&ctd2, &reg, |c| c.docker_config = Some(config.clone())).await;
    let img = from_file
        .ensure(&pushed.reference, PullPolicy::Always, None)
        .await
        .expect("pull with credentials from config.json");
    assert!(img.pulled);
    assert_snapshot_has_busybox(&ctd2, &img.snapshot_parent).await;
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn a_missing_tag_is_reported_as_manifest_unknown() {
    let ctd = berth_testkit::Containerd::start();
    let reg = Registry::start(None);
    reg.push_busybox("berth/busybox", "v1");
    let images = store(&ctd, &reg).await;
    let reference = format!("{}/berth/busybox:v2", reg.addr());
    let err = images
        .ensure(&reference, PullPolicy::Default, None)
        .await
        .expect_err("v2 was never pushed");
    assert_eq!(err.to_string(), format!("manifest unknown: {reference}"));
}

#[tokio::test]
async fn concurrent_ensures_of_one_image_share_one_pull() {
    let ctd = berth_testkit::Containerd::start();
    let reg = Registry::start(None);
    let pushed = reg.push_busybox("berth/busybox", "latest");
    let images = store(&ctd, &reg).await;
    let (a, b) = tokio::join!(
        images.ensure(&pushed.reference, PullPolicy::Default, None),
        images.ensure(&pushed.reference, PullPolicy::Default, None),
    );
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_eq!(a.snapshot_parent, b.snapshot_parent);
    assert!(
        a.pulled != b.pulled,
        "exactly one of them pulls: {a:?} {b:?}"
    );
}

#[tokio::test]
async fn gc_removes_least_recently_used_unused_images_and_keeps_in_use_ones() {
    let ctd = berth_testkit::Containerd::start();
    let reg = Registry::start(None);
    let mut pushed = Vec::new();
    for name in ["a", "b", "c"] {
        let opts = ImageOptions {
            labels: BTreeMap::from([("name".into(), name.into())]),
            ..ImageOptions::default()
        };
        pushed.push(reg.push_busybox_with(
            &format!("gc/{name}"),
            "latest",
            &opts,
            ImageFormat::Oci,
        ));
    }
    let images = store(&ctd, &reg).await;
    for p in &pushed {
        images
            .ensure(&p.reference, PullPolicy::Default, None)
            .await
            .expect("pull");
    }
    let (a, b, c) = (&pushed[0], &pushed[1], &pushed[2]);
    let in_use = HashSet::from([c.reference.clone()]);

    let none = images
        .gc(&in_use, Duration::from_secs(3600), 10)
        .await
        .unwrap();
    assert!(none.is_empty(), "younger than the minimum age: {none:?}");

    let first = images.gc(&in_use, Duration::ZERO, 1).await.unwrap();
    assert_eq!(
        first,
        std::slice::from_ref(&a.reference),
        "least recently used first, one per cycle"
    );
    let rest = images.gc(&in_use, Duration::ZERO, 10).await.unwrap();
    assert_eq!(rest, std::slice::from_ref(&b.reference));

    let listed = ctr_stdout(&ctd, &["images", "ls", "-q"]);
    assert_eq!(listed.trim(), c.reference, "{listed}");
    // containerd's GC took the collected images' manifests, not the kept one's.
    let content = ctr_stdout(&ctd, &["content", "ls", "-q"]);
    assert!(!content.contains(&a.digest), "{content}");
    assert!(!content.contains(&b.digest), "{content}");
    assert!(content.contains(&c.digest), "{content}");
    // The kept image is whole: served from the cache with nothing to do.
    let kept = images
        .ensure(&c.reference, PullPolicy::PreferCached, None)
        .await
        .unwrap();
    assert!(!kept.pulled);
    assert_snapshot_has_busybox(&ctd, &kept.snapshot_parent).await;
}
