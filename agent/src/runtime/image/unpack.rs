//! Unpacking: each layer is applied by containerd's diff service onto a
//! snapshot prepared on its parent's chain id and committed under its own;
//! a layer whose snapshot exists is skipped.

use std::collections::HashMap;

use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, Kind, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::ApplyRequest;
use containerd_client::types::Mount;

use super::manifest::{to_ctd, Descriptor, Resolved};
use super::{ImageError, ImageStore};

/// One layer to unpack: its descriptor, the diff id the image config
/// gives it, and the chain id of the snapshot it becomes.
#[derive(Debug, Clone, Copy)]
struct Layer<'a> {
    descriptor: &'a Descriptor,
    diff_id: &'a str,
    chain_id: &'a str,
}

impl ImageStore {
    pub(super) async fn snapshot_exists(
        &self,
        name: &str,
        chain_id: &str,
    ) -> Result<bool, ImageError> {
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
    pub(super) async fn unpack(
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
            let layer = Layer {
                descriptor: &image.layers[i],
                diff_id: &image.diff_ids[i],
                chain_id: &chain[i],
            };
            self.unpack_layer(name, lease, &layer, &parent).await?;
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
        layer: &Layer<'_>,
        parent: &str,
    ) -> Result<(), ImageError> {
        let chain_id = layer.chain_id;
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
            .apply_and_commit(name, lease, layer, &key, mounts)
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

    async fn apply_and_commit(
        &self,
        name: &str,
        lease: Option<&str>,
        layer: &Layer<'_>,
        key: &str,
        mounts: Vec<Mount>,
    ) -> Result<(), ImageError> {
        let Layer {
            descriptor: layer,
            diff_id,
            chain_id,
        } = *layer;
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
}
