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
//!
//! This file holds the public types, [`ImageStore::ensure`] and the cache
//! lookup; the rest is split by concern: `pull` (the leased pull),
//! `registry` (`oci-client` and auth), `docker_config` (`config.json`
//! credentials), `manifest` (manifest, index and config documents),
//! `content` (the content store), `unpack` (snapshots and diffs) and `gc`.

mod content;
mod docker_config;
mod gc;
mod manifest;
mod pull;
mod registry;
mod unpack;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use containerd_client::services::v1::{GetImageRequest, Image, UpdateImageRequest};
use oci_client::Reference;
use sha2::{Digest as _, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::containerd::{Containerd, ContainerdError};
use manifest::{is_index, parse, Descriptor, ManifestDoc, Resolved};

pub use docker_config::docker_config_credentials;
pub use gc::{
    DEFAULT_IMAGES_DELETED_PER_CYCLE, DEFAULT_IMAGE_CLEANUP_INTERVAL,
    DEFAULT_IMAGE_MINIMUM_CLEANUP_AGE,
};

/// The image label holding the last time an `ensure` used the image.
pub const LAST_USED_LABEL: &str = "berth.last-used";

pub use crate::config::{ParsePullPolicyError, PullPolicy};

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

impl From<&crate::config::RuntimeConfig> for ImageStoreConfig {
    /// How the image store pulls, from the agent's runtime settings.
    fn from(rc: &crate::config::RuntimeConfig) -> Self {
        Self {
            docker_config: rc.docker_config.clone(),
            insecure_registries: rc.insecure_registries.clone(),
            ..Default::default()
        }
    }
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

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
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
    /// Pull durations and bytes (`/metrics`).
    metrics: crate::metrics::AgentMetrics,
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
            metrics: crate::metrics::AgentMetrics::default(),
        }
    }

    /// Counts pulls into `metrics` (the agent's `/metrics`).
    pub fn with_metrics(mut self, metrics: crate::metrics::AgentMetrics) -> Self {
        self.metrics = metrics;
        self
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn credentials_debug_hides_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("\"u\""), "{shown}");
    }
}
