//! Image GC, ECS style: the least recently used images that no task uses
//! and that are old enough lose their records; containerd's own GC then
//! takes the content and snapshots nothing else references.

use std::collections::HashSet;
use std::time::Duration;

use containerd_client::services::v1::{DeleteImageRequest, Image, ListImagesRequest};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{normalize_reference, ImageError, ImageStore, LAST_USED_LABEL};

/// ECS's image-cleanup defaults (`ECS_IMAGE_CLEANUP_INTERVAL`,
/// `ECS_IMAGE_MINIMUM_CLEANUP_AGE`, `ECS_NUM_IMAGES_DELETE_PER_CYCLE`), for
/// the loop that calls [`ImageStore::gc`].
pub const DEFAULT_IMAGE_CLEANUP_INTERVAL: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_IMAGE_MINIMUM_CLEANUP_AGE: Duration = Duration::from_secs(60 * 60);
pub const DEFAULT_IMAGES_DELETED_PER_CYCLE: usize = 5;

impl ImageStore {
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
