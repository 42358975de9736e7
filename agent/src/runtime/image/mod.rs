//! Images: the agent's own pull (containerd 1.6 has no server-side pull),
//! ECS's pull behaviours, and ECS-style image cleanup.
//!
//! A pull speaks the registry protocol through `oci-client`: the tag is
//! resolved to a digest (HEAD), an index or manifest list is narrowed to the
//! configured platform, and every blob (index, manifest, config, layers)
//! that containerd's content store lacks is streamed into it through the
//! content service's `Write` (containerd checks size and digest on commit).
//! Layers are unpacked with the snapshot and diff services (prepare on the
//! parent chain id, apply, commit under the layer's chain id), then the
//! image record is created or updated. All of it runs under a lease, as
//! `ctr pull` does, so containerd's GC cannot take a half-pulled image; the
//! GC labels containerd's own unpacker sets keep the finished image whole.
//!
//! Invariants:
//! - A blob already in the content store is never downloaded again, and a
//!   layer whose chain id is already a committed snapshot is never unpacked
//!   again, whatever the policy.
//! - Each image record carries `berth.last-used` (RFC 3339), refreshed by
//!   every [`ImageStore::ensure`]; [`ImageStore::gc`] removes the least
//!   recently used unused images first.
//! - Errors name their cause and the image ([`ImageError`]'s `Display` is
//!   what a task's `CannotPullContainerError:` reason carries); credentials
//!   are never logged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, Kind, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    AbortRequest, ApplyRequest, CreateImageRequest, CreateRequest as CreateLeaseRequest,
    DeleteImageRequest, DeleteRequest as DeleteLeaseRequest, GetImageRequest, Image, InfoRequest,
    ListImagesRequest, ReadContentRequest, UpdateImageRequest, UpdateRequest, WriteAction,
    WriteContentRequest,
};
use containerd_client::types::{Descriptor as CtdDescriptor, Mount};
use futures::{Stream, StreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_stream::wrappers::ReceiverStream;

use super::containerd::{Containerd, ContainerdError};

/// ECS's image-cleanup defaults (`ECS_IMAGE_CLEANUP_INTERVAL`,
/// `ECS_IMAGE_MINIMUM_CLEANUP_AGE`, `ECS_NUM_IMAGES_DELETE_PER_CYCLE`), for
/// the loop that calls [`ImageStore::gc`].
pub const DEFAULT_IMAGE_CLEANUP_INTERVAL: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_IMAGE_MINIMUM_CLEANUP_AGE: Duration = Duration::from_secs(60 * 60);
pub const DEFAULT_IMAGES_DELETED_PER_CYCLE: usize = 5;

/// The image label holding the last time an `ensure` used the image.
pub const LAST_USED_LABEL: &str = "berth.last-used";

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
const DOCKER_SCHEMA1_PLAIN: &str = "application/vnd.docker.distribution.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Layer media types the diff service can apply.
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

/// The manifest types a pull accepts (`Accept` header).
const MANIFEST_TYPES: &[&str] = &[
    OCI_INDEX,
    DOCKER_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
];

/// Bytes per content `Write` message (containerd accepts 16 MiB).
const WRITE_CHUNK: usize = 1024 * 1024;

/// How long an abandoned pull lease holds its content (it is deleted when
/// the pull ends; this bounds a crash mid-pull).
const LEASE_EXPIRY: Duration = Duration::from_secs(3600);

/// When to pull, with the meanings of amazon-ecs-agent's
/// `ECS_IMAGE_PULL_BEHAVIOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// Pull; if the pull fails, use the cached image if there is one.
    #[default]
    Default,
    /// Pull; if the pull fails, fail.
    Always,
    /// Pull only if this agent has not pulled the image before (its record
    /// is in Berth's containerd namespace); otherwise use it.
    Once,
    /// Use the cached image if there is one; otherwise pull. (ECS also turns
    /// image cleanup off with this behaviour; the agent's GC loop decides.)
    PreferCached,
}

/// A pull policy name that is none of `default|always|once|prefer-cached`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown image pull behavior {0:?}: expected default, always, once or prefer-cached")]
pub struct ParsePullPolicyError(pub String);

impl FromStr for PullPolicy {
    type Err = ParsePullPolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(PullPolicy::Default),
            "always" => Ok(PullPolicy::Always),
            "once" => Ok(PullPolicy::Once),
            "prefer-cached" => Ok(PullPolicy::PreferCached),
            other => Err(ParsePullPolicyError(other.to_owned())),
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PullPolicy::Default => "default",
            PullPolicy::Always => "always",
            PullPolicy::Once => "once",
            PullPolicy::PreferCached => "prefer-cached",
        })
    }
}

/// Registry credentials. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What a container takes from its image's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// As in the config: `80/tcp`, sorted.
    pub exposed_ports: Vec<String>,
}

/// An image ready to back a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The normalized reference and image record name, e.g.
    /// `127.0.0.1:5000/berth/busybox:latest`, `docker.io/library/x:latest`.
    pub name: String,
    /// The digest of the platform's image manifest.
    pub manifest_digest: String,
    pub config: ImageConfig,
    /// The chain id of the top layer: the parent of a container's rootfs
    /// snapshot.
    pub snapshot_parent: String,
    pub snapshotter: String,
    /// False when no blob was downloaded and no layer unpacked (served from
    /// what containerd already had).
    pub pulled: bool,
}

/// How the image store pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageStoreConfig {
    /// containerd snapshotter for unpacked layers.
    pub snapshotter: String,
    /// A Docker `config.json` whose `auths` give registry credentials.
    pub docker_config: Option<PathBuf>,
    /// Registries (`host:port`) spoken to over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// (os, architecture) in OCI naming, e.g. ("linux", "amd64").
    pub platform: (String, String),
}

impl Default for ImageStoreConfig {
    fn default() -> Self {
        Self {
            snapshotter: "overlayfs".to_owned(),
            docker_config: None,
            insecure_registries: Vec::new(),
            platform: ("linux".to_owned(), host_arch().to_owned()),
        }
    }
}

