//! The checks a push makes before it uploads anything: each file read
//! with the indexer's reader (bounded as the indexer bounds it), its
//! platform, its signature verdict, its key, and its DEPENDS.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use futures::stream::{self, StreamExt};

use super::{Checked, PushOptions, Refused};
use crate::checks::{self, PLATFORM};
use crate::config::Config;
use crate::excerpt::{Bare, excerpt};
use crate::header;
use crate::keys::{GENERATION, output_key};
use crate::record::{self, FileInfo};
use crate::repo::Repo;
use crate::store::{Bounded, Checksum, ObjectMeta, Store, StoreError};
use crate::summary;
use crate::trust::Policy;

/// The largest published summary read to learn the repository.
const SUMMARY_LIMIT: u64 = 256 << 20;

/// What the checks found.
#[derive(Debug, Default)]
pub struct Found {
    pub checked: Vec<Checked>,
    pub refused: Vec<Refused>,
    /// Warnings about files that pass (unresolved DEPENDS, pkg_info's).
    pub warnings: Vec<(String, String)>,
    /// The generation of the summary published when the push began.
    pub published_generation: u64,
}

/// The repository as published: its records and generation.
pub struct Published {
    pub records: Vec<u8>,
    pub generation: u64,
}

/// Reads the repository's published summary (the first configured
/// format), or none.
pub async fn published<S: Store>(repo: &Repo<'_, S>) -> Result<Option<Published>, StoreError> {
    let config = repo.config();
    let Some(&format) = config.formats.first() else {
        return Ok(None);
    };
    let key = output_key(repo.prefix(), format);
    let Some(Bounded::Whole(body, meta)) = repo.store().get_bounded(&key, SUMMARY_LIMIT).await?
    else {
        return Ok(None);
    };
    let Ok(records) = summary::decode(format, &body, config.state_limit) else {
        return Ok(None);
    };
    let generation = meta
        .metadata
        .get(GENERATION)
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    Ok(Some(Published {
        records,
        generation,
    }))
}

