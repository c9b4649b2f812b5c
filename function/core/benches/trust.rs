//! `cargo bench -p pkgsum-core --bench trust`: what a signature verdict
//! and a payload check cost, on the oracle's packages that pkg_admin
//! signed (RSA keys, as NetBSD's tools make them): the verdict per package
//! (`PKGSUM_SIGNATURES`), and the block-hash check per MiB of inner
//! package (`PKGSUM_VERIFY_PAYLOAD`). The header is read once; the loop
//! times only the verdict.

use std::path::PathBuf;
use std::time::Instant;

use pkgsum_core::create::{self, PackageBuilder, Signature};
use pkgsum_core::header::read_header;
use pkgsum_core::limit::Limits;
use pkgsum_core::signed::check_blocks;
use pkgsum_core::trust::{Policy, SignatureVerdict, Trust};

fn oracle() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/oracle")
}

fn main() {
    let read = |name: &str| std::fs::read(oracle().join(name)).expect("an oracle fixture");
    let keyring = read("keys/gpg-pubkey.asc");
    let anchors = read("keys/x509-ca.pem");
    let trust =
        Trust::new(Policy::Check, Some(&keyring), Some(&anchors)).expect("the oracle's keys");
    println!("| package | verdict | per package |");
    println!("|---|---|---|");
    for (name, pkgname) in [
        ("signed/signed-gpg-1.0.tgz", "signed-gpg-1.0"),
        ("signed/signed-x509-1.0.tgz", "signed-x509-1.0"),
    ] {
        let header = read_header(&read(name)[..], &Limits::default()).expect("a header");
        let rounds = 200;
        let start = Instant::now();
        let mut last = None;
        for _ in 0..rounds {
            last = trust.verdict(header.signature.as_ref(), pkgname);
        }
        let each = start.elapsed() / rounds;
        let shown = match last {
            Some(SignatureVerdict::Signed { .. }) => "signed",
            Some(SignatureVerdict::Unsigned) => "unsigned",
            Some(SignatureVerdict::Bad { .. }) => "bad",
            None => "none",
        };
        println!("| {name} | {shown} | {each:.2?} |");
    }

    // The payload check: 32 MiB of incompressible payload, signed.
    let inner = PackageBuilder::new("big-1.0")
        .file("payload", create::noise(1, 32 << 20))
        .build()
        .expect("a package");
    let signed = create::sign(&inner, "big-1.0.tgz", "big-1.0", Signature::Gpg).expect("signed");
    let start = Instant::now();
    let checked = check_blocks(&signed[..], 1 << 20).expect("good blocks");
    let elapsed = start.elapsed();
    let mib = checked as f64 / f64::from(1 << 20);
    println!(
        "\npayload check: {mib:.1} MiB in {elapsed:.2?}, {:.0} MiB/s",
        mib / elapsed.as_secs_f64()
    );
}