/// This host's architecture in OCI naming (`amd64`, `arm64`, …).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// Why an image could not be made ready (or collected).
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("unauthorized: authentication required for {reference}")]
    Unauthorized { reference: String },
    #[error("manifest unknown: {reference}")]
    ManifestUnknown { reference: String },
    #[error("repository unknown: {reference}")]
    RepositoryUnknown { reference: String },
    #[error("cannot reach registry {registry} for {reference}: {cause}")]
    Unreachable {
        registry: String,
        reference: String,
        cause: String,
    },
    #[error("registry error for {reference}: {cause}")]
    Registry { reference: String, cause: String },
    #[error("no manifest for {platform} in {reference}")]
    NoMatchingPlatform { reference: String, platform: String },
    #[error("unsupported media type {media_type} in {reference}")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
    },
    #[error("invalid image {reference}: {reason}")]
    InvalidImage { reference: String, reason: String },
    #[error("content of {digest} in {reference} does not match its digest")]
    DigestMismatch { reference: String, digest: String },
    #[error("cannot use docker config {}: {reason}", path.display())]
    DockerConfig { path: PathBuf, reason: String },
    #[error("{reference}: {source}")]
    Containerd {
        reference: String,
        #[source]
        source: ContainerdError,
    },
}

impl ImageError {
    fn ctd(reference: &str, op: &'static str, status: tonic::Status) -> Self {
        ImageError::Containerd {
            reference: reference.to_owned(),
            source: ContainerdError::call(op, status),
        }
    }
}

/// Normalizes an image reference the way Docker does: `busybox` becomes
/// `docker.io/library/busybox:latest`.
pub fn normalize_reference(reference: &str) -> Result<Reference, ImageError> {
    let parsed: Reference =
        reference
            .parse()
            .map_err(|e: oci_client::ParseError| ImageError::InvalidReference {
                reference: reference.to_owned(),
                reason: e.to_string(),
            })?;
    if parsed.tag().is_none() && parsed.digest().is_none() {
        return Ok(Reference::with_tag(
            parsed.registry().to_owned(),
            parsed.repository().to_owned(),
            "latest".to_owned(),
        ));
    }
    Ok(parsed)
}

/// Layer chain ids from diff ids: `chain(0) = diff(0)`,
/// `chain(n) = sha256(chain(n-1) + " " + diff(n))`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => sha256_digest(format!("{parent} {diff}").as_bytes()),
        };
        out.push(next);
    }
    out
}

fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A registry host as written in Docker's config: scheme and path dropped,
/// Docker Hub's aliases folded into `docker.io`.
fn registry_key(raw: &str) -> String {
    let s = raw
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    }
}

#[derive(Deserialize)]
struct DockerConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuthEntry>,
}

