//! A summary spliced inside the store, as `pkgsum_core::splice` plans it:
//! each short stretch of the published file joined after a long one in an
//! object under `.pkgsum/splice/` (a copy may be short when it is the last
//! part), then the new file assembled from the long stretches, those
//! objects and the runs made now, completed with If-Match on the file it
//! replaces; the objects made on the way are removed after. Nothing is
//! read, and only the runs made now are sent.
//!
//! Every copy is pinned to the ETag of what it copies, so a file or an
//! object replaced meanwhile (another writer's) makes it fail with a
//! precondition error: the caller then makes the file whole instead.

use bytes::Bytes;
use futures::future::join_all;

use crate::chunk::Layout;
use crate::keys::splice_key;
use crate::splice::Group;
use crate::store::{PutMode, PutOptions, Segment, Store, StoreError};

/// A format's summary to be spliced from the published file.
pub(super) struct Spliced {
    /// The ETag of the published file it is made from.
    pub source: String,
    pub groups: Vec<Group>,
    /// The runs made now, joined: they come last.
    pub fresh: Bytes,
    pub layout: Layout,
    pub compressed: usize,
    pub reused: usize,
}

/// Writes `key` as `spliced` says, under `options`; returns the new ETag.
pub(super) async fn put_spliced<S: Store>(
    store: &S,
    prefix: &str,
    key: &str,
    spliced: &Spliced,
    options: PutOptions,
) -> Result<String, StoreError> {
    let file = key.strip_prefix(prefix).unwrap_or(key);
    let stages: Vec<Vec<String>> = spliced
        .groups
        .iter()
        .enumerate()
        .map(|(g, group)| {
            let steps = 0..group.short.len();
            steps.map(|s| splice_key(prefix, file, g, s)).collect()
        })
        .collect();
    let made = assemble(store, key, spliced, &stages, options).await;
    let removed = join_all(stages.iter().flatten().map(|stage| store.delete(stage))).await;
    let etag = made?;
    removed.into_iter().collect::<Result<(), _>>()?;
    Ok(etag)
}

/// The groups joined (side by side), then the file assembled.
async fn assemble<S: Store>(
    store: &S,
    key: &str,
    spliced: &Spliced,
    stages: &[Vec<String>],
    options: PutOptions,
) -> Result<String, StoreError> {
    let groups = spliced.groups.iter().zip(stages);
    let joined = groups.map(|(group, stages)| join(store, key, &spliced.source, group, stages));
    let mut segments = join_all(joined)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    if !spliced.fresh.is_empty() {
        segments.push(Segment::Bytes(spliced.fresh.clone()));
    }
    Ok(store.assemble(key, segments, options).await?.etag)
}

/// `group` of the file `key` (pinned to `etag`) as one range to copy: its
/// long stretch, or the object its short ones were joined after it in,
/// one `stages` key a step.
async fn join<S: Store>(
    store: &S,
    key: &str,
    etag: &str,
    group: &Group,
    stages: &[String],
) -> Result<Segment, StoreError> {
    let of_file = |range: &std::ops::Range<u64>| Segment::Copy {
        key: key.to_owned(),
        etag: etag.to_owned(),
        range: range.clone(),
    };
    let mut joined = of_file(&group.long);
    for (short, stage) in group.short.iter().zip(stages) {
        let len = joined.len() + (short.end - short.start);
        let options = PutOptions {
            mode: PutMode::Overwrite,
            content_type: Some("application/octet-stream".to_owned()),
            ..PutOptions::default()
        };
        let made = store
            .assemble(stage, vec![joined, of_file(short)], options)
            .await?;
        joined = Segment::Copy {
            key: stage.clone(),
            etag: made.etag,
            range: 0..len,
        };
    }
    Ok(joined)
}
