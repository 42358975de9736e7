//! containerd's content store: info, read, label updates, and streamed,
//! leased `Write`s (containerd checks size and digest on commit), with the
//! retry for a ref another writer holds or a dead writer left.

use std::collections::HashMap;
use std::time::Duration;

use containerd_client::services::v1::{
    AbortRequest, InfoRequest, ReadContentRequest, UpdateRequest, WriteAction, WriteContentRequest,
};
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::ReceiverStream;

use super::manifest::Descriptor;
use super::{ImageError, ImageStore};

/// Bytes per content `Write` message (containerd accepts 16 MiB).
const WRITE_CHUNK: usize = 1024 * 1024;

impl ImageStore {
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

    pub(super) async fn content_exists(
        &self,
        name: &str,
        digest: &str,
    ) -> Result<bool, ImageError> {
        Ok(self.content_info(name, digest).await?.is_some())
    }

    /// A blob's bytes from the content store, or `None` if it is not there.
    pub(super) async fn read_content(
        &self,
        name: &str,
        digest: &str,
    ) -> Result<Option<Vec<u8>>, ImageError> {
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
    pub(super) async fn store_bytes(
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
    pub(super) async fn write_content<S, B>(
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
