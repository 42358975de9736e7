//! `SnapshotService`: `SaveSnapshot` takes a consistent snapshot of the
//! store and the cluster CA (`crate::snapshot`) into an unlinked spool file
//! in the data dir, with commits paused only while the store is read, then
//! streams the file in chunks. Admin only, and audited (`api::auth`).

use std::path::PathBuf;
use std::sync::Arc;

use berth_proto::v1 as pb;
use berth_proto::v1::snapshot_service_server::SnapshotService;
use tokio::io::AsyncReadExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::auth::Principal;
use crate::snapshot::{self, CaFiles};
use crate::store::Store;

use super::ApiError;

/// Bytes per streamed chunk.
const CHUNK: usize = 256 * 1024;

pub struct SnapshotApi {
    pub store: Arc<dyn Store>,
    pub ca: CaFiles,
    /// Where the spool file is made (the data dir: same file system, and
    /// as private as the store).
    pub spool_dir: PathBuf,
}

#[tonic::async_trait]
impl SnapshotService for SnapshotApi {
    type SaveSnapshotStream = ReceiverStream<Result<pb::SnapshotChunk, Status>>;

    #[tracing::instrument(skip_all)]
    async fn save_snapshot(
        &self,
        req: Request<pb::SaveSnapshotRequest>,
    ) -> Result<Response<Self::SaveSnapshotStream>, Status> {
        let token = req
            .extensions()
            .get::<Principal>()
            .map(|p| p.token_id.clone())
            .unwrap_or_default();
        let (store, ca, dir) = (self.store.clone(), self.ca.clone(), self.spool_dir.clone());
        let (file, taken) =
            tokio::task::spawn_blocking(move || snapshot::spool(store.as_ref(), Some(&ca), &dir))
                .await
                .map_err(|e| Status::internal(format!("the snapshot task failed: {e}")))?
                .map_err(ApiError::from)?;
        tracing::info!(
            %token,
            records = taken.counts.records,
            bytes = taken.counts.bytes,
            commits_paused_ms = taken.paused.as_millis() as u64,
            schema_version = taken.header.schema_version,
            "snapshot taken"
        );
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut file = tokio::fs::File::from_std(file);
            loop {
                let mut buf = vec![0u8; CHUNK];
                let item = match file.read(&mut buf).await {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        Ok(pb::SnapshotChunk { data: buf })
                    }
                    Err(e) => {
                        tracing::error!(cause = %e, "reading the snapshot spool file");
                        Err(Status::internal(format!("reading the snapshot: {e}")))
                    }
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    // The caller went away, or the error is sent.
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
