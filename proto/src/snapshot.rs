//! The clients' side of `SnapshotService.SaveSnapshot`, shared by
//! `berthctl snapshot save` and `berth-scheduler snapshot save`: the
//! streamed chunks go to a temporary file beside the target, created with
//! mode 0600 (a snapshot holds the cluster CA's key and the token hashes),
//! which is synced and renamed into place only once the stream has ended
//! with OK. A refused, failed or cut stream leaves no file behind.
//!
//! The file's format is the scheduler's business
//! (`berth_scheduler::snapshot`); its checksum is verified on restore.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt as _;

use crate::v1::SnapshotChunk;

/// Why a snapshot could not be saved to its file.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The stream ended with an error status (or the connection broke).
    #[error("the snapshot stream failed: {}", .0.message())]
    Stream(tonic::Status),
}

/// The temporary file a download goes to before it is renamed to `path`.
pub fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

/// Writes every chunk of `stream` to `path` (atomically: a `.part` file,
/// fsync, rename, fsync of the directory). Returns the bytes written.
pub async fn save_stream(
    stream: &mut tonic::Streaming<SnapshotChunk>,
    path: &Path,
) -> Result<u64, SaveError> {
    let part = part_path(path);
    let result = write_part(stream, &part, path).await;
    if result.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = tokio::fs::remove_file(&part).await;
    }
    result
}

async fn write_part(
    stream: &mut tonic::Streaming<SnapshotChunk>,
    part: &Path,
    path: &Path,
) -> Result<u64, SaveError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| SaveError::Io { path: p, source }
    };
    match tokio::fs::remove_file(part).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(part)(e)),
    }
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(part)
        .await
        .map_err(io(part))?;
    let mut written = 0u64;
    while let Some(chunk) = stream.message().await.map_err(SaveError::Stream)? {
        file.write_all(&chunk.data).await.map_err(io(part))?;
        written += chunk.data.len() as u64;
    }
    file.sync_all().await.map_err(io(part))?;
    drop(file);
    tokio::fs::rename(part, path).await.map_err(io(path))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    tokio::fs::File::open(dir)
        .await
        .map_err(io(dir))?
        .sync_all()
        .await
        .map_err(io(dir))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_part_file_sits_beside_the_target() {
        assert_eq!(
            part_path(Path::new("/backups/berth.snap")),
            Path::new("/backups/berth.snap.part")
        );
        assert_eq!(part_path(Path::new("b.snap")), Path::new("b.snap.part"));
    }
}
