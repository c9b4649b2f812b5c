//! The repository-wide checks on records made of the input: each line
//! `N name` starts a package, `D pattern` adds a DEPENDS, `O value` sets
//! its OPSYS. Every pattern is bounded before it is expanded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkgsum::checks::{self, too_large};

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
        let field: &[u8] = match kind {
            b'D' => b"DEPENDS=",
            b'O' => b"OPSYS=",
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
});
