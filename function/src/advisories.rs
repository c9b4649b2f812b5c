//! The `pkg-vulnerabilities` file beside a repository's summaries
//! (`pkgsum vulnerabilities`), and the audit of the repository's packages
//! against it (`pkgsum audit`, the site). `pkg_add` with
//! `CHECK_VULNERABILITIES=always` refuses every install when it cannot
//! fetch the file, so a private repository serves its own copy for its
//! clients' `PKGVULNURL`.
//!
//! A file is published only after it passes the checks of
//! [`crate::vulnerabilities`] (as `pkg_admin check-pkg-vulnerabilities`
//! makes them) and, when an OpenPGP keyring is configured
//! (`PKGSUM_VULN_KEYRING`, as pkg_install's `GPG_KEYRING_PKGVULN`), only if it is clear-signed by one of its keys.
//! It is stored gzip-compressed, as NetBSD publishes it, so the same URL
//! form works: `PKGVULNURL=https://HOST/PREFIX/pkg-vulnerabilities.gz`.

use bytes::Bytes;

use crate::compression::Compression;
use crate::excerpt::Escaped;
use crate::repo::Repo;
use crate::state::State;
use crate::store::{Bounded, PutMode, PutOptions, Store, StoreError};
use crate::trust::Trust;
use crate::vulnerabilities::{self, Audit, Vulnerabilities};

/// The file's name beside the summaries.
pub const FILE_NAME: &str = "pkg-vulnerabilities.gz";

/// The largest file read, compressed or not (NetBSD's is about 500 KiB
/// compressed, 4 MiB not).
pub const FILE_LIMIT: u64 = 64 << 20;

/// Why a file was not published or audited.
#[derive(Debug, thiserror::Error)]
pub enum AdvisoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{source_name}: {why}")]
    Refused { source_name: String, why: String },
    #[error("{0}: no {FILE_NAME} is published there (`pkgsum vulnerabilities` publishes one)")]
    NotPublished(String),
}

/// A file that passed the checks, and who signed it.
#[derive(Debug, Clone)]
pub struct Checked {
    pub file: Vulnerabilities,
    /// The key that signed it, when a keyring is configured.
    pub signer: Option<String>,
}

/// Checks `bytes` (read from `source_name`) as pkg_admin does, and its
/// signature by a key of `keys` when there are keys.
pub fn check(
    bytes: &[u8],
    source_name: &str,
    keys: Option<&Trust>,
) -> Result<Checked, AdvisoryError> {
    let refused = |why: String| AdvisoryError::Refused {
        source_name: Escaped(source_name).to_string(),
        why,
    };
    let file = vulnerabilities::parse(bytes).map_err(|e| refused(e.to_string()))?;
    let signer = match keys {
        None => None,
        Some(_) if !file.signed => {
            return Err(refused(
                "it is not signed, and PKGSUM_VULN_KEYRING says it must be".to_owned(),
            ));
        }
        Some(keys) => Some(
            keys.cleartext(&file.text)
                .map_err(|why| refused(format!("its signature: {why}")))?,
        ),
    };
    Ok(Checked { file, signer })
}

/// Publishes `bytes`, checked, as [`FILE_NAME`] beside the summaries of
/// `repo`: as they are if gzip, else gzip-compressed.
pub async fn publish<S: Store>(
    repo: &Repo<'_, S>,
    bytes: &[u8],
    checked: &Checked,
) -> Result<String, AdvisoryError> {
    let body = match Compression::detect(bytes) {
        Compression::Gzip => bytes.to_vec(),
        _ => Compression::Gzip
            .compress(checked.file.text.as_bytes())
            .map_err(|e| AdvisoryError::Refused {
                source_name: repo.location(),
                why: format!("compressing it: {e}"),
            })?,
    };
    let options = PutOptions {
        mode: PutMode::Overwrite,
        content_type: Some("application/gzip".to_owned()),
        // pkg_admin fetches it daily at most; a proxy may keep it an hour.
        cache_control: Some("max-age=3600".to_owned()),
        checksum: Some(crate::store::Checksum::of(&body)),
        ..PutOptions::default()
    };
    let key = format!("{}{FILE_NAME}", repo.prefix());
    repo.store().put(&key, Bytes::from(body), options).await?;
    Ok(repo.store().location(&key))
}

