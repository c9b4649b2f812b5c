//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;

use pkgsum::compression::Compression;

/// The oracle fixtures made for this project by NetBSD's own `pkg_create`
/// and `pkg_info` (see their README.md), kept in the repository.
pub fn oracle() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/oracle")
}

/// The third-party packages from a public repository, which are never
/// committed: `$PKGSUM_REAL_FIXTURES`, or `../shared/fixtures/real` beside
/// the checkout. `None` when they are not there.
pub fn real_fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("PKGSUM_REAL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/real")
        });
    dir.is_dir().then_some(dir)
}

/// Uploads oracle packages under `prefix`.
pub async fn upload_oracle<S: pkgsum::store::Store>(store: &S, prefix: &str, names: &[&str]) {
    for name in names {
        let body = std::fs::read(oracle().join(name)).unwrap();
        store
            .put(
                &format!("{prefix}{name}"),
                body.into(),
                pkgsum::store::PutOptions::default(),
            )
            .await
            .unwrap();
    }
}

/// Decompresses a whole summary file of any format.
pub fn decompress(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Compression::detect(bytes)
        .decoder(bytes)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Keeps only summary-record lines (`VAR=...` and the blank separator),
/// dropping what a signature verifier printed before a record.
pub fn record_lines(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text.split_inclusive(|&b| b == b'\n') {
        let var_len = line
            .iter()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || **b == b'_')
            .count();
        if line == b"\n" || (var_len > 0 && line.get(var_len) == Some(&b'=')) {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Splits a summary into its records, each with its blank line.
pub fn split_records(summary: &[u8]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let mut current = Vec::new();
    for line in summary.split_inclusive(|&b| b == b'\n') {
        current.extend_from_slice(line);
        if line == b"\n" {
            records.push(std::mem::take(&mut current));
        }
    }
    assert!(current.is_empty(), "summary does not end with a blank line");
    records
}

pub use pkgsum::testing::{s3_bucket, subscribe};

/// Form-encodes a key as S3 notifications do ("a b+c" -> "a+b%2Bc").
pub fn notification_key(key: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b' ');
    utf8_percent_encode(key, KEEP).to_string().replace(' ', "+")
}

/// An S3 notification naming `keys` in `bucket`.
pub fn s3_event(bucket: &str, event: &str, keys: &[&str]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = keys
        .iter()
        .map(|key| {
            serde_json::json!({
                "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": event,
                "s3": {"bucket": {"name": bucket}, "object": {"key": notification_key(key)}}
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// The summary a repository should publish: `pkg_info -X` of every package
/// the store holds under `prefix`, read whole, in file-name order.
pub async fn truth<S: pkgsum::store::Store>(store: &S, prefix: &str, suffix: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for meta in store.list(prefix).await.unwrap() {
        let name = &meta.key[prefix.len()..];
        if name.contains('/') || !name.ends_with(suffix) {
            continue;
        }
        let Some((body, _)) = store.get(&meta.key).await.unwrap() else {
            continue;
        };
        let Ok(header) = pkgsum::header::read_header(&body[..], &pkgsum::limit::Limits::default())
        else {
            continue;
        };
        let info = pkgsum::record::FileInfo {
            name: name.as_bytes(),
            size: body.len() as u64,
        };
        out.extend(pkgsum::record::render(&header.metadata, Some(info)));
    }
    out
}

/// A published summary, decompressed, or empty when absent.
pub async fn published<S: pkgsum::store::Store>(store: &S, key: &str) -> Vec<u8> {
    match store.get(key).await.unwrap() {
        Some((body, _)) => decompress(&body),
        None => Vec::new(),
    }
}

/// A package built for `opsys` (x86_64, 10.1), whose +COMMENT is
/// `comment`.
pub fn package_for(pkgname: &str, opsys: &str, comment: &str) -> Vec<u8> {
    let base = pkgname.rsplit_once('-').map_or(pkgname, |(b, _)| b);
    let build_info = format!(
        "BUILD_DATE=2026-11-25 12:00:00 +0000\nMACHINE_ARCH=x86_64\nOPSYS={opsys}\n\
         OS_VERSION=10.1\nPKGPATH=misc/{base}\nPKGTOOLS_VERSION=20250417\n"
    );
    pkgsum::create::PackageBuilder::new(pkgname)
        .member("+BUILD_INFO", build_info)
        .member("+COMMENT", format!("{comment}\n"))
        .build()
        .unwrap()
}

/// Runs the `pkgsum` binary with `args` and `env`: its exit code, its
/// standard output and its standard error.
pub fn pkgsum(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pkgsum"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