/// Reads and judges every file, then what is at its key in `repo`.
pub async fn check<S: Store>(
    repo: &Repo<'_, S>,
    files: &[PathBuf],
    options: PushOptions,
    published: Option<&Published>,
) -> Result<Found, StoreError> {
    let config = repo.config();
    let mut found = Found {
        published_generation: published.map_or(0, |p| p.generation),
        ..Found::default()
    };
    let mut read = Vec::new();
    for path in files {
        match read_package(path, config) {
            Ok(checked) => read.push(checked),
            Err(why) => found.refused.push(Refused {
                path: path.clone(),
                why,
            }),
        }
    }
    let read = against_repository(read, published, &mut found);
    let listed = published.map_or(0, |p| summary::records(&p.records).len());
    let taken = taken_keys(repo, read.len(), listed).await?;
    let keys = stream::iter(read.into_iter().map(|checked| {
        let free = taken
            .as_ref()
            .is_some_and(|taken| !taken.contains(&format!("{}{}", repo.prefix(), checked.name)));
        async move {
            match free {
                true => Ok(Ok(checked)),
                false => at_key(repo, checked, options).await,
            }
        }
    }))
    .buffered(config.concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    for result in keys {
        match result? {
            Ok(checked) => found.checked.push(checked),
            Err(refused) => found.refused.push(refused),
        }
    }
    Ok(found)
}

/// Of packages read, those that may join the repository as `published`:
/// one per key, built for its platform; the others are refused, and
/// DEPENDS nothing satisfies are warned of.
pub fn against_repository(
    mut read: Vec<Checked>,
    published: Option<&Published>,
    found: &mut Found,
) -> Vec<Checked> {
    refuse_duplicates(&mut read, &mut found.refused);
    let existing: Vec<&[u8]> = published.map_or(Vec::new(), |p| summary::records(&p.records));
    refuse_other_platforms(&mut read, &existing, &mut found.refused);
    found.warnings = unresolved(&read, &existing);
    read
}

/// One file read as the indexer reads it, its record made under the
/// name it is uploaded with, and its signature judged.
fn read_package(path: &Path, config: &Config) -> Result<Checked, String> {
    let file = File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let header = header::read_header(file, &config.fetch.limits).map_err(|e| e.to_string())?;
    judge_header(path, &header, size, config)
}

/// A package whose header was read from `path` (a file, or an object
/// named so), judged: its record made under the name it is uploaded
/// with, its signature under the policy of `config`.
pub fn judge_header(
    path: &Path,
    header: &header::Header,
    size: u64,
    config: &Config,
) -> Result<Checked, String> {
    let limits = &config.fetch.limits;
    let plain =
        record::render_limited(&header.metadata, None, limits.record).map_err(|e| e.to_string())?;
    let pkgname = record::pkgname(&plain)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .ok_or("it has no PKGNAME (no @name in +CONTENTS)")?;
    let name = format!("{pkgname}.tgz");
    if !crate::keys::is_plain_key(&name) || name.contains('/') || name.starts_with('.') {
        return Err(format!(
            "its PKGNAME {} cannot name a file",
            excerpt(&pkgname)
        ));
    }
    let info = FileInfo {
        name: name.as_bytes(),
        size,
    };
    let record = record::render_limited(&header.metadata, Some(info), limits.record)
        .map_err(|e| e.to_string())?;
    let verdict = config.trust.verdict(header.signature.as_ref(), &pkgname);
    if let Some(verdict) = &verdict
        && config.trust.policy() == Policy::Require
        && !verdict.is_good()
    {
        return Err(format!("PKGSUM_SIGNATURES=require: {verdict}"));
    }
    Ok(Checked {
        path: path.to_owned(),
        name,
        pkgname,
        record,
        size,
        verdict,
        present: false,
        replaces: None,
    })
}

/// Two files of one PKGNAME would go to one key: the second is refused.
fn refuse_duplicates(read: &mut Vec<Checked>, refused: &mut Vec<Refused>) {
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    read.retain(|c| match seen.get(&c.name) {
        Some(first) => {
            refused.push(Refused {
                path: c.path.clone(),
                why: format!(
                    "it is {} too, as {} is: both would be uploaded as {}",
                    Bare(&c.pkgname),
                    first.display(),
                    Bare(&c.name)
                ),
            });
            false
        }
        None => {
            seen.insert(c.name.clone(), c.path.clone());
            true
        }
    });
}

/// A record's platform, as pkg_add compares it.
fn platform(record: &[u8]) -> [Option<&[u8]>; 3] {
    PLATFORM.map(|name| record::field(record, name))
}

/// The platform most of `records` have.
fn majority<'r>(records: impl Iterator<Item = &'r [u8]>) -> Option<[Option<&'r [u8]>; 3]> {
    let mut counts: BTreeMap<[Option<&[u8]>; 3], usize> = BTreeMap::new();
    for record in records {
        *counts.entry(platform(record)).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(p, _)| p)
}

fn show(platform: &[Option<&[u8]>; 3]) -> String {
    let parts: Vec<String> = PLATFORM
        .iter()
        .zip(platform)
        .map(|(name, value)| {
            let value = value.map_or("(none)".into(), |v| {
                Bare(&String::from_utf8_lossy(v)).to_string()
            });
            format!("{name}={value}")
        })
        .collect();
    parts.join(" ")
}

/// Files built for another platform than the repository's (or, for a new
/// repository, than most of the push's) are refused: pkg_add would
/// refuse to install them.
fn refuse_other_platforms(read: &mut Vec<Checked>, existing: &[&[u8]], refused: &mut Vec<Refused>) {
    let wanted = if existing.is_empty() {
        majority(read.iter().map(|c| &c.record[..]))
    } else {
        majority(existing.iter().copied())
    };
    let Some(wanted) = wanted.map(|p| p.map(|v| v.map(<[u8]>::to_vec))) else {
        return;
    };
    read.retain(|c| {
        let got = platform(&c.record);
        let same = got.iter().zip(&wanted).all(|(a, b)| *a == b.as_deref());
        if !same {
            let wanted: [Option<&[u8]>; 3] = [0, 1, 2].map(|i| wanted[i].as_deref());
            refused.push(Refused {
                path: c.path.clone(),
                why: format!(
                    "built for {}, but the repository is {}: pkg_add would refuse it",
                    show(&got),
                    show(&wanted)
                ),
            });
        }
        same
    });
}