/// The file published beside `repo`'s summaries, checked again (it is
/// read back from the store, where anyone who may write could plant one),
/// or none.
pub async fn published<S: Store>(repo: &Repo<'_, S>) -> Result<Option<Checked>, AdvisoryError> {
    let key = format!("{}{FILE_NAME}", repo.prefix());
    let location = repo.store().location(&key);
    match repo.store().get_bounded(&key, FILE_LIMIT).await? {
        None => Ok(None),
        Some(Bounded::TooLarge(meta)) => Err(AdvisoryError::Refused {
            source_name: location,
            why: format!("{} bytes, more than {FILE_LIMIT}", meta.size),
        }),
        Some(Bounded::Whole(bytes, _)) => {
            let keys = repo.config().vulnerability_keys.as_deref();
            Ok(Some(check(&bytes, &location, keys)?))
        }
    }
}

/// The packages of `state` (a repository's index, every piece loaded)
/// that `file` names, by PKGNAME.
pub fn audit(state: &State, file: &Vulnerabilities) -> Audit {
    let packages: Vec<(&str, &str)> = state
        .packages()
        .filter_map(|(name, p)| {
            let pkgname = crate::record::pkgname(&p.record)?;
            Some((name, std::str::from_utf8(pkgname).ok()?))
        })
        .collect();
    vulnerabilities::audit(file, packages)
}

/// Reads `from`: a file, or an `http://` or `https://` URL (one GET,
/// redirects followed up to 5 times, at most [`FILE_LIMIT`] bytes, within
/// a minute).
#[cfg(feature = "cli")]
pub async fn read_source(from: &str) -> Result<Vec<u8>, AdvisoryError> {
    let refused = |why: String| AdvisoryError::Refused {
        source_name: Escaped(from).to_string(),
        why,
    };
    if !(from.starts_with("http://") || from.starts_with("https://")) {
        use std::io::Read as _;
        let file = std::fs::File::open(from).map_err(|e| refused(e.to_string()))?;
        let mut bytes = Vec::new();
        file.take(FILE_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| refused(e.to_string()))?;
        if bytes.len() as u64 > FILE_LIMIT {
            return Err(refused(format!("larger than {FILE_LIMIT} bytes")));
        }
        return Ok(bytes);
    }
    let fetched = tokio::time::timeout(std::time::Duration::from_secs(60), download(from)).await;
    match fetched {
        Ok(result) => result.map_err(refused),
        Err(_) => Err(refused("no answer within 60 s".to_owned())),
    }
}

/// One bounded GET, following redirects.
#[cfg(feature = "cli")]
async fn download(url: &str) -> Result<Vec<u8>, String> {
    use http_body_util::{BodyExt as _, Empty, Limited};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let mut url = url.to_owned();
    for _ in 0..=5 {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let answer = client
            .get(uri.clone())
            .await
            .map_err(|e| format!("GET failed: {e}"))?;
        let status = answer.status();
        if status.is_redirection() {
            let location = answer
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| format!("HTTP {status} without a Location"))?;
            url = redirect(&uri, location)?;
            continue;
        }
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let body = Limited::new(answer.into_body(), FILE_LIMIT as usize)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        return Ok(body.to_bytes().to_vec());
    }
    Err("more than 5 redirects".to_owned())
}

/// Where a redirect from `from` to `location` leads: an absolute URL, or
/// a path on the same server.
#[cfg(feature = "cli")]
fn redirect(from: &hyper::Uri, location: &str) -> Result<String, String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_owned());
    }
    let (Some(scheme), Some(authority)) = (from.scheme_str(), from.authority()) else {
        return Err(format!("a redirect to {}", Escaped(location)));
    };
    if !location.starts_with('/') {
        return Err(format!("a redirect to {}", Escaped(location)));
    }
    Ok(format!("{scheme}://{authority}{location}"))
}

/// Keeps `audit` of `state` for the site, and publishes the site again.
pub async fn keep<S: Store>(
    repo: &Repo<'_, S>,
    state: &mut State,
    audit: &Audit,
) -> Result<(), crate::repo::PassError> {
    repo.keep_audit(&kept(audit)).await?;
    repo.refresh_site(state).await?;
    Ok(())
}

/// `audit` as the site keeps it, made now.
fn kept(audit: &Audit) -> crate::web::AuditFile {
    crate::web::AuditFile {
        checked: crate::repo::whole_seconds(std::time::SystemTime::now()),
        findings: audit
            .findings
            .iter()
            .map(|f| {
                (
                    f.file.clone(),
                    f.pkgname.clone(),
                    f.kind.clone(),
                    f.url.clone(),
                )
            })
            .collect(),
    }
}
