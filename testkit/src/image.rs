//! Busybox test images, built here from Debian's static `/bin/busybox`:
//! one gzip layer with `/bin/busybox`, a symlink per applet (what
//! `busybox --install -s` would give, all in `/bin`), `/etc/passwd` and
//! `/etc/group` with root and nobody, and `/tmp`. The image is written as an
//! OCI layout directory that `skopeo` pushes (see [`crate::Registry`]).
//!
//! The layer is deterministic (fixed mtimes and owners), so its digest is
//! the same in every test of a run.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::require_binary;

/// OCI media types.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The `PATH` every test image sets.
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The manifest format a push leaves in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// OCI image manifest and media types, as built.
    Oci,
    /// Docker image manifest v2 schema 2 (skopeo converts on push).
    DockerV2S2,
}

/// What goes into the image config besides the busybox layer.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// Appended after `PATH`.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// As `80/tcp`.
    pub exposed_ports: Vec<String>,
    /// The config's `architecture` (`amd64`, `arm64`).
    pub architecture: String,
}

impl Default for ImageOptions {
    fn default() -> Self {
        Self {
            entrypoint: Vec::new(),
            cmd: vec!["sh".to_owned()],
            env: Vec::new(),
            working_dir: None,
            user: None,
            stop_signal: None,
            labels: BTreeMap::new(),
            exposed_ports: Vec::new(),
            architecture: host_arch().to_owned(),
        }
    }
}

/// This host's architecture in OCI naming.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The busybox layer: compressed bytes, their digest, and the digest of the
/// uncompressed tar (the diff id).
#[derive(Debug)]
pub struct Layer {
    pub tar_gz: Vec<u8>,
    pub digest: String,
    pub diff_id: String,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The busybox layer, built once per test process.
pub fn busybox_layer() -> &'static Layer {
    static LAYER: OnceLock<Layer> = OnceLock::new();
    LAYER.get_or_init(build_busybox_layer)
}

fn build_busybox_layer() -> Layer {
    let busybox_path = Path::new("/bin/busybox");
    if !busybox_path.is_file() {
        panic!("/bin/busybox not found: run scripts/install-deps as root (Debian package busybox-static)");
    }
    let busybox = fs::read(busybox_path).expect("read /bin/busybox");
    let listed = Command::new(busybox_path)
        .arg("--list")
        .output()
        .expect("run busybox --list");
    let applets: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(str::to_owned)
        .collect();
    assert!(
        applets.iter().any(|a| a == "sh"),
        "busybox --list printed no `sh`: is /bin/busybox Debian's busybox-static?"
    );

    let mut tar = tar::Builder::new(Vec::new());
    let dir = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        tar.append_data(&mut h, path, std::io::empty())
            .expect("append dir");
    };
    let file = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        tar.append_data(&mut h, path, data).expect("append file");
    };
    for (path, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("var", 0o755),
    ] {
        dir(&mut tar, path, mode);
    }
    file(&mut tar, "bin/busybox", 0o755, &busybox);
    for applet in &applets {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        tar.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .expect("append symlink");
    }
    file(
        &mut tar,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    );
    file(
        &mut tar,
        "etc/group",
        0o644,
        b"root:x:0:\nnogroup:x:65534:\n",
    );
    let tar_bytes = tar.into_inner().expect("finish tar");
    let diff_id = sha256_digest(&tar_bytes);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar_bytes).expect("gzip layer");
    let tar_gz = gz.finish().expect("finish gzip");
    let digest = sha256_digest(&tar_gz);
    Layer {
        tar_gz,
        digest,
        diff_id,
    }
}

/// Writes `bytes` as a blob of the OCI layout at `dir`; returns a descriptor.
fn put_blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let digest = sha256_digest(bytes);
    let hex = digest.trim_start_matches("sha256:");
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("create blobs dir");
    fs::write(blobs.join(hex), bytes).expect("write blob");
    json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() })
}

fn config_json(opts: &ImageOptions, diff_id: &str) -> Vec<u8> {
    let mut env = vec![PATH_ENV.to_owned()];
    env.extend(opts.env.iter().cloned());
    let mut config = json!({ "Env": env, "Cmd": opts.cmd });
    if !opts.entrypoint.is_empty() {
        config["Entrypoint"] = json!(opts.entrypoint);
    }
    if let Some(w) = &opts.working_dir {
        config["WorkingDir"] = json!(w);
    }
    if let Some(u) = &opts.user {
        config["User"] = json!(u);
    }
    if let Some(s) = &opts.stop_signal {
        config["StopSignal"] = json!(s);
    }
    if !opts.labels.is_empty() {
        config["Labels"] = json!(opts.labels);
    }
    if !opts.exposed_ports.is_empty() {
        let ports: serde_json::Map<String, Value> = opts
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        config["ExposedPorts"] = Value::Object(ports);
    }
    serde_json::to_vec(&json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": opts.architecture,
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": "2024-01-01T00:00:00Z", "created_by": "berth-testkit" }],
    }))
    .expect("serialize config")
}

/// Writes one image manifest (config + the busybox layer) into the layout;
/// returns its descriptor.
fn put_image(dir: &Path, opts: &ImageOptions) -> Value {
    let layer = busybox_layer();
    let layer_desc = put_blob(dir, OCI_LAYER_GZIP, &layer.tar_gz);
    let config_desc = put_blob(dir, OCI_CONFIG, &config_json(opts, &layer.diff_id));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": [layer_desc],
    });
    put_blob(
        dir,
        OCI_MANIFEST,
        &serde_json::to_vec(&manifest).expect("serialize manifest"),
    )
}

fn write_layout(dir: &Path, mut top: Value, tag: &str) {
    top["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top] });
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("write oci-layout");
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("serialize index.json"),
    )
    .expect("write index.json");
}

/// Writes a single-platform busybox image tagged `tag` as an OCI layout in
/// `dir`; returns the manifest digest.
pub fn write_busybox_layout(dir: &Path, tag: &str, opts: &ImageOptions) -> String {
    require_binary("busybox", "busybox-static");
    let desc = put_image(dir, opts);
    let digest = desc["digest"].as_str().expect("digest").to_owned();
    write_layout(dir, desc, tag);
    digest
}

/// The digests of a written multi-platform index.
#[derive(Debug, Clone)]
pub struct IndexDigests {
    pub index: String,
    pub amd64: String,
    pub arm64: String,
}

/// Writes an image index tagged `tag` with a linux/amd64 and a linux/arm64
/// manifest. Both use the busybox layer; their configs differ in
/// `architecture` and in the label `berth.test.arch`.
pub fn write_busybox_index_layout(dir: &Path, tag: &str) -> IndexDigests {
    let mut manifests = Vec::new();
    let mut digests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let opts = ImageOptions {
            architecture: arch.to_owned(),
            labels: BTreeMap::from([("berth.test.arch".to_owned(), arch.to_owned())]),
            ..ImageOptions::default()
        };
        let mut desc = put_image(dir, &opts);
        digests.push(desc["digest"].as_str().expect("digest").to_owned());
        desc["platform"] = json!({ "architecture": arch, "os": "linux" });
        manifests.push(desc);
    }
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let desc = put_blob(
        dir,
        OCI_INDEX,
        &serde_json::to_vec(&index).expect("serialize index"),
    );
    let index_digest = desc["digest"].as_str().expect("digest").to_owned();
    write_layout(dir, desc, tag);
    IndexDigests {
        index: index_digest,
        amd64: digests[0].clone(),
        arm64: digests[1].clone(),
    }
}
