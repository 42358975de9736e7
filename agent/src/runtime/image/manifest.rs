//! Image documents: the manifest, index and config JSON a pull reads, their
//! media types, platform selection, and what a container takes from the
//! config ([`ImageConfig`](super::ImageConfig)).

use std::collections::{BTreeMap, HashMap};

use containerd_client::types::Descriptor as CtdDescriptor;
use serde::Deserialize;

use super::{sha256_digest, ImageConfig, ImageError, ImageStore};

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
pub(super) const MANIFEST_TYPES: &[&str] = &[
    OCI_INDEX,
    DOCKER_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
];

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub(super) media_type: String,
    pub(super) digest: String,
    pub(super) size: i64,
    #[serde(default)]
    pub(super) platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Platform {
    #[serde(default)]
    pub(super) architecture: String,
    #[serde(default)]
    pub(super) os: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct ManifestDoc {
    #[serde(rename = "schemaVersion", default)]
    pub(super) schema_version: i64,
    #[serde(rename = "mediaType", default)]
    pub(super) media_type: Option<String>,
    #[serde(default)]
    pub(super) config: Option<Descriptor>,
    #[serde(default)]
    pub(super) layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    pub(super) manifests: Option<Vec<Descriptor>>,
}

impl ManifestDoc {
    /// The media type, from the document or inferred from its shape.
    pub(super) fn kind(&self) -> &str {
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
pub(super) struct Resolved {
    pub(super) target: Descriptor,
    pub(super) manifest: Descriptor,
    pub(super) layers: Vec<Descriptor>,
    pub(super) config: ImageConfig,
    pub(super) diff_ids: Vec<String>,
}

pub(super) fn parse<T: for<'de> Deserialize<'de>>(
    reference: &str,
    what: &str,
    bytes: &[u8],
) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::InvalidImage {
        reference: reference.to_owned(),
        reason: format!("{what} is not valid JSON: {e}"),
    })
}

pub(super) fn check_digest(reference: &str, digest: &str, bytes: &[u8]) -> Result<(), ImageError> {
    if digest.starts_with("sha256:") && sha256_digest(bytes) != digest {
        return Err(ImageError::DigestMismatch {
            reference: reference.to_owned(),
            digest: digest.to_owned(),
        });
    }
    Ok(())
}

pub(super) fn to_ctd(desc: &Descriptor) -> CtdDescriptor {
    CtdDescriptor {
        media_type: desc.media_type.clone(),
        digest: desc.digest.clone(),
        size: desc.size,
        annotations: HashMap::new(),
    }
}

pub(super) fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

impl ImageStore {
    pub(super) fn select_platform(
        &self,
        name: &str,
        index: &ManifestDoc,
    ) -> Result<Descriptor, ImageError> {
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

    pub(super) fn manifest_parts(
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

    pub(super) fn parse_config(
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
