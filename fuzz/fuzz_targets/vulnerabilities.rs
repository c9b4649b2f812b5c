//! A pkg-vulnerabilities file, compressed or not, read and checked as
//! pkg_admin does; one that passes is matched against a few packages.
//! Every refusal is one short line; the audit stays within its budget.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkgsum::vulnerabilities::{audit, parse};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Err(refused) => assert!(refused.to_string().len() < 1024),
        Ok(file) => {
            let packages = [("a-1.tgz", "a-1"), ("foo-1.0nb2.tgz", "foo-1.0nb2")];
            let found = audit(&file, packages);
            assert!(found.findings.len() <= 2 * file.entries.len());
        }
    }
});
