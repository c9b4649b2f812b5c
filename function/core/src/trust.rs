//! The signature policy of a repository and the verdict it gives each
//! package: signed by whom, not signed, or a bad signature.
//!
//! A signed package's signature covers its `+PKG_HASH`, which comes before
//! the inner package, so the verdict needs the header alone. The checks are
//! pkg_add's (`lib/pkcs7.c`, `lib/gpgsig.c`), plus one it never makes: the
//! pkgname `+PKG_HASH` was signed for must be the package's PKGNAME.
//!
//! - OpenPGP (`+PKG_GPG_SIGNATURE`): a detached signature by a key of the
//!   keyring (a primary key or a subkey), found by the issuer the signature
//!   names.
//! - X.509 (`+PKG_SIGNATURE`): PKCS#7 verified against the trust anchors by
//!   OpenSSL (`PKCS7_verify`, as pkg_add calls it), then every signer must
//!   not be a CA and must carry exactly the extended key usages code
//!   signing and email protection.

use std::fmt;
use std::io::Cursor;
use std::str::FromStr;

use openssl::error::ErrorStack;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{X509, X509Ref};
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};

use crate::excerpt::{bounded, excerpt};
use crate::signed::{Method, Signed};

/// What a repository does with signatures (`PKGSUM_SIGNATURES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Index every package; no verdict (pkgsum's behaviour before
    /// policies).
    #[default]
    Ignore,
    /// Index every package and record each one's verdict.
    Check,
    /// Leave a package that is not signed, or badly signed, out of the
    /// summary, with the verdict as the reason.
    Require,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Ignore => "ignore",
            Policy::Check => "check",
            Policy::Require => "require",
        }
    }
}

impl FromStr for Policy {
    type Err = ();

    fn from_str(s: &str) -> Result<Policy, ()> {
        match s {
            "ignore" => Ok(Policy::Ignore),
            "check" => Ok(Policy::Check),
            "require" => Ok(Policy::Require),
            _ => Err(()),
        }
    }
}

/// What the policy found of one package's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignatureVerdict {
    /// A good signature by a trusted key; who signed, as pkg_add names it.
    Signed { by: String },
    /// No signature.
    Unsigned,
    /// A signature that does not verify, or one by an untrusted key, or one
    /// for another package.
    Bad { reason: String },
}

impl SignatureVerdict {
    pub fn is_good(&self) -> bool {
        matches!(self, SignatureVerdict::Signed { .. })
    }
}

impl fmt::Display for SignatureVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureVerdict::Signed { by } => write!(f, "signed by {by}"),
            SignatureVerdict::Unsigned => f.write_str("not signed"),
            SignatureVerdict::Bad { reason } => write!(f, "bad signature: {reason}"),
        }
    }
}

/// Keys or anchors that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("the OpenPGP keyring cannot be read: {0}")]
    Keyring(String),
    #[error("the X.509 trust anchors cannot be read: {0}")]
    Anchors(String),
    #[error("signatures are to be checked, but neither a keyring nor trust anchors are given")]
    NoKeys,
}

/// A policy with the keys it verifies against.
pub struct Trust {
    policy: Policy,
    keyring: Vec<SignedPublicKey>,
    anchors: Option<X509Store>,
    anchor_count: usize,
    fingerprint: String,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust")
            .field("policy", &self.policy)
            .field("keys", &self.keyring.len())
            .field("anchors", &self.anchor_count)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl Default for Trust {
    fn default() -> Self {
        Trust::ignore()
    }
}

impl Trust {
    /// No checks: every package indexed, no verdicts.
    pub fn ignore() -> Trust {
        Trust {
            policy: Policy::Ignore,
            keyring: Vec::new(),
            anchors: None,
            anchor_count: 0,
            fingerprint: String::new(),
        }
    }

