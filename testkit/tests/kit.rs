//! The kit's own checks: a private containerd answers and leaves nothing
//! behind; the registry serves pushed images and enforces basic auth.

use std::process::Command;

use berth_testkit::{Containerd, Registry};

#[test]
fn containerd_starts_answers_and_cleans_up() {
    let ctd = Containerd::start();
    let out = ctd.ctr(&["version"]);
    assert!(out.status.success(), "{out:?}");
    let dir = ctd.dir().to_path_buf();
    assert!(ctd.socket().exists());
    drop(ctd);
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

fn inspect(reference: &str, creds: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some(c) = creds {
        cmd.args(["--creds", c]);
    }
    cmd.arg(format!("docker://{reference}"));
    cmd.output().expect("run skopeo")
}

#[test]
fn registry_with_basic_auth_serves_pushed_images_to_the_right_user_only() {
    let reg = Registry::start(Some(("berth", "s3cret")));
    let pushed = reg.push_busybox("kit/busybox", "v1");
    assert_eq!(pushed.reference, format!("{}/kit/busybox:v1", reg.addr()));
    assert!(pushed.digest.starts_with("sha256:"), "{pushed:?}");

    let ok = inspect(&pushed.reference, Some("berth:s3cret"));
    assert!(ok.status.success(), "{ok:?}");
    let manifest: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    let denied = inspect(&pushed.reference, None);
    assert!(!denied.status.success(), "anonymous inspect succeeded");
}

#[test]
fn registry_converts_to_docker_v2s2_and_keeps_indexes() {
    let reg = Registry::start(None);
    let v2 = reg.push_busybox_with(
        "kit/v2",
        "latest",
        &Default::default(),
        berth_testkit::ImageFormat::DockerV2S2,
    );
    let raw = inspect(&v2.reference, None);
    assert!(raw.status.success(), "{raw:?}");
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );

    let multi = reg.push_busybox_multiarch("kit/multi", "latest");
    let raw = inspect(&multi.reference, None);
    assert!(raw.status.success(), "{raw:?}");
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
}
