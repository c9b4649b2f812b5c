//! Signature policies: every verdict, from packages pkg_admin signed
//! (the oracle's) and from packages signed here with keys and
//! certificates made on the spot; and a `require` repository that never
//! publishes a package without a good signature, through uploads,
//! overwrites, deletes and a change of policy.

use crate::common;

use std::collections::BTreeSet;
use std::fs;
use std::sync::Arc;

use bytes::Bytes;
use pkgsum::config::Config;
use pkgsum::create::{self, PackageBuilder, Signature};
use pkgsum::dispatch::apply_messages;
use pkgsum::event;
use pkgsum::header::read_header;
use pkgsum::limit::Limits;
use pkgsum::repo;
use pkgsum::store::{PutOptions, Store};
use pkgsum::testing::signing::{Cert, GpgKey, Role, Signer, signed_package};
use pkgsum::trust::{Policy, SignatureVerdict, Trust};

fn verdict(trust: &Trust, package: &[u8], pkgname: &str) -> SignatureVerdict {
    let header = read_header(package, &Limits::default()).unwrap();
    trust
        .verdict(header.signature.as_ref(), pkgname)
        .expect("a verdict")
}

fn bad_reason(verdict: SignatureVerdict) -> String {
    match verdict {
        SignatureVerdict::Bad { reason } => reason,
        other => panic!("expected a bad signature, got {other:?}"),
    }
}

/// The oracle's packages, signed by pkg_admin with GnuPG and with an X.509
/// certificate, verify against the oracle's public keys; the X.509 signer
/// is named exactly as pkg_info printed it.
fn oracle_packages_verify_as_pkg_add_says() {
    let oracle = common::oracle();
    let keyring = fs::read(oracle.join("keys/gpg-pubkey.asc")).unwrap();
    let anchors = fs::read(oracle.join("keys/x509-ca.pem")).unwrap();
    let trust = Trust::new(Policy::Check, Some(&keyring), Some(&anchors)).unwrap();

    let x509 = fs::read(oracle.join("signed/signed-x509-1.0.tgz")).unwrap();
    let expected = fs::read_to_string(oracle.join("signed/signed-x509-1.0.tgz.expected")).unwrap();
    let signer = expected.lines().nth(1).unwrap().trim_start_matches('\t');
    assert_eq!(
        verdict(&trust, &x509, "signed-x509-1.0"),
        SignatureVerdict::Signed {
            by: signer.to_owned()
        }
    );

    let gpg = fs::read(oracle.join("signed/signed-gpg-1.0.tgz")).unwrap();
    match verdict(&trust, &gpg, "signed-gpg-1.0") {
        SignatureVerdict::Signed { by } => assert!(by.ends_with(')') && by.contains(" ("), "{by}"),
        other => panic!("{other:?}"),
    }

    // With only one kind of key, the other kind of signature is bad.
    let gpg_only = Trust::new(Policy::Check, Some(&keyring), None).unwrap();
    assert_eq!(
        bad_reason(verdict(&gpg_only, &x509, "signed-x509-1.0")),
        "an X.509 signature, but no trust anchors are configured"
    );
    let x509_only = Trust::new(Policy::Check, None, Some(&anchors)).unwrap();
    assert_eq!(
        bad_reason(verdict(&x509_only, &gpg, "signed-gpg-1.0")),
        "an OpenPGP signature, but no keyring is configured"
    );
}

