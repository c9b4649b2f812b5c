//! The repository-wide checks, the publish gates and retention on records
//! made of the input: each line `N name` starts a package, `D pattern`
//! adds a DEPENDS, `O value` sets its OPSYS, `P path` its PKGPATH, `B
//! date` its BUILD_DATE. Every pattern is bounded before it is expanded;
//! `newest` never leaves out a whole group, nor does retention; a release
//! tag `T ID/COUNT` is read as the pass reads one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkgsum::checks::{self, too_large};
use pkgsum::gate::{self, Gates, Unresolved};
use pkgsum::release::Tag;
use pkgsum::retention::{self, File, Rules, Shield};
use pkgsum::select::Select;

fuzz_target!(|data: &[u8]| {
    let mut packages: Vec<(String, Vec<u8>)> = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let (kind, rest) = match line {
            [kind, b' ', rest @ ..] => (*kind, rest),
            _ => continue,
        };
        if kind == b'N' {
            let name = format!("p{}.tgz", packages.len());
            let record = [b"PKGNAME=".as_slice(), rest, b"\n"].concat();
            packages.push((name, record));
            continue;
        }
        let Some((_, record)) = packages.last_mut() else {
            continue;
        };
        if kind == b'T' {
            if let Ok(tag) = Tag::parse(&String::from_utf8_lossy(rest)) {
                assert!(tag.count >= 1 && tag.id.len() <= pkgsum::release::ID_BYTES);
            }
            continue;
        }
        let field: &[u8] = match kind {
            b'D' => b"DEPENDS=",
            b'O' => b"OPSYS=",
            b'P' => b"PKGPATH=",
            b'B' => b"BUILD_DATE=",
            _ => continue,
        };
        record.extend_from_slice(field);
        record.extend_from_slice(rest);
        record.push(b'\n');
        let _ = too_large(rest);
    }
    let records = packages.iter().map(|(n, r)| (n.as_str(), &r[..]));
    let found = checks::repository_warnings(records, 50);
    assert!(found.warnings.len() <= 50);
    for (_, warning) in &found.warnings {
        assert!(warning.len() < 2048, "{}", warning.len());
    }
    let pairs: Vec<(&str, &[u8])> = packages.iter().map(|(n, r)| (n.as_str(), &r[..])).collect();
    let gates = Gates {
        select: Select::Newest,
        required: vec!["lib".to_owned()],
        unresolved: Unresolved::Hold,
        ..Gates::default()
    };
    let verdict = gate::judge(&gates, None, pairs.len(), Some(&pairs), Some(pairs.len()));
    // Of each group, the newest stays: at least one package is listed.
    assert!(verdict.listed >= usize::from(!pairs.is_empty()));
    assert_eq!(verdict.listed + verdict.unlisted.len(), pairs.len());
    for closed in &verdict.closed {
        assert!(closed.to_string().len() < 4096);
    }
    let files: Vec<File> = pairs
        .iter()
        .map(|&(name, record)| File {
            name,
            size: 1,
            modified: Some(0),
            record,
        })
        .collect();
    let rules = Rules {
        keep: Some(1),
        older_than: Some(1),
    };
    let judged = retention::judge(&files, rules, &Shield::default(), 10);
    assert_eq!(judged.len(), files.len());
    // The newest of a group stays, so not every file goes.
    assert!(files.is_empty() || judged.iter().any(|j| !j.goes));
    for j in &judged {
        assert!(j.why.to_string().len() < 4096);
    }
});