#[derive(Deserialize)]
struct DockerAuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The credentials Docker's `config.json` (text `json`) holds for
/// `registry`: `auths.<host>.auth` (base64 `user:password`) or its
/// `username`/`password` fields. `credsStore` and `credHelpers` are not
/// consulted.
pub fn docker_config_credentials(
    json: &str,
    registry: &str,
) -> Result<Option<Credentials>, String> {
    let file: DockerConfigFile =
        serde_json::from_str(json).map_err(|e| format!("not a Docker config.json: {e}"))?;
    let wanted = registry_key(registry);
    let Some((key, entry)) = file.auths.iter().find(|(k, _)| registry_key(k) == wanted) else {
        return Ok(None);
    };
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| format!("auths.{key}.auth is not base64: {e}"))?;
        let text = String::from_utf8(decoded)
            .map_err(|_| format!("auths.{key}.auth is not UTF-8 user:password"))?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| format!("auths.{key}.auth is not user:password"))?;
        return Ok(Some(Credentials {
            username: user.to_owned(),
            password: pass.to_owned(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => Ok(Some(Credentials {
            username: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------------------
// Documents

#[derive(Debug, Clone, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Debug, Deserialize)]
struct ManifestDoc {
    #[serde(rename = "schemaVersion", default)]
    schema_version: i64,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

impl ManifestDoc {
    /// The media type, from the document or inferred from its shape.
    fn kind(&self) -> &str {
        match self.media_type.as_deref() {
            Some(t) if !t.is_empty() => t,
            _ if self.schema_version == 1 => DOCKER_SCHEMA1,
            _ if self.manifests.is_some() => OCI_INDEX,
            _ => OCI_MANIFEST,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ConfigDoc {
    #[serde(default)]
    config: Option<ContainerConfigDoc>,
    #[serde(default)]
    rootfs: Option<RootFs>,
}

#[derive(Debug, Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ContainerConfigDoc {
    #[serde(rename = "Entrypoint", default)]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    working_dir: Option<String>,
    #[serde(rename = "User", default)]
    user: Option<String>,
    #[serde(rename = "StopSignal", default)]
    stop_signal: Option<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "ExposedPorts", default)]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}

fn image_config(doc: Option<ContainerConfigDoc>) -> ImageConfig {
    let c = doc.unwrap_or_default();
    ImageConfig {
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        working_dir: c.working_dir.filter(|s| !s.is_empty()),
        user: c.user.filter(|s| !s.is_empty()),
        stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
        labels: c.labels.unwrap_or_default(),
        exposed_ports: c
            .exposed_ports
            .map(|m| m.into_keys().collect())
            .unwrap_or_default(),
    }
}

/// A resolved platform image: what its record points at and what it holds.
struct Resolved {
    target: Descriptor,
    manifest: Descriptor,
    layers: Vec<Descriptor>,
    config: ImageConfig,
    diff_ids: Vec<String>,
}

fn parse<T: for<'de> Deserialize<'de>>(
    reference: &str,
    what: &str,
    bytes: &[u8],
) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::InvalidImage {
        reference: reference.to_owned(),
        reason: format!("{what} is not valid JSON: {e}"),
    })
}

fn check_digest(reference: &str, digest: &str, bytes: &[u8]) -> Result<(), ImageError> {
    if digest.starts_with("sha256:") && sha256_digest(bytes) != digest {
        return Err(ImageError::DigestMismatch {
            reference: reference.to_owned(),
            digest: digest.to_owned(),
        });
    }
    Ok(())
}

fn to_ctd(desc: &Descriptor) -> CtdDescriptor {
    CtdDescriptor {
        media_type: desc.media_type.clone(),
        digest: desc.digest.clone(),
        size: desc.size,
        annotations: HashMap::new(),
    }
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

// ---------------------------------------------------------------------------
// Registry errors

fn innermost_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn registry_error(reference: &Reference, e: OciDistributionError) -> ImageError {
    let name = reference.whole();
    match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => {
            ImageError::Unauthorized { reference: name }
        }
        OciDistributionError::ImageManifestNotFoundError(_) => {
            ImageError::ManifestUnknown { reference: name }
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                ImageError::Unauthorized { reference: name }
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::ManifestUnknown))
            {
                ImageError::ManifestUnknown { reference: name }
            } else if codes.iter().any(|c| matches!(c, OciErrorCode::NameUnknown)) {
                ImageError::RepositoryUnknown { reference: name }
            } else {
                let cause = envelope
                    .errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                ImageError::Registry {
                    reference: name,
                    cause,
                }
            }
        }
        OciDistributionError::ServerError { code: 401, .. } => {
            ImageError::Unauthorized { reference: name }
        }
        OciDistributionError::ServerError { code: 404, .. } => {
            ImageError::ManifestUnknown { reference: name }
        }
        OciDistributionError::RequestError(ref re) => ImageError::Unreachable {
            registry: reference.registry().to_owned(),
            reference: name,
            cause: innermost_cause(re),
        },
        OciDistributionError::DigestError(_) => ImageError::DigestMismatch {
            reference: name,
            digest: reference.digest().unwrap_or_default().to_owned(),
        },
        other => ImageError::Registry {
            reference: name,
            cause: other.to_string(),
        },
    }
}

// ---------------------------------------------------------------------------
// The store

/// Pulls, caches and collects images in one containerd namespace.
pub struct ImageStore {
    ctd: Containerd,
    cfg: ImageStoreConfig,
    /// One lock per image name: concurrent `ensure`s of one image wait for
    /// each other instead of racing on the same content refs.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageStore")
            .field("ctd", &self.ctd)
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl ImageStore {
    pub fn new(ctd: Containerd, cfg: ImageStoreConfig) -> Self {
        Self {
            ctd,
            cfg,
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &ImageStoreConfig {
        &self.cfg
    }

    fn lock_for(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(name.to_owned()).or_default().clone()
    }

    /// Makes `reference` ready to run under `policy`: pulled as needed,
    /// unpacked, and its record's last-used time refreshed. `creds` go
    /// first; without them the Docker config's entry for the registry is
    /// used, else the pull is anonymous.
    #[tracing::instrument(skip(self, creds), fields(image = %reference, %policy))]
    pub async fn ensure(
        &self,
        reference: &str,
        policy: PullPolicy,
        creds: Option<&Credentials>,
    ) -> Result<PulledImage, ImageError> {
        let parsed = normalize_reference(reference)?;
        let name = parsed.whole();
        let lock = self.lock_for(&name);
        let _guard = lock.lock().await;

        // `put_record` stamps a pulled image; a cached one is stamped here.
        let (image, from_cache) = match policy {
            PullPolicy::Once | PullPolicy::PreferCached => match self.cached(&name).await? {
                Some(img) => (img, true),
                None => (self.pull(&parsed, creds).await?, false),
            },
            PullPolicy::Always => (self.pull(&parsed, creds).await?, false),
            PullPolicy::Default => match self.pull(&parsed, creds).await {
                Ok(img) => (img, false),
                Err(pull_err) => match self.cached(&name).await {
                    Ok(Some(img)) => {
                        tracing::warn!(cause = %pull_err, "pull failed; using the cached image");
                        (img, true)
                    }
                    Ok(None) => return Err(pull_err),
                    Err(cache_err) => {
                        tracing::warn!(cause = %cache_err, "cannot read the cached image");
                        return Err(pull_err);
                    }
                },
            },
        };
        if from_cache {
            self.touch(&name).await?;
        }
        tracing::info!(
            manifest = %image.manifest_digest,
            pulled = image.pulled,
            "image ready"
        );
        Ok(image)
    }

    /// Deletes the records of images not in `in_use` (names, normalized as
    /// [`normalize_reference`] does) whose last use is at least `min_age`
    /// ago, least recently used first, at most `max_per_cycle`. containerd's
    /// GC then removes the content and snapshots nothing else references.
    /// Returns the names deleted.
    #[tracing::instrument(skip(self, in_use))]
    pub async fn gc(
        &self,
        in_use: &HashSet<String>,
        min_age: Duration,
        max_per_cycle: usize,
    ) -> Result<Vec<String>, ImageError> {
        let in_use: HashSet<String> = in_use
            .iter()
            .map(|r| {
                normalize_reference(r)
                    .map(|p| p.whole())
                    .unwrap_or(r.clone())
            })
            .collect();
        let images = self
            .ctd
            .images()
            .list(
                self.ctd
                    .with_namespace(ListImagesRequest { filters: vec![] }),
            )
            .await
            .map_err(|s| ImageError::ctd("image list", "images.List", s))?
            .into_inner()
            .images;
        let now = OffsetDateTime::now_utc();
        let mut candidates: Vec<(OffsetDateTime, String)> = images
            .into_iter()
            .filter(|img| !in_use.contains(&img.name))
            .filter_map(|img| {
                let last = last_used(&img)?;
                let age = now - last;
                (age >= min_age).then_some((last, img.name))
            })
            .collect();
        candidates.sort();
        candidates.truncate(max_per_cycle);
        let mut removed = Vec::with_capacity(candidates.len());
        let count = candidates.len();
        for (i, (last, name)) in candidates.into_iter().enumerate() {
            let lock = self.lock_for(&name);
            let _guard = lock.lock().await;
            // The last delete runs containerd's GC synchronously.
            let sync = i + 1 == count;
            match self
                .ctd
                .images()
                .delete(self.ctd.with_namespace(DeleteImageRequest {
                    name: name.clone(),
                    sync,
                    target: None,
                }))
                .await
            {
                Ok(_) => {
                    tracing::info!(image = %name, last_used = %last, "removed unused image");
                    removed.push(name);
                }
                Err(s) if s.code() == tonic::Code::NotFound => {}
                Err(s) => return Err(ImageError::ctd(&name, "images.Delete", s)),
            }
        }
        Ok(removed)
    }

    // -- cache ---------------------------------------------------------------

    /// The image named `name` if its record, manifest and config are here;
    /// layers not yet unpacked are unpacked (from content already here).
    async fn cached(&self, name: &str) -> Result<Option<PulledImage>, ImageError> {
        let record = match self
            .ctd
            .images()
            .get(self.ctd.with_namespace(GetImageRequest {
                name: name.to_owned(),
            }))
            .await
        {
            Ok(r) => r.into_inner().image,
            Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
            Err(s) => return Err(ImageError::ctd(name, "images.Get", s)),
        };
        let Some(target) = record.and_then(|i| i.target) else {
            return Ok(None);
        };
        let target = Descriptor {
            media_type: target.media_type,
            digest: target.digest,
            size: target.size,
            platform: None,
        };
        let Some(resolved) = self.resolve_local(name, target).await? else {
            tracing::info!(image = %name, "the image record is here but its content is not");
            return Ok(None);
        };
        let chain = chain_ids(&resolved.diff_ids);
        let top = chain.last().cloned().unwrap_or_default();
        let unpacked = match self.snapshot_exists(name, &top).await? {
            true => false,
            false => match self.unpack(name, None, &resolved, &chain).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::info!(image = %name, cause = %e, "cannot unpack the cached image");
                    return Ok(None);
                }
            },
        };
        Ok(Some(PulledImage {
            name: name.to_owned(),
            manifest_digest: resolved.manifest.digest,
            config: resolved.config,
            snapshot_parent: top,
            snapshotter: self.cfg.snapshotter.clone(),
            pulled: unpacked,
        }))
    }

    /// Resolves a record's target from local content only.
    async fn resolve_local(
        &self,
        name: &str,
        target: Descriptor,
    ) -> Result<Option<Resolved>, ImageError> {
        let Some(top_bytes) = self.read_content(name, &target.digest).await? else {
            return Ok(None);
        };
        let top: ManifestDoc = parse(name, "manifest", &top_bytes)?;
        let (manifest_desc, manifest) = if is_index(top.kind()) {
            let child = self.select_platform(name, &top)?;
            let Some(bytes) = self.read_content(name, &child.digest).await? else {
                return Ok(None);
            };
            (child, parse::<ManifestDoc>(name, "manifest", &bytes)?)
        } else {
            (target.clone(), top)
        };
        let (config_desc, layers) = self.manifest_parts(name, &manifest)?;
        let Some(config_bytes) = self.read_content(name, &config_desc.digest).await? else {
            return Ok(None);
        };
        let (config, diff_ids) = self.parse_config(name, &config_bytes, layers.len())?;
        Ok(Some(Resolved {
            target,
            manifest: manifest_desc,
            layers,
            config,
            diff_ids,
        }))
    }

    /// Refreshes the record's last-used label.
    async fn touch(&self, name: &str) -> Result<(), ImageError> {
        let image = Image {
            name: name.to_owned(),
            labels: HashMap::from([(LAST_USED_LABEL.to_owned(), now_rfc3339())]),
            target: None,
            created_at: None,
            updated_at: None,
        };
        self.ctd
            .images()
            .update(self.ctd.with_namespace(UpdateImageRequest {
                image: Some(image),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec![format!("labels.{LAST_USED_LABEL}")],
                }),
                source_date_epoch: None,
            }))
            .await
            .map_err(|s| ImageError::ctd(name, "images.Update", s))?;
        Ok(())
    }

    // -- pull ----------------------------------------------------------------

    fn oci_client(&self) -> oci_client::Client {
        let config = ClientConfig {
            protocol: if self.cfg.insecure_registries.is_empty() {
                ClientProtocol::Https
            } else {
                ClientProtocol::HttpsExcept(self.cfg.insecure_registries.clone())
            },
            // Platform choice is ours (see `select_platform`).
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("berth-agent/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        oci_client::Client::new(config)
    }

    fn registry_auth(
        &self,
        reference: &Reference,
        creds: Option<&Credentials>,
    ) -> Result<RegistryAuth, ImageError> {
        if let Some(c) = creds {
            return Ok(RegistryAuth::Basic(c.username.clone(), c.password.clone()));
        }
        let Some(path) = &self.cfg.docker_config else {
            return Ok(RegistryAuth::Anonymous);
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(path = %path.display(), "no docker config; pulling anonymously");
                return Ok(RegistryAuth::Anonymous);
            }
            Err(e) => return Err(docker_config_error(path, e.to_string())),
        };
        match docker_config_credentials(&text, reference.registry())
            .map_err(|reason| docker_config_error(path, reason))?
        {
            Some(c) => Ok(RegistryAuth::Basic(c.username, c.password)),
            None => Ok(RegistryAuth::Anonymous),
        }
    }

    async fn pull(
        &self,
        reference: &Reference,
        creds: Option<&Credentials>,
    ) -> Result<PulledImage, ImageError> {
        let name = reference.whole();
        let auth = self.registry_auth(reference, creds)?;
        let client = self.oci_client();
        let lease = self.create_lease(&name).await?;
        let result = self.pull_leased(&client, &auth, reference, &lease).await;
        if let Err(s) = self
            .ctd
            .leases()
            .delete(self.ctd.with_namespace(DeleteLeaseRequest {
                id: lease.clone(),
                sync: false,
            }))
            .await
        {
            tracing::warn!(lease = %lease, cause = %s.message(), "cannot delete the pull lease");
        }
        result
    }

    async fn create_lease(&self, name: &str) -> Result<String, ImageError> {
        let id = format!("berth-pull-{}", uuid::Uuid::new_v4());
        let expire = OffsetDateTime::now_utc() + LEASE_EXPIRY;
        let labels = HashMap::from([(
            "containerd.io/gc.expire".to_owned(),
            expire.format(&Rfc3339).unwrap_or_default(),
        )]);
        self.ctd
            .leases()
            .create(self.ctd.with_namespace(CreateLeaseRequest {
                id: id.clone(),
                labels,
            }))
            .await
            .map_err(|s| ImageError::ctd(name, "leases.Create", s))?;
        Ok(id)
    }

    async fn pull_leased(
        &self,
        client: &oci_client::Client,
        auth: &RegistryAuth,
        reference: &Reference,
        lease: &str,
    ) -> Result<PulledImage, ImageError> {
        let name = reference.whole();
        let mut fetched = false;

        // The tag's current digest (HEAD), so a manifest already here is not
        // downloaded again.
        let top_digest = match reference.digest() {
            Some(d) => d.to_owned(),
            None => client
                .fetch_manifest_digest(reference, auth)
                .await
                .map_err(|e| registry_error(reference, e))?,
        };
        let (top_bytes, got) = self
            .manifest_bytes(client, auth, reference, &top_digest)
            .await?;
        fetched |= got;
        let top: ManifestDoc = parse(&name, "manifest", &top_bytes)?;
        let top_desc = Descriptor {
            media_type: top.kind().to_owned(),
            digest: top_digest.clone(),
            size: top_bytes.len() as i64,
            platform: None,
        };

        let (manifest_desc, manifest, manifest_bytes) = if is_index(top.kind()) {
            let child = self.select_platform(&name, &top)?;
            let (bytes, got) = self
                .manifest_bytes(client, auth, reference, &child.digest)
                .await?;
            fetched |= got;
            let doc: ManifestDoc = parse(&name, "manifest", &bytes)?;
            let child = Descriptor {
                media_type: doc.kind().to_owned(),
                ..child
            };
            let idx = top
                .manifests
                .as_ref()
                .and_then(|ms| ms.iter().position(|m| m.digest == child.digest))
                .unwrap_or(0);
            let labels = HashMap::from([(
                format!("containerd.io/gc.ref.content.m.{idx}"),
                child.digest.clone(),
            )]);
            self.store_bytes(&name, lease, &top_desc, &top_bytes, labels)
                .await?;
            (child, doc, bytes)
        } else {
            (top_desc.clone(), top, top_bytes)
        };

        let (config_desc, layers) = self.manifest_parts(&name, &manifest)?;
        let mut manifest_labels = HashMap::from([(
            "containerd.io/gc.ref.content.config".to_owned(),
            config_desc.digest.clone(),
        )]);
        for (i, l) in layers.iter().enumerate() {
            manifest_labels.insert(
                format!("containerd.io/gc.ref.content.l.{i}"),
                l.digest.clone(),
            );
        }
        self.store_bytes(
            &name,
            lease,
            &manifest_desc,
            &manifest_bytes,
            manifest_labels,
        )
        .await?;

        let (config_bytes, got) = match self.read_content(&name, &config_desc.digest).await? {
            Some(b) => (b, false),
            None => {
                let mut buf = Vec::new();
                client
                    .pull_blob(reference, config_desc.digest.as_str(), &mut buf)
                    .await
                    .map_err(|e| registry_error(reference, e))?;
                (buf, true)
            }
        };
        fetched |= got;
        check_digest(&name, &config_desc.digest, &config_bytes)?;
        let (config, diff_ids) = self.parse_config(&name, &config_bytes, layers.len())?;
        let chain = chain_ids(&diff_ids);
        let top_chain = chain.last().cloned().unwrap_or_default();
        let config_labels = HashMap::from([(
            format!("containerd.io/gc.ref.snapshot.{}", self.cfg.snapshotter),
            top_chain.clone(),
        )]);
        self.store_bytes(&name, lease, &config_desc, &config_bytes, config_labels)
            .await?;

        for (layer, diff_id) in layers.iter().zip(&diff_ids) {
            let labels =
                HashMap::from([("containerd.io/uncompressed".to_owned(), diff_id.clone())]);
            if self.content_exists(&name, &layer.digest).await? {
                continue;
            }
            let blob = client
                .pull_blob_stream(reference, layer.digest.as_str())
                .await
                .map_err(|e| registry_error(reference, e))?;
            let source = blob.stream.map(|chunk| {
                chunk.map_err(|e| ImageError::Registry {
                    reference: name.clone(),
                    cause: format!("downloading {}: {e}", layer.digest),
                })
            });
            self.write_content(&name, lease, layer, labels, source)
                .await?;
            fetched = true;
        }

        let resolved = Resolved {
            target: top_desc,
            manifest: manifest_desc,
            layers,
            config,
            diff_ids,
        };
        let unpacked = if self.snapshot_exists(&name, &top_chain).await? {
            false
        } else {
            self.unpack(&name, Some(lease), &resolved, &chain).await?;
            true
        };
        self.put_record(&name, &resolved.target).await?;
        Ok(PulledImage {
            name,
            manifest_digest: resolved.manifest.digest,
            config: resolved.config,
            snapshot_parent: top_chain,
            snapshotter: self.cfg.snapshotter.clone(),
            pulled: fetched || unpacked,
        })
    }

    /// A manifest's bytes: from the content store if there, else from the
    /// registry (digest-checked). The bool says whether it was downloaded.
    async fn manifest_bytes(
        &self,
        client: &oci_client::Client,
        auth: &RegistryAuth,
        reference: &Reference,
        digest: &str,
    ) -> Result<(Vec<u8>, bool), ImageError> {
        let name = reference.whole();
        if let Some(bytes) = self.read_content(&name, digest).await? {
            return Ok((bytes, false));
        }
        let by_digest = reference.clone_with_digest(digest.to_owned());
        let (bytes, _) = client
            .pull_manifest_raw(&by_digest, auth, MANIFEST_TYPES)
            .await
            .map_err(|e| registry_error(reference, e))?;
        check_digest(&name, digest, &bytes)?;
        Ok((bytes.to_vec(), true))
    }

    fn select_platform(&self, name: &str, index: &ManifestDoc) -> Result<Descriptor, ImageError> {
        let (os, arch) = &self.cfg.platform;
        index
            .manifests
            .iter()
            .flatten()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| &p.os == os && &p.architecture == arch)
            })
            .cloned()
            .ok_or_else(|| ImageError::NoMatchingPlatform {
                reference: name.to_owned(),
                platform: format!("{os}/{arch}"),
            })
    }

    fn manifest_parts(
        &self,
        name: &str,
        manifest: &ManifestDoc,
    ) -> Result<(Descriptor, Vec<Descriptor>), ImageError> {
        let kind = manifest.kind();
        if kind != OCI_MANIFEST && kind != DOCKER_MANIFEST {
            return Err(ImageError::UnsupportedMediaType {
                reference: name.to_owned(),
                media_type: if kind == DOCKER_SCHEMA1_PLAIN {
                    DOCKER_SCHEMA1.to_owned()
                } else {
                    kind.to_owned()
                },
            });
        }
        let config = manifest
            .config
            .clone()
            .ok_or_else(|| ImageError::InvalidImage {
                reference: name.to_owned(),
                reason: "the manifest has no config".to_owned(),
            })?;
        if !config.media_type.is_empty()
            && config.media_type != OCI_CONFIG
            && config.media_type != DOCKER_CONFIG
        {
            return Err(ImageError::UnsupportedMediaType {
                reference: name.to_owned(),
                media_type: config.media_type,
            });
        }
        let layers = manifest.layers.clone().unwrap_or_default();
        if let Some(bad) = layers
            .iter()
            .find(|l| !LAYER_TYPES.contains(&l.media_type.as_str()))
        {
            return Err(ImageError::UnsupportedMediaType {
                reference: name.to_owned(),
                media_type: bad.media_type.clone(),
            });
        }
        Ok((config, layers))
    }

    fn parse_config(
        &self,
        name: &str,
        bytes: &[u8],
        layer_count: usize,
    ) -> Result<(ImageConfig, Vec<String>), ImageError> {
        let doc: ConfigDoc = parse(name, "image config", bytes)?;
        let diff_ids = doc.rootfs.map(|r| r.diff_ids).unwrap_or_default();
        if diff_ids.len() != layer_count {
            return Err(ImageError::InvalidImage {
                reference: name.to_owned(),
                reason: format!(
                    "the config lists {} diff ids for {layer_count} layers",
                    diff_ids.len()
                ),
            });
        }
        if diff_ids.is_empty() {
            return Err(ImageError::InvalidImage {
                reference: name.to_owned(),
                reason: "the image has no layers".to_owned(),
            });
        }
        Ok((image_config(doc.config), diff_ids))
    }

    async fn put_record(&self, name: &str, target: &Descriptor) -> Result<(), ImageError> {
        let image = Image {
            name: name.to_owned(),
            labels: HashMap::from([(LAST_USED_LABEL.to_owned(), now_rfc3339())]),
            target: Some(to_ctd(target)),
            created_at: None,
            updated_at: None,
        };
        match self
            .ctd
            .images()
            .create(self.ctd.with_namespace(CreateImageRequest {
                image: Some(image.clone()),
                source_date_epoch: None,
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                self.ctd
                    .images()
                    .update(self.ctd.with_namespace(UpdateImageRequest {
                        image: Some(image),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["target".to_owned(), format!("labels.{LAST_USED_LABEL}")],
                        }),
                        source_date_epoch: None,
                    }))
                    .await
                    .map_err(|s| ImageError::ctd(name, "images.Update", s))?;
                Ok(())
            }
            Err(s) => Err(ImageError::ctd(name, "images.Create", s)),
        }
    }

    // -- unpack --------------------------------------------------------------

    async fn snapshot_exists(&self, name: &str, chain_id: &str) -> Result<bool, ImageError> {
        match self
            .ctd
            .snapshots()
            .stat(self.ctd.with_namespace(StatSnapshotRequest {
                snapshotter: self.cfg.snapshotter.clone(),
                key: chain_id.to_owned(),
            }))
            .await
        {
            Ok(r) => Ok(r
                .into_inner()
                .info
                .is_some_and(|i| i.kind == Kind::Committed as i32)),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(ImageError::ctd(name, "snapshots.Stat", s)),
        }
    }

    /// Unpacks the layers whose chain ids are not committed snapshots yet.
    async fn unpack(
        &self,
        name: &str,
        lease: Option<&str>,
        image: &Resolved,
        chain: &[String],
    ) -> Result<(), ImageError> {
        // The highest layer already unpacked; everything below it is too.
        let mut start = 0;
        for i in (0..chain.len()).rev() {
            if self.snapshot_exists(name, &chain[i]).await? {
                start = i + 1;
                break;
            }
        }
        for i in start..chain.len() {
            let parent = if i == 0 {
                String::new()
            } else {
                chain[i - 1].clone()
            };
            self.unpack_layer(
                name,
                lease,
                &image.layers[i],
                &image.diff_ids[i],
                &parent,
                &chain[i],
            )
            .await?;
        }
        Ok(())
    }

    fn request<T>(&self, msg: T, lease: Option<&str>) -> tonic::Request<T> {
        match lease {
            Some(l) => self.ctd.with_lease(msg, l),
            None => self.ctd.with_namespace(msg),
        }
    }

    async fn unpack_layer(
        &self,
        name: &str,
        lease: Option<&str>,
        layer: &Descriptor,
        diff_id: &str,
        parent: &str,
        chain_id: &str,
    ) -> Result<(), ImageError> {
        let key = format!("berth-unpack-{}-{chain_id}", uuid::Uuid::new_v4().simple());
        let mounts: Vec<Mount> = self
            .ctd
            .snapshots()
            .prepare(self.request(
                PrepareSnapshotRequest {
                    snapshotter: self.cfg.snapshotter.clone(),
                    key: key.clone(),
                    parent: parent.to_owned(),
                    labels: HashMap::from([(
                        "containerd.io/snapshot.ref".to_owned(),
                        chain_id.to_owned(),
                    )]),
                },
                lease,
            ))
            .await
            .map_err(|s| ImageError::ctd(name, "snapshots.Prepare", s))?
            .into_inner()
            .mounts;
        let result = self
            .apply_and_commit(name, lease, layer, diff_id, &key, mounts, chain_id)
            .await;
        if result.is_err() {
            let _ = self
                .ctd
                .snapshots()
                .remove(self.ctd.with_namespace(RemoveSnapshotRequest {
                    snapshotter: self.cfg.snapshotter.clone(),
                    key,
                }))
                .await;
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_and_commit(
        &self,
        name: &str,
        lease: Option<&str>,
        layer: &Descriptor,
        diff_id: &str,
        key: &str,
        mounts: Vec<Mount>,
        chain_id: &str,
    ) -> Result<(), ImageError> {
        let applied = self
            .ctd
            .diff()
            .apply(self.request(
                ApplyRequest {
                    diff: Some(to_ctd(layer)),
                    mounts,
                    payloads: HashMap::new(),
                    sync_fs: false,
                },
                lease,
            ))
            .await
            .map_err(|s| ImageError::ctd(name, "diff.Apply", s))?
            .into_inner()
            .applied;
        if let Some(applied) = applied {
            if applied.digest != diff_id {
                return Err(ImageError::InvalidImage {
                    reference: name.to_owned(),
                    reason: format!(
                        "layer {} unpacks to {}, but the config says {diff_id}",
                        layer.digest, applied.digest
                    ),
                });
            }
        }
        match self
            .ctd
            .snapshots()
            .commit(self.request(
                CommitSnapshotRequest {
                    snapshotter: self.cfg.snapshotter.clone(),
                    name: chain_id.to_owned(),
                    key: key.to_owned(),
                    labels: HashMap::new(),
                },
                lease,
            ))
            .await
        {
            Ok(_) => Ok(()),
            // Unpacked meanwhile by someone else: theirs is as good.
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                let _ = self
                    .ctd
                    .snapshots()
                    .remove(self.ctd.with_namespace(RemoveSnapshotRequest {
                        snapshotter: self.cfg.snapshotter.clone(),
                        key: key.to_owned(),
                    }))
                    .await;
                Ok(())
            }
            Err(s) => Err(ImageError::ctd(name, "snapshots.Commit", s)),
        }
    }

    // -- content -------------------------------------------------------------

    async fn content_info(
        &self,
        name: &str,
        digest: &str,
    ) -> Result<Option<containerd_client::services::v1::Info>, ImageError> {
        match self
            .ctd
            .content()
            .info(self.ctd.with_namespace(InfoRequest {
                digest: digest.to_owned(),
            }))
            .await
        {
            Ok(r) => Ok(r.into_inner().info),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(ImageError::ctd(name, "content.Info", s)),
        }
    }

    async fn content_exists(&self, name: &str, digest: &str) -> Result<bool, ImageError> {
        Ok(self.content_info(name, digest).await?.is_some())
    }

    /// A blob's bytes from the content store, or `None` if it is not there.
    async fn read_content(&self, name: &str, digest: &str) -> Result<Option<Vec<u8>>, ImageError> {
        let mut stream = match self
            .ctd
            .content()
            .read(self.ctd.with_namespace(ReadContentRequest {
                digest: digest.to_owned(),
                offset: 0,
                size: 0,
            }))
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
            Err(s) => return Err(ImageError::ctd(name, "content.Read", s)),
        };
        let mut out = Vec::new();
        loop {
            match stream.message().await {
                Ok(Some(m)) => out.extend_from_slice(&m.data),
                Ok(None) => break,
                Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
                Err(s) => return Err(ImageError::ctd(name, "content.Read", s)),
            }
        }
        Ok(Some(out))
    }

    /// Stores in-memory `bytes` under `desc` unless present; makes sure a
    /// present blob carries `labels`.
    async fn store_bytes(
        &self,
        name: &str,
        lease: &str,
        desc: &Descriptor,
        bytes: &[u8],
        labels: HashMap<String, String>,
    ) -> Result<(), ImageError> {
        match self.content_info(name, &desc.digest).await? {
            Some(info) => self.ensure_labels(name, info, labels).await,
            None => {
                let source = futures::stream::iter([Ok::<_, ImageError>(bytes.to_vec())]);
                self.write_content(name, lease, desc, labels, source).await
            }
        }
    }

    async fn ensure_labels(
        &self,
        name: &str,
        mut info: containerd_client::services::v1::Info,
        labels: HashMap<String, String>,
    ) -> Result<(), ImageError> {
        let missing: Vec<String> = labels
            .iter()
            .filter(|(k, v)| info.labels.get(*k) != Some(*v))
            .map(|(k, _)| format!("labels.{k}"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        info.labels = labels;
        self.ctd
            .content()
            .update(self.ctd.with_namespace(UpdateRequest {
                info: Some(info),
                update_mask: Some(prost_types::FieldMask { paths: missing }),
            }))
            .await
            .map_err(|s| ImageError::ctd(name, "content.Update", s))?;
        Ok(())
    }

    /// Streams `source` into the content store as `desc` (ref
    /// `berth-pull-<digest>`); containerd checks size and digest on commit.
    /// Content that appears meanwhile counts as written.
    async fn write_content<S, B>(
        &self,
        name: &str,
        lease: &str,
        desc: &Descriptor,
        labels: HashMap<String, String>,
        source: S,
    ) -> Result<(), ImageError>
    where
        S: Stream<Item = Result<B, ImageError>> + Unpin,
        B: AsRef<[u8]>,
    {
        let write_ref = format!("berth-pull-{}", desc.digest);
        let mut source = Some(source);
        for attempt in 0..10 {
            match self
                .try_write(name, lease, &write_ref, desc, &labels, &mut source)
                .await
            {
                Ok(()) => return Ok(()),
                Err(WriteFailure::Exists) => return Ok(()),
                Err(WriteFailure::Stale) if attempt == 0 => {
                    // A dead writer left partial data under our ref.
                    let _ = self
                        .ctd
                        .content()
                        .abort(self.ctd.with_namespace(AbortRequest {
                            r#ref: write_ref.clone(),
                        }))
                        .await;
                }
                Err(WriteFailure::Locked) => {
                    // Another pull writes the same blob (a layer shared by two
                    // images): wait for it.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if self.content_exists(name, &desc.digest).await? {
                        return Ok(());
                    }
                }
                Err(WriteFailure::Stale) => {
                    return Err(ImageError::ctd(
                        name,
                        "content.Write",
                        tonic::Status::failed_precondition(format!(
                            "ref {write_ref} keeps partial data after an abort"
                        )),
                    ))
                }
                Err(WriteFailure::Failed(e)) => {
                    let _ = self
                        .ctd
                        .content()
                        .abort(self.ctd.with_namespace(AbortRequest { r#ref: write_ref }))
                        .await;
                    return Err(e);
                }
            }
        }
        Err(ImageError::ctd(
            name,
            "content.Write",
            tonic::Status::unavailable(format!("ref {write_ref} stayed locked")),
        ))
    }

    async fn try_write<S, B>(
        &self,
        name: &str,
        lease: &str,
        write_ref: &str,
        desc: &Descriptor,
        labels: &HashMap<String, String>,
        source: &mut Option<S>,
    ) -> Result<(), WriteFailure>
    where
        S: Stream<Item = Result<B, ImageError>> + Unpin,
        B: AsRef<[u8]>,
    {
        let (tx, rx) = tokio::sync::mpsc::channel::<WriteContentRequest>(2);
        let send = |req: WriteContentRequest| {
            let tx = tx.clone();
            async move {
                tx.send(req).await.map_err(|_| {
                    WriteFailure::Failed(ImageError::ctd(
                        name,
                        "content.Write",
                        tonic::Status::aborted("containerd closed the write stream"),
                    ))
                })
            }
        };
        send(WriteContentRequest {
            action: WriteAction::Stat as i32,
            r#ref: write_ref.to_owned(),
            total: desc.size,
            expected: desc.digest.clone(),
            ..Default::default()
        })
        .await?;
        let mut responses = self
            .ctd
            .content()
            .write(self.ctd.with_lease(ReceiverStream::new(rx), lease))
            .await
            .map_err(|s| write_failure(name, s))?
            .into_inner();
        let status = next_response(&mut responses, name).await?;
        if status.offset != 0 {
            return Err(WriteFailure::Stale);
        }
        let Some(mut source) = source.take() else {
            return Err(WriteFailure::Failed(ImageError::ctd(
                name,
                "content.Write",
                tonic::Status::internal("the source was already consumed"),
            )));
        };
        let mut offset: i64 = 0;
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
        while let Some(chunk) = source.next().await {
            let chunk = chunk.map_err(WriteFailure::Failed)?;
            buf.extend_from_slice(chunk.as_ref());
            if buf.len() >= WRITE_CHUNK {
                let data = std::mem::take(&mut buf);
                let len = data.len() as i64;
                send(WriteContentRequest {
                    action: WriteAction::Write as i32,
                    r#ref: write_ref.to_owned(),
                    offset,
                    data,
                    ..Default::default()
                })
                .await?;
                next_response(&mut responses, name).await?;
                offset += len;
            }
        }
        send(WriteContentRequest {
            action: WriteAction::Commit as i32,
            r#ref: write_ref.to_owned(),
            total: desc.size,
            expected: desc.digest.clone(),
            offset,
            data: buf,
            labels: labels.clone(),
        })
        .await?;
        let committed = next_response(&mut responses, name).await?;
        drop(tx);
        if !committed.digest.is_empty() && committed.digest != desc.digest {
            return Err(WriteFailure::Failed(ImageError::DigestMismatch {
                reference: name.to_owned(),
                digest: desc.digest.clone(),
            }));
        }
        Ok(())
    }
}

fn write_failure(name: &str, s: tonic::Status) -> WriteFailure {
    match s.code() {
        tonic::Code::AlreadyExists => WriteFailure::Exists,
        tonic::Code::Unavailable if s.message().contains("locked") => WriteFailure::Locked,
        _ => WriteFailure::Failed(ImageError::ctd(name, "content.Write", s)),
    }
}

async fn next_response(
    responses: &mut tonic::Streaming<containerd_client::services::v1::WriteContentResponse>,
    name: &str,
) -> Result<containerd_client::services::v1::WriteContentResponse, WriteFailure> {
    match responses.message().await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(WriteFailure::Failed(ImageError::ctd(
            name,
            "content.Write",
            tonic::Status::aborted("containerd ended the write stream early"),
        ))),
        Err(s) => Err(write_failure(name, s)),
    }
}

enum WriteFailure {
    /// The blob is already in the store.
    Exists,
    /// Another writer holds the ref.
    Locked,
    /// The ref holds partial data from an earlier, dead writer.
    Stale,
    Failed(ImageError),
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

fn docker_config_error(path: &Path, reason: String) -> ImageError {
    ImageError::DockerConfig {
        path: path.to_path_buf(),
        reason,
    }
}

/// When an image was last used: its label, else its record's update time.
fn last_used(img: &Image) -> Option<OffsetDateTime> {
    if let Some(t) = img
        .labels
        .get(LAST_USED_LABEL)
        .and_then(|v| OffsetDateTime::parse(v, &Rfc3339).ok())
    {
        return Some(t);
    }
    let ts = img.updated_at.as_ref().or(img.created_at.as_ref())?;
    OffsetDateTime::from_unix_timestamp(ts.seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_with_ecs_names() {
        for (s, p) in [
            ("default", PullPolicy::Default),
            ("always", PullPolicy::Always),
            ("once", PullPolicy::Once),
            ("prefer-cached", PullPolicy::PreferCached),
        ] {
            assert_eq!(s.parse::<PullPolicy>(), Ok(p));
            assert_eq!(p.to_string(), s);
        }
        let err = "sometimes".parse::<PullPolicy>().unwrap_err();
        assert!(err.to_string().contains("\"sometimes\""), "{err}");
    }

    #[test]
    fn references_normalize_like_docker() {
        for (input, want) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("me/app:v1", "docker.io/me/app:v1"),
            (
                "127.0.0.1:5000/berth/busybox",
                "127.0.0.1:5000/berth/busybox:latest",
            ),
            ("ghcr.io/o/r:t", "ghcr.io/o/r:t"),
        ] {
            assert_eq!(normalize_reference(input).unwrap().whole(), want, "{input}");
        }
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = normalize_reference(&format!("busybox@{digest}")).unwrap();
        assert_eq!(r.digest(), Some(digest.as_str()));
        assert!(normalize_reference("Busybox").is_err());
        assert!(normalize_reference("").is_err());
    }

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        assert_eq!(chain[1], sha256_digest(format!("{a} {b}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
        // A known value: the chain of two layers computed with sha256sum.
        assert_eq!(
            sha256_digest(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn docker_config_gives_credentials_by_registry() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:pa:ss");
        let json = format!(
            r#"{{"auths": {{
                "127.0.0.1:5000": {{"auth": "{auth}"}},
                "https://index.docker.io/v1/": {{"username": "bob", "password": "pw"}},
                "http://other:5001/": {{}}
            }}, "credsStore": "desktop"}}"#
        );
        let c = docker_config_credentials(&json, "127.0.0.1:5000")
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "pa:ss")
        );
        let hub = docker_config_credentials(&json, "docker.io")
            .unwrap()
            .unwrap();
        assert_eq!(hub.username, "bob");
        assert_eq!(docker_config_credentials(&json, "other:5001"), Ok(None));
        assert_eq!(docker_config_credentials(&json, "nowhere:1"), Ok(None));
        assert!(docker_config_credentials("{", "x").is_err());
        let bad = r#"{"auths": {"h": {"auth": "!!"}}}"#;
        assert!(docker_config_credentials(bad, "h")
            .unwrap_err()
            .contains("auths.h.auth"));
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("\"u\""), "{shown}");
    }

    #[test]
    fn image_config_takes_the_container_fields() {
        let doc: ConfigDoc = serde_json::from_str(
            r#"{"config": {"Entrypoint": ["/bin/app"], "Cmd": null, "Env": ["A=1"],
                "WorkingDir": "", "User": "nobody", "StopSignal": "SIGQUIT",
                "Labels": {"k": "v"}, "ExposedPorts": {"80/tcp": {}, "53/udp": {}}},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:x"]}}"#,
        )
        .unwrap();
        let c = image_config(doc.config);
        assert_eq!(c.entrypoint, ["/bin/app"]);
        assert!(c.cmd.is_empty());
        assert_eq!(c.working_dir, None);
        assert_eq!(c.user.as_deref(), Some("nobody"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(c.exposed_ports, ["53/udp", "80/tcp"]);
    }

    #[test]
    fn manifest_kind_is_inferred_when_absent() {
        let idx: ManifestDoc =
            serde_json::from_str(r#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
        assert_eq!(idx.kind(), OCI_INDEX);
        let m: ManifestDoc = serde_json::from_str(r#"{"schemaVersion":2,"layers":[]}"#).unwrap();
        assert_eq!(m.kind(), OCI_MANIFEST);
        let v1: ManifestDoc = serde_json::from_str(r#"{"schemaVersion":1}"#).unwrap();
        assert_eq!(v1.kind(), DOCKER_SCHEMA1);
    }
}
