//! A pull under a lease: resolve the tag, narrow an index to the platform,
//! store manifest, config and layers with containerd's GC labels, unpack,
//! then create or update the image record.

use std::collections::HashMap;
use std::time::Duration;

use containerd_client::services::v1::{
    CreateImageRequest, CreateRequest as CreateLeaseRequest, DeleteRequest as DeleteLeaseRequest,
    Image, UpdateImageRequest,
};
use futures::StreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::manifest::{
    check_digest, is_index, parse, to_ctd, Descriptor, ManifestDoc, Resolved, MANIFEST_TYPES,
};
use super::registry::registry_error;
use super::{
    chain_ids, now_rfc3339, Credentials, ImageError, ImageStore, PulledImage, LAST_USED_LABEL,
};

/// How long an abandoned pull lease holds its content (it is deleted when
/// the pull ends; this bounds a crash mid-pull).
const LEASE_EXPIRY: Duration = Duration::from_secs(3600);

impl ImageStore {
    pub(super) async fn pull(
        &self,
        reference: &Reference,
        creds: Option<&Credentials>,
    ) -> Result<PulledImage, ImageError> {
        let name = reference.whole();
        let auth = self.registry_auth(reference, creds)?;
        let client = self.oci_client();
        let lease = self.create_lease(&name).await?;
        let began = tokio::time::Instant::now();
        let result = self.pull_leased(&client, &auth, reference, &lease).await;
        self.metrics.image_pull(began.elapsed(), result.is_ok());
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
            self.metrics
                .image_bytes(u64::try_from(layer.size).unwrap_or(0));
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

    pub(super) async fn put_record(
        &self,
        name: &str,
        target: &Descriptor,
    ) -> Result<(), ImageError> {
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
}