    /// `policy` over an OpenPGP keyring (armored or binary, any number of
    /// keys) and PEM trust anchors. A policy other than `ignore` needs at
    /// least one of them.
    pub fn new(
        policy: Policy,
        keyring: Option<&[u8]>,
        anchors: Option<&[u8]>,
    ) -> Result<Trust, TrustError> {
        if policy == Policy::Ignore {
            return Ok(Trust::ignore());
        }
        if keyring.is_none() && anchors.is_none() {
            return Err(TrustError::NoKeys);
        }
        let keys = keyring.map(read_keyring).transpose()?.unwrap_or_default();
        let certs = anchors.map(read_anchors).transpose()?.unwrap_or_default();
        let mut digest = Sha256::new();
        for part in [policy.as_str().as_bytes(), keyring.unwrap_or(b""), b"\0"] {
            digest.update(part);
        }
        digest.update(anchors.unwrap_or(b""));
        let fingerprint = crate::hex(&digest.finalize()[..12]);
        let anchor_count = certs.len();
        let anchors = if certs.is_empty() {
            None
        } else {
            Some(store_of(certs).map_err(|e| TrustError::Anchors(reasons(&e)))?)
        };
        Ok(Trust {
            policy,
            keyring: keys,
            anchors,
            anchor_count,
            fingerprint,
        })
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Names the policy and the keys: verdicts given under another
    /// fingerprint must be given again. Empty for `ignore`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The verdict on a package whose record says `pkgname`, signed as
    /// `signed` says; none when signatures are ignored.
    pub fn verdict(&self, signed: Option<&Signed>, pkgname: &str) -> Option<SignatureVerdict> {
        if self.policy == Policy::Ignore {
            return None;
        }
        let Some(signed) = signed else {
            return Some(SignatureVerdict::Unsigned);
        };
        let checked = match signed.method {
            Method::Gpg => self.gpg(signed),
            Method::X509 => self.x509(signed),
        };
        // A signer's name comes from the package's own certificate or key
        // user id: bounded like any text from outside.
        Some(match checked {
            Ok(by) if signed.hash.pkgname != pkgname => SignatureVerdict::Bad {
                reason: bounded(format!(
                    "{by} signed +PKG_HASH for pkgname {}, but PKGNAME is {}",
                    excerpt(&signed.hash.pkgname),
                    excerpt(pkgname)
                )),
            },
            Ok(by) => SignatureVerdict::Signed { by: bounded(by) },
            Err(reason) => SignatureVerdict::Bad {
                reason: bounded(reason),
            },
        })
    }

    /// Whether the keyring holds any key.
    pub fn has_keyring(&self) -> bool {
        !self.keyring.is_empty()
    }

    /// Who signed `text`, a clear-signed OpenPGP message (as the
    /// `pkg-vulnerabilities` file is signed), with a key of the keyring, or
    /// why no key did.
    pub fn cleartext(&self, text: &str) -> Result<String, String> {
        if self.keyring.is_empty() {
            return Err("no OpenPGP keyring is configured".to_owned());
        }
        let (message, _) = pgp::composed::CleartextSignedMessage::from_string(text)
            .map_err(|e| format!("it is not a clear-signed OpenPGP message: {e}"))?;
        for key in &self.keyring {
            if message.verify(&key.primary_key).is_ok() {
                return Ok(bounded(describe_key(key)));
            }
            if key
                .public_subkeys
                .iter()
                .any(|sub| message.verify(&sub.key).is_ok())
            {
                return Ok(bounded(describe_key(key)));
            }
        }
        Err("no key of the keyring made its OpenPGP signature".to_owned())
    }

    /// Who made a good OpenPGP signature, or why it is not one.
    fn gpg(&self, signed: &Signed) -> Result<String, String> {
        if self.keyring.is_empty() {
            return Err("an OpenPGP signature, but no keyring is configured".to_owned());
        }
        let signature = read_detached(&signed.signature)
            .map_err(|e| format!("the OpenPGP signature cannot be read: {e}"))?;
        let sig = &signature.signature;
        let wanted = |key: &dyn KeyDetails| {
            let fingerprint = key.fingerprint();
            let id = key.legacy_key_id();
            sig.issuer_fingerprint().iter().any(|f| **f == fingerprint)
                || sig.issuer_key_id().iter().any(|k| **k == id)
        };
        for key in &self.keyring {
            if wanted(&key.primary_key) {
                return verified(signature.verify(&key.primary_key, &signed.text), key);
            }
            for sub in &key.public_subkeys {
                if wanted(&sub.key) {
                    return verified(signature.verify(&sub.key, &signed.text), key);
                }
            }
        }
        let issuer = sig
            .issuer_fingerprint()
            .first()
            .map(|f| format!("{f:X}"))
            .or_else(|| {
                sig.issuer_key_id()
                    .first()
                    .map(|k| crate::hex(k.as_ref()).to_uppercase())
            })
            .unwrap_or_else(|| "an unnamed key".to_owned());
        Err(format!("signed by {issuer}, which is not in the keyring"))
    }

    /// Who made a good X.509 signature, or why it is not one.
    fn x509(&self, signed: &Signed) -> Result<String, String> {
        let store = self
            .anchors
            .as_ref()
            .ok_or_else(|| "an X.509 signature, but no trust anchors are configured".to_owned())?;
        let p7 = Pkcs7::from_pem(&signed.signature)
            .map_err(|e| format!("the PKCS#7 signature cannot be read: {}", reasons(&e)))?;
        let none = Stack::new().map_err(|e| reasons(&e))?;
        p7.verify(&none, store, Some(&signed.text), None, Pkcs7Flags::empty())
            .map_err(|e| format!("the X.509 signature does not verify: {}", reasons(&e)))?;
        let signers = p7
            .signers(&none, Pkcs7Flags::empty())
            .map_err(|e| format!("no signer: {}", reasons(&e)))?;
        let mut names = Vec::new();
        for cert in &signers {
            let name = oneline(cert);
            check_signer(cert).map_err(|why| format!("{name}: {why}"))?;
            names.push(name);
        }
        if names.is_empty() {
            return Err("the PKCS#7 signature names no signer".to_owned());
        }
        Ok(names.join(", "))
    }
}

/// Reads every OpenPGP public key, armored or binary; each must carry valid
/// self-signatures.
fn read_keyring(bytes: &[u8]) -> Result<Vec<SignedPublicKey>, TrustError> {
    let bad = |e: pgp::errors::Error| TrustError::Keyring(e.to_string());
    let keys: Vec<SignedPublicKey> = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let (keys, _) = SignedPublicKey::from_armor_many(Cursor::new(bytes)).map_err(bad)?;
        keys.collect::<Result<_, _>>().map_err(bad)?
    } else {
        SignedPublicKey::from_bytes_many(Cursor::new(bytes))
            .map_err(bad)?
            .collect::<Result<_, _>>()
            .map_err(bad)?
    };
    if keys.is_empty() {
        return Err(TrustError::Keyring("it holds no public key".to_owned()));
    }
    for key in &keys {
        key.verify_bindings()
            .map_err(|e| TrustError::Keyring(format!("key {}: {e}", describe_key(key))))?;
    }
    Ok(keys)
}

fn read_anchors(bytes: &[u8]) -> Result<Vec<X509>, TrustError> {
    let certs = X509::stack_from_pem(bytes).map_err(|e| TrustError::Anchors(reasons(&e)))?;
    if certs.is_empty() {
        return Err(TrustError::Anchors("no PEM certificate in them".to_owned()));
    }
    Ok(certs)
}

fn store_of(certs: Vec<X509>) -> Result<X509Store, ErrorStack> {
    let mut builder = X509StoreBuilder::new()?;
    for cert in certs {
        builder.add_cert(cert)?;
    }
    Ok(builder.build())
}

/// A detached signature, armored (as `gpg --armor --detach-sign` writes
/// it, and pkg_admin keeps it) or binary.
fn read_detached(bytes: &[u8]) -> pgp::errors::Result<DetachedSignature> {
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        DetachedSignature::from_armor_single(Cursor::new(bytes)).map(|(sig, _)| sig)
    } else {
        DetachedSignature::from_bytes(Cursor::new(bytes))
    }
}