/// Keys made here: what a tampered `+PKG_HASH`, an unknown key, an
/// expired certificate, a CA as signer, a certificate for mail only, a
/// certificate from another CA and a signature for another pkgname each
/// get, next to the good signatures and an unsigned package.
fn every_verdict_from_made_keys() {
    let alice = GpgKey::new("Alice <alice@example.org>");
    let mallory = GpgKey::new("Mallory <mallory@example.org>");
    let ca = Cert::ca("pkgsum test CA");
    let signer = ca.issue("package signer", Role::Signer, false);
    let expired = ca.issue("expired signer", Role::Signer, true);
    let mail = ca.issue("mail only", Role::MailOnly, false);
    let stranger = Cert::ca("another CA").issue("their signer", Role::Signer, false);
    let trust = Trust::new(
        Policy::Check,
        Some(&alice.public_armored()),
        Some(&ca.pem()),
    )
    .unwrap();

    let inner = PackageBuilder::new("foo-1.0").build().unwrap();
    let good_gpg = signed_package(&inner, "foo-1.0", Signer::Gpg(&alice));
    match verdict(&trust, &good_gpg, "foo-1.0") {
        SignatureVerdict::Signed { by } => {
            assert!(by.starts_with("Alice <alice@example.org> ("), "{by}")
        }
        other => panic!("{other:?}"),
    }
    let good_x509 = signed_package(&inner, "foo-1.0", Signer::X509(&signer));
    assert_eq!(
        verdict(&trust, &good_x509, "foo-1.0"),
        SignatureVerdict::Signed {
            by: "/O=pkgsum tests/CN=package signer".to_owned()
        }
    );
    assert_eq!(
        verdict(&trust, &inner, "foo-1.0"),
        SignatureVerdict::Unsigned
    );

    // The inner package replaced after signing, and +PKG_HASH made to
    // match it: the signature no longer covers it.
    let hash = create::pkg_hash("foo-1.0", &inner);
    let other = PackageBuilder::new("foo-1.0")
        .member("+COMMENT", "changed after signing\n")
        .build()
        .unwrap();
    let tampered = create::pkg_hash("foo-1.0", &other);
    let forged = |kind, signature: Vec<u8>| {
        create::wrap(&tampered, kind, &signature, "foo-1.0.tgz", &other).unwrap()
    };
    // Changed without changing +PKG_HASH: the header read refuses it, as
    // pkg_info does (it checks each block it reads against its hash).
    let mut changed = inner.clone();
    changed[100] ^= 1;
    let swapped = create::wrap(
        &hash,
        Signature::Gpg,
        &alice.sign(&hash),
        "foo-1.0.tgz",
        &changed,
    )
    .unwrap();
    let err = read_header(&swapped[..], &Limits::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid signed package: block 1 of the inner package"),
        "{err}"
    );
    let reason = bad_reason(verdict(
        &trust,
        &forged(Signature::Gpg, alice.sign(&hash)),
        "foo-1.0",
    ));
    assert!(
        reason.starts_with("the OpenPGP signature by Alice <alice@example.org> (")
            && reason.contains(") does not verify: "),
        "{reason}"
    );
    let reason = bad_reason(verdict(
        &trust,
        &forged(Signature::X509, signer.sign(&hash)),
        "foo-1.0",
    ));
    assert!(
        reason.starts_with("the X.509 signature does not verify: ")
            && reason.contains("signature failure"),
        "{reason}"
    );

    let unknown = signed_package(&inner, "foo-1.0", Signer::Gpg(&mallory));
    let reason = bad_reason(verdict(&trust, &unknown, "foo-1.0"));
    assert!(
        reason.starts_with("signed by ") && reason.ends_with(", which is not in the keyring"),
        "{reason}"
    );

    let cases = [
        (&expired, "certificate has expired"),
        (&stranger, "unable to get local issuer certificate"),
    ];
    for (cert, why) in cases {
        let package = signed_package(&inner, "foo-1.0", Signer::X509(cert));
        let reason = bad_reason(verdict(&trust, &package, "foo-1.0"));
        assert!(
            reason.starts_with("the X.509 signature does not verify: ") && reason.contains(why),
            "{reason}"
        );
    }
    let as_ca = signed_package(&inner, "foo-1.0", Signer::X509(&ca));
    assert_eq!(
        bad_reason(verdict(&trust, &as_ca, "foo-1.0")),
        "/O=pkgsum tests/CN=pkgsum test CA: a CA certificate cannot sign packages"
    );
    let for_mail = signed_package(&inner, "foo-1.0", Signer::X509(&mail));
    assert_eq!(
        bad_reason(verdict(&trust, &for_mail, "foo-1.0")),
        "/O=pkgsum tests/CN=mail only: the certificate's extended key usage must be \
         code signing and email protection"
    );

    // A good signature, but over a +PKG_HASH made for another package.
    let other = signed_package(&inner, "bar-2.0", Signer::X509(&signer));
    assert_eq!(
        bad_reason(verdict(&trust, &other, "foo-1.0")),
        "/O=pkgsum tests/CN=package signer signed +PKG_HASH for pkgname \"bar-2.0\", \
         but PKGNAME is \"foo-1.0\""
    );
}