/// Warnings for pushed packages whose DEPENDS neither the repository
/// nor this push satisfies.
fn unresolved(read: &[Checked], existing: &[&[u8]]) -> Vec<(String, String)> {
    let pushed: BTreeSet<&str> = read.iter().map(|c| c.name.as_str()).collect();
    let names: Vec<String> = (0..existing.len()).map(|i| format!("\u{0}{i}")).collect();
    let all = read.iter().map(|c| (c.name.as_str(), &c.record[..])).chain(
        names
            .iter()
            .map(String::as_str)
            .zip(existing.iter().copied()),
    );
    checks::unresolved_of(all)
        .into_iter()
        .filter(|(file, _)| pushed.contains(file.as_str()))
        .collect()
}

/// The keys under the repository's prefix, when one listing costs fewer
/// requests than a HEAD per file (a page holds 1,000 keys; the published
/// count estimates the packages, and pkgsum's own objects fill one more
/// page at most). A key listed is still HEADed; a key created after the
/// listing is caught by the upload's `If-None-Match`.
async fn taken_keys<S: Store>(
    repo: &Repo<'_, S>,
    files: usize,
    published: usize,
) -> Result<Option<BTreeSet<String>>, StoreError> {
    let pages = published / 1000 + 2;
    if files <= pages {
        return Ok(None);
    }
    let listed = repo.store().list(repo.prefix()).await?;
    Ok(Some(listed.into_iter().map(|meta| meta.key).collect()))
}

/// What is at `checked`'s key: nothing (upload), the same bytes (nothing
/// to do), or another object (refused, or replaced with `--replace`).
async fn at_key<S: Store>(
    repo: &Repo<'_, S>,
    checked: Checked,
    options: PushOptions,
) -> Result<Result<Checked, Refused>, StoreError> {
    let key = format!("{}{}", repo.prefix(), checked.name);
    let Some(meta) = repo.store().head(&key).await? else {
        return Ok(Ok(checked));
    };
    // Read in pieces: a file that goes in parts is not held whole.
    let checksum = match super::upload::digest_file(&checked.path, checked.size).await {
        Ok(checksum) => checksum,
        Err(_) => {
            return Ok(Err(Refused {
                path: checked.path.clone(),
                why: "it changed while it was checked".to_owned(),
            }));
        }
    };
    let tagged = meta.metadata.get(super::upload::SHA256).map(String::as_str);
    let mut same = meta.size == checked.size
        && (tagged == Some(&checksum.sha256_hex()) || meta.etag == checksum.md5_hex());
    if !same && meta.size == checked.size && tagged.is_none() {
        // Uploaded otherwise (multipart, or a directory): compare bytes.
        let there = repo.store().get(&key).await?;
        same = there.is_some_and(|(body, _)| Checksum::of(&body) == checksum);
    }
    Ok(taken(
        checked,
        same,
        options.replace,
        meta,
        repo.store().location(&key),
    ))
}

/// A package whose key holds `meta` already: nothing to send if it is
/// the `same` bytes, replaced if asked to, else refused (`location`
/// names the key).
pub fn taken(
    mut checked: Checked,
    same: bool,
    replace: bool,
    meta: ObjectMeta,
    location: String,
) -> Result<Checked, Refused> {
    if same {
        checked.present = true;
        return Ok(checked);
    }
    if replace {
        checked.replaces = Some(meta.etag);
        return Ok(checked);
    }
    Err(Refused {
        path: checked.path.clone(),
        why: format!(
            "{location} holds another file ({} bytes): not overwritten (--replace replaces it)",
            meta.size
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_is_what_most_have() {
        let r = |os: &str| {
            format!("PKGNAME=x-1\nOPSYS={os}\nMACHINE_ARCH=x86_64\nOS_VERSION=10.1\n").into_bytes()
        };
        let records = [r("NetBSD"), r("NetBSD"), r("Linux")];
        let got = majority(records.iter().map(|r| &r[..])).unwrap();
        assert_eq!(
            show(&got),
            "OPSYS=NetBSD MACHINE_ARCH=x86_64 OS_VERSION=10.1"
        );
    }
}