/// The signer of `key`, or why its signature does not verify.
fn verified(result: pgp::errors::Result<()>, key: &SignedPublicKey) -> Result<String, String> {
    let who = describe_key(key);
    match result {
        Ok(()) => Ok(who),
        Err(e) => Err(format!(
            "the OpenPGP signature by {who} does not verify: {e}"
        )),
    }
}

/// A key as people know it: its first user id and its fingerprint.
fn describe_key(key: &SignedPublicKey) -> String {
    let fingerprint = format!("{:X}", key.primary_key.fingerprint());
    match key.details.users.first() {
        Some(user) => format!("{} ({fingerprint})", String::from_utf8_lossy(user.id.id())),
        None => fingerprint,
    }
}

/// A subject as `X509_NAME_oneline` prints it (`/C=NL/O=x/CN=y`), which
/// is how pkg_add names the signer.
fn oneline(cert: &X509Ref) -> String {
    cert.subject_name()
        .entries()
        .map(|entry| {
            let key = entry.object().nid().short_name().unwrap_or("?");
            let value = entry.data().to_string().unwrap_or_default();
            format!("/{key}={value}")
        })
        .collect()
}

/// pkg_add's rule for a signer: not a CA (`X509_check_ca`), and extended
/// key usage exactly code signing plus email protection.
fn check_signer(cert: &X509Ref) -> Result<(), String> {
    let der = cert.to_der().map_err(|e| reasons(&e))?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| e.to_string())?;
    let is_ca = match cert.basic_constraints() {
        Ok(Some(constraints)) => constraints.value.ca,
        _ => {
            let v1_root = cert.version() == X509Version::V1 && cert.subject() == cert.issuer();
            let signs_certificates =
                matches!(cert.key_usage(), Ok(Some(ku)) if ku.value.key_cert_sign());
            v1_root || signs_certificates
        }
    };
    if is_ca {
        return Err("a CA certificate cannot sign packages".to_owned());
    }
    let usage = match cert.extended_key_usage() {
        Ok(Some(eku)) => eku.value.clone(),
        _ => return Err("the certificate has no extended key usage".to_owned()),
    };
    let exact = usage.code_signing
        && usage.email_protection
        && !(usage.any
            || usage.server_auth
            || usage.client_auth
            || usage.time_stamping
            || usage.ocsp_signing);
    if !exact {
        return Err(
            "the certificate's extended key usage must be code signing and email protection"
                .to_owned(),
        );
    }
    Ok(())
}

/// OpenSSL's reasons, on one line.
fn reasons(stack: &ErrorStack) -> String {
    let mut out: Vec<String> = Vec::new();
    for error in stack.errors() {
        let text = match (error.reason(), error.data()) {
            (Some(reason), Some(data)) => format!("{reason} ({data})"),
            (Some(reason), None) => reason.to_owned(),
            (None, Some(data)) => data.to_owned(),
            (None, None) => format!("error {:#x}", error.code()),
        };
        if !out.contains(&text) {
            out.push(text);
        }
    }
    if out.is_empty() {
        return "unknown OpenSSL error".to_owned();
    }
    out.join("; ")
}
