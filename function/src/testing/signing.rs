//! Keys, certificates and signed packages made on the spot, as pkg_admin
//! would make them: `gpg-sign-package` (a detached OpenPGP signature over
//! `+PKG_HASH`) and `x509-sign-package` (PKCS#7, detached, no attributes,
//! binary, PEM).

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use pgp::composed::{
    ArmorOptions, DetachedSignature, KeyType, SecretKeyParamsBuilder, SignedPublicKey,
    SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::types::Password;

use crate::create::{self, Signature};

/// An OpenPGP key pair (Ed25519: quick to make in a debug build).
pub struct GpgKey {
    secret: SignedSecretKey,
}

impl GpgKey {
    pub fn new(user_id: &str) -> GpgKey {
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .primary_user_id(user_id.to_owned());
        let secret = params
            .build()
            .expect("key parameters")
            .generate(rand::thread_rng())
            .expect("an OpenPGP key");
        GpgKey { secret }
    }

    /// The public key, armored: a keyring of one.
    pub fn public_armored(&self) -> Vec<u8> {
        SignedPublicKey::from(self.secret.clone())
            .to_armored_bytes(ArmorOptions::default())
            .expect("armoring a public key")
    }

    /// An armored detached signature over `data`, as `gpg --detach-sign
    /// --armor` makes it.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        DetachedSignature::sign_binary_data(
            rand::thread_rng(),
            &self.secret.primary_key,
            &Password::empty(),
            HashAlgorithm::Sha512,
            data,
        )
        .expect("an OpenPGP signature")
        .to_armored_bytes(ArmorOptions::default())
        .expect("armoring a signature")
    }

    /// `text` as a clear-signed message, as `gpg --clearsign` makes it
    /// (how pkgsrc signs `pkg-vulnerabilities`).
    pub fn clearsign(&self, text: &str) -> String {
        pgp::composed::CleartextSignedMessage::sign(
            rand::thread_rng(),
            text,
            &self.secret.primary_key,
            &Password::empty(),
        )
        .expect("a clear-signed message")
        .to_armored_string(ArmorOptions::default())
        .expect("armoring a clear-signed message")
    }
}

/// What a certificate is made to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `CA:TRUE`, keyCertSign: a trust anchor. It may also sign data,
    /// for code and mail, so only pkg_add's own rule (no CA signs
    /// packages) refuses it as a signer.
    Ca,
    /// Code signing + email protection, not a CA: what pkg_add accepts.
    Signer,
    /// Email protection only.
    MailOnly,
}

/// A certificate with its private key.
pub struct Cert {
    pub cert: X509,
    key: PKey<Private>,
}

impl Cert {
    /// A self-signed CA, valid from yesterday for a year.
    pub fn ca(name: &str) -> Cert {
        Cert::make(name, Role::Ca, None, false)
    }

    /// A certificate for `name` issued by this CA; `expired` makes one
    /// whose validity ended yesterday.
    pub fn issue(&self, name: &str, role: Role, expired: bool) -> Cert {
        Cert::make(name, role, Some(self), expired)
    }

    fn make(name: &str, role: Role, issuer: Option<&Cert>, expired: bool) -> Cert {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
        let key = PKey::from_ec_key(EcKey::generate(&group).expect("an EC key")).expect("a key");
        let mut subject = X509NameBuilder::new().expect("a name");
        subject
            .append_entry_by_text("O", "pkgsum tests")
            .expect("O");
        subject.append_entry_by_text("CN", name).expect("CN");
        let subject = subject.build();
        let mut builder = X509Builder::new().expect("a certificate");
        builder.set_version(2).expect("v3");
        let serial = BigNum::from_u32(fastrand::u32(1..)).expect("a serial");
        let serial = Asn1Integer::from_bn(&serial).expect("a serial");
        builder.set_serial_number(&serial).expect("serial");
        builder.set_subject_name(&subject).expect("subject");
        let issuer_name = issuer.map_or(&*subject, |i| i.cert.subject_name());
        builder.set_issuer_name(issuer_name).expect("issuer");
        builder.set_pubkey(&key).expect("public key");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_secs() as i64;
        let (from, to) = if expired {
            (now - 30 * 86_400, now - 86_400)
        } else {
            (now - 86_400, now + 365 * 86_400)
        };
        let time = |t: i64| Asn1Time::from_unix(t).expect("a time");
        builder.set_not_before(&time(from)).expect("not before");
        builder.set_not_after(&time(to)).expect("not after");
        let mut usage = KeyUsage::new();
        usage.digital_signature();
        if role == Role::Ca {
            builder
                .append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
                .expect("bc");
            usage.key_cert_sign().crl_sign();
        }
        builder
            .append_extension(usage.build().expect("key usage"))
            .expect("key usage");
        let mut extended = ExtendedKeyUsage::new();
        if role != Role::MailOnly {
            extended.code_signing();
        }
        extended.email_protection();
        builder
            .append_extension(extended.build().expect("eku"))
            .expect("eku");
        let signing_key = issuer.map_or(&key, |i| &i.key);
        builder
            .sign(signing_key, MessageDigest::sha256())
            .expect("signing a certificate");
        Cert {
            cert: builder.build(),
            key,
        }
    }

    pub fn pem(&self) -> Vec<u8> {
        self.cert.to_pem().expect("PEM")
    }

    /// A PKCS#7 signature over `data` as pkg_admin makes it: detached, no
    /// attributes, binary, PEM.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        let flags = Pkcs7Flags::DETACHED | Pkcs7Flags::NOATTR | Pkcs7Flags::BINARY;
        let chain = Stack::new().expect("a stack");
        Pkcs7::sign(&self.cert, &self.key, &chain, data, flags)
            .expect("a PKCS#7 signature")
            .to_pem()
            .expect("PEM")
    }
}

/// How a test package is signed.
pub enum Signer<'a> {
    Gpg(&'a GpgKey),
    X509(&'a Cert),
}

/// The package `inner` signed by `signer`, with `+PKG_HASH` naming
/// `pkgname` (normally the inner package's own).
pub fn signed_package(inner: &[u8], pkgname: &str, signer: Signer<'_>) -> Vec<u8> {
    let hash = create::pkg_hash(pkgname, inner);
    let (kind, signature) = match signer {
        Signer::Gpg(key) => (Signature::Gpg, key.sign(&hash)),
        Signer::X509(cert) => (Signature::X509, cert.sign(&hash)),
    };
    let inner_name = format!("{pkgname}.tgz");
    create::wrap(&hash, kind, &signature, &inner_name, inner).expect("an ar archive")
}
