//! `berthctl snapshot save FILE`: a point-in-time backup of the control
//! plane (the scheduler's store and cluster CA; admin only, audited),
//! written to FILE with mode 0600 and only once the whole stream arrived.
//! `berth-scheduler snapshot restore` restores it (docs/backup.md).

use std::path::PathBuf;

use berth_proto::snapshot::{save_stream, SaveError};
use berth_proto::v1 as pb;
use berth_proto::v1::snapshot_service_client::SnapshotServiceClient;
use clap::Subcommand;

use super::Ctx;
use crate::error::CtlError;

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save a snapshot of the scheduler's store and cluster CA to FILE (admin; mode 0600)
    Save {
        /// The file to write; replaced atomically
        file: PathBuf,
    },
}

pub async fn run(cmd: SnapshotCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let SnapshotCommand::Save { file } = cmd;
    let mut client = SnapshotServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    let mut stream = client
        .save_snapshot(pb::SaveSnapshotRequest {})
        .await
        .map_err(&rpc)?
        .into_inner();
    let bytes = save_stream(&mut stream, &file).await.map_err(|e| match e {
        SaveError::Stream(status) => rpc(status),
        SaveError::Io { path, source } => CtlError::WriteFile {
            path: path.display().to_string(),
            source,
        },
    })?;
    ctx.write(&format!(
        "saved a snapshot to {} ({bytes} bytes)\n",
        file.display()
    ))?;
    ctx.note(
        "note: the secrets key (secrets.key) is not in the snapshot; back it up separately; \
         restore with `berth-scheduler snapshot restore FILE --data-dir DIR`",
    )
}