/// Keys that cannot be used are refused when the configuration is read,
/// with the variable named; `ignore` needs none.
fn unusable_keys_are_refused_up_front() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let err = Config::from_vars(vars(&[("PKGSUM_SIGNATURES", "require")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "PKGSUM_SIGNATURES=\"require\": expected usable keys (signatures are to be checked, \
         but neither a keyring nor trust anchors are given)"
    );
    let err = Config::from_vars(vars(&[("PKGSUM_SIGNATURES", "always")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "PKGSUM_SIGNATURES=\"always\": expected ignore, check or require"
    );
    let err = Config::from_vars(vars(&[
        ("PKGSUM_SIGNATURES", "check"),
        ("PKGSUM_X509_ANCHORS", "/nonexistent/anchors.pem"),
    ]))
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("PKGSUM_X509_ANCHORS=\"/nonexistent/anchors.pem\": expected a key file"),
        "{err}"
    );
    let err = Config::from_vars(vars(&[
        ("PKGSUM_SIGNATURES", "check"),
        (
            "PKGSUM_GPG_KEYRING",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a key\n-----END PGP PUBLIC KEY BLOCK-----\n",
        ),
    ]))
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("expected usable keys (the OpenPGP keyring cannot be read: "),
        "{err}"
    );
    let config = Config::from_vars(vars(&[])).unwrap();
    assert_eq!(config.trust.policy(), Policy::Ignore);
}

const BUCKET: &str = "repo-bucket";

async fn put(store: &impl Store, name: &str, body: Vec<u8>) -> String {
    let key = format!("All/{name}");
    store
        .put(&key, Bytes::from(body), PutOptions::default())
        .await
        .unwrap();
    key
}

async fn deliver(
    store: &impl Store,
    event: &str,
    keys: &[&str],
    config: &Config,
) -> pkgsum::dispatch::Outcome {
    let messages = event::decode(&common::s3_event(BUCKET, event, keys));
    let outcome = apply_messages(&messages, |_| store, config).await;
    assert!(outcome.is_success(), "{:?}", outcome.errors);
    outcome
}

/// The PKGNAMEs in the published gzip summary.
async fn published(store: &impl Store) -> BTreeSet<String> {
    let summary = common::published(store, "All/pkg_summary.gz").await;
    common::split_records(&summary)
        .iter()
        .filter_map(|record| {
            let text = String::from_utf8_lossy(record);
            let line = text.lines().find(|l| l.starts_with("PKGNAME="))?;
            Some(line["PKGNAME=".len()..].to_owned())
        })
        .collect()
}

async fn status(store: &impl Store) -> serde_json::Value {
    let (body, _) = store.get(&repo::status_key("All/")).await.unwrap().unwrap();
    serde_json::from_slice(&body).unwrap()
}

fn names(want: &[&str]) -> BTreeSet<String> {
    want.iter().map(|s| (*s).to_owned()).collect()
}

/// On LocalStack, through S3 events: a `require` repository publishes a
/// package only while it has a good signature. An unsigned or badly
/// signed upload is left out with its reason in the status object; a good
/// package overwritten by a bad one drops out; one overwritten by a good
/// one appears; a delete removes it. Under `check`, everything is indexed
/// and judged; switching the same bucket to `require` judges every package
/// again at the next event, whichever key it names.
async fn a_require_repository_publishes_only_good_signatures() {
    let store = pkgsum::testing::s3_bucket().await;
    let alice = GpgKey::new("Alice <alice@example.org>");
    let mallory = GpgKey::new("Mallory <mallory@example.org>");
    let ca = Cert::ca("pkgsum test CA");
    let signer = ca.issue("package signer", Role::Signer, false);
    let keyring = alice.public_armored();
    let anchors = ca.pem();
    let config = |policy| Config {
        trust: Arc::new(Trust::new(policy, Some(&keyring), Some(&anchors)).unwrap()),
        ..Config::default()
    };
    let (check, require) = (config(Policy::Check), config(Policy::Require));
    let package = |name: &str| PackageBuilder::new(name).build().unwrap();

    // Under check: all three indexed, each judged.
    let good = put(
        &store,
        "good-1.0.tgz",
        signed_package(&package("good-1.0"), "good-1.0", Signer::Gpg(&alice)),
    )
    .await;
    let plain = put(&store, "plain-1.0.tgz", package("plain-1.0")).await;
    let forged = put(
        &store,
        "forged-1.0.tgz",
        signed_package(&package("forged-1.0"), "forged-1.0", Signer::Gpg(&mallory)),
    )
    .await;
    deliver(
        &store,
        "ObjectCreated:Put",
        &[&good, &plain, &forged],
        &check,
    )
    .await;
    assert_eq!(
        published(&store).await,
        names(&["forged-1.0", "good-1.0", "plain-1.0"])
    );
    let got = status(&store).await;
    assert_eq!(got["signatures"]["policy"], "check");
    let verdicts: Vec<(String, String)> = got["signatures"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let file = v["file"].as_str().unwrap().to_owned();
            (file, v["verdict"].as_str().unwrap().to_owned())
        })
        .collect();
    let want = [
        ("forged-1.0.tgz", "bad"),
        ("good-1.0.tgz", "signed"),
        ("plain-1.0.tgz", "unsigned"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(f, v)| ((*f).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(verdicts, want);
    assert!(
        got["signatures"]["packages"][1]["by"]
            .as_str()
            .unwrap()
            .starts_with("Alice <alice@example.org> ("),
        "{got}"
    );

    // The same bucket under require: an event for one unrelated new key
    // judges every package again.
    let x509 = put(
        &store,
        "x509-1.0.tgz",
        signed_package(&package("x509-1.0"), "x509-1.0", Signer::X509(&signer)),
    )
    .await;
    deliver(&store, "ObjectCreated:Put", &[&x509], &require).await;
    assert_eq!(published(&store).await, names(&["good-1.0", "x509-1.0"]));
    let got = status(&store).await;
    assert_eq!(got["signatures"]["policy"], "require");
    let failures: Vec<(&str, &str)> = got["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["file"].as_str().unwrap(), f["error"].as_str().unwrap()))
        .collect();
    assert_eq!(failures.len(), 2, "{got}");
    assert_eq!(failures[0].0, "forged-1.0.tgz");
    assert!(
        failures[0]
            .1
            .starts_with("left out, as PKGSUM_SIGNATURES=require: bad signature: signed by "),
        "{}",
        failures[0].1
    );
    assert_eq!(
        failures[1],
        (
            "plain-1.0.tgz",
            "left out, as PKGSUM_SIGNATURES=require: not signed"
        )
    );

    // A good package overwritten by a badly signed one drops out.
    put(
        &store,
        "good-1.0.tgz",
        signed_package(&package("good-1.0"), "good-1.0", Signer::Gpg(&mallory)),
    )
    .await;
    deliver(&store, "ObjectCreated:Put", &[&good], &require).await;
    assert_eq!(published(&store).await, names(&["x509-1.0"]));

    // An unsigned package replaced by a signed one appears; a delete
    // removes the other.
    put(
        &store,
        "plain-1.0.tgz",
        signed_package(&package("plain-1.0"), "plain-1.0", Signer::X509(&signer)),
    )
    .await;
    deliver(&store, "ObjectCreated:Put", &[&plain], &require).await;
    assert_eq!(published(&store).await, names(&["plain-1.0", "x509-1.0"]));
    store.delete(&x509).await.unwrap();
    deliver(&store, "ObjectRemoved:Delete", &[&x509], &require).await;
    assert_eq!(published(&store).await, names(&["plain-1.0"]));
    let got = status(&store).await;
    let files: Vec<&str> = got["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["forged-1.0.tgz", "good-1.0.tgz"]);
    assert_eq!(got["packages"], 1);
}

/// On LocalStack: with `PKGSUM_VERIFY_PAYLOAD`, a signed package is read
/// whole, in ranges, and one changed byte in its inner package (which the
/// signature over `+PKG_HASH` alone cannot see) makes it a failure naming
/// the block; without it, only the header is read and the package is
/// indexed as signed.
async fn the_payload_check_reads_every_block() {
    let store = pkgsum::testing::s3_bucket().await;
    let alice = GpgKey::new("Alice <alice@example.org>");
    let big = |name: &str| {
        PackageBuilder::new(name)
            .file("payload", create::noise(11, 300_000))
            .build()
            .unwrap()
    };
    let good = signed_package(&big("big-1.0"), "big-1.0", Signer::Gpg(&alice));
    let inner = big("changed-1.0");
    let mut changed = signed_package(&inner, "changed-1.0", Signer::Gpg(&alice));
    let at = changed.len() - 1000;
    changed[at] ^= 0x55;
    let size = good.len() as u64;
    let good = put(&store, "big-1.0.tgz", good).await;
    let keyring = alice.public_armored();
    let trust = Arc::new(Trust::new(Policy::Check, Some(&keyring), None).unwrap());
    let header_only = Config {
        trust: trust.clone(),
        ..Config::default()
    };
    let whole = Config {
        trust,
        verify_payload: true,
        ..Config::default()
    };

    // The header read takes the first 64 KiB block of the inner package
    // whole, to check it against +PKG_HASH, and no more: two ranges.
    let outcome = deliver(&store, "ObjectCreated:Put", &[&good], &header_only).await;
    assert!(
        outcome.reports[0].bytes_fetched <= 2 * 65_536,
        "{:?}",
        outcome.reports[0]
    );
    let outcome = deliver(&store, "ObjectCreated:Put", &[&good], &whole).await;
    // The configuration changed, so the package is read again, whole.
    let report = &outcome.reports[0];
    assert!(report.bytes_fetched >= size, "{report:?}");
    assert_eq!(report.read, ["big-1.0.tgz"]);
    assert!(report.failures.is_empty(), "{report:?}");

    let changed = put(&store, "changed-1.0.tgz", changed).await;
    let outcome = deliver(&store, "ObjectCreated:Put", &[&changed], &whole).await;
    let failures = &outcome.reports[0].failures;
    assert_eq!(failures.len(), 1, "{failures:?}");
    let inner_len = inner.len() as u64;
    let last = inner_len.div_ceil(65536);
    assert_eq!(
        failures[0],
        (
            "changed-1.0.tgz".to_owned(),
            format!(
                "invalid signed package: block {last} of the inner package (bytes {} to \
                 {inner_len}) does not match its hash in +PKG_HASH",
                (last - 1) * 65536
            )
        )
    );
    assert_eq!(published(&store).await, names(&["big-1.0"]));
}

crate::harness::trials![
    test oracle_packages_verify_as_pkg_add_says,
    test every_verdict_from_made_keys,
    test unusable_keys_are_refused_up_front,
    s3 a_require_repository_publishes_only_good_signatures,
    s3 the_payload_check_reads_every_block,
];
