//! Who may post notifications: one shared secret, accepted in each form a
//! store can send it.
//!
//! - `Authorization: Bearer SECRET` (MinIO's `auth_token`, SeaweedFS's
//!   `bearer_token`);
//! - HTTP Basic with SECRET as the password (a push endpoint URL with
//!   `user:SECRET@`);
//! - a secret path, `/hook/SECRET` (Ceph RGW's push endpoint sends no
//!   header of its own).
//!
//! Comparisons take the same time whatever the bytes (only the length can
//! tell), and the secret is never printed: it has no `Debug` of its own.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

use crate::http::{basic_credentials, split_scheme};

/// The path under which the secret may be given as the last segment.
pub const HOOK_PATH: &str = "/hook/";

/// The shared secret.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A secret that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret is empty")]
    Empty,
    #[error("the secret holds whitespace or a control character; use printable characters")]
    Unprintable,
}

impl Secret {
    /// A secret from its text, as written in a file or the environment:
    /// surrounding whitespace (a file's last newline) is not part of it.
    /// It must be printable without spaces, to fit in a header and a path.
    pub fn new(text: &str) -> Result<Secret, SecretError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SecretError::Unprintable);
        }
        Ok(Secret(text.as_bytes().to_vec()))
    }

    fn matches(&self, given: &[u8]) -> bool {
        self.0.ct_eq(given).into()
    }

    /// Whether a request with these headers, to this path, carries the
    /// secret in any of the accepted forms.
    pub fn admits(&self, headers: &HeaderMap, path: &str) -> bool {
        let in_path = path
            .strip_prefix(HOOK_PATH)
            .is_some_and(|token| self.matches(token.trim_end_matches('/').as_bytes()));
        let in_header = headers
            .get_all(AUTHORIZATION)
            .iter()
            .any(|value| self.admits_header(value.as_bytes()));
        in_path | in_header
    }

    fn admits_header(&self, value: &[u8]) -> bool {
        let Some((scheme, credentials)) = split_scheme(value) else {
            return false;
        };
        if scheme.eq_ignore_ascii_case(b"bearer") {
            return self.matches(credentials);
        }
        basic_credentials(value).is_some_and(|(_, password)| self.matches(&password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn every_form_of_the_secret_is_admitted() {
        let secret = Secret::new("s3cr3t-token\n").unwrap();
        assert!(secret.admits(&headers("Bearer s3cr3t-token"), "/"));
        assert!(secret.admits(&headers("bearer  s3cr3t-token"), "/any/path"));
        let basic = STANDARD.encode("rgw:s3cr3t-token");
        assert!(secret.admits(&headers(&format!("Basic {basic}")), "/"));
        assert!(secret.admits(&HeaderMap::new(), "/hook/s3cr3t-token"));
        assert!(secret.admits(&HeaderMap::new(), "/hook/s3cr3t-token/"));
    }

    #[test]
    fn anything_else_is_refused() {
        let secret = Secret::new("s3cr3t-token").unwrap();
        assert!(!secret.admits(&HeaderMap::new(), "/"));
        assert!(!secret.admits(&headers("Bearer s3cr3t-toke"), "/"));
        assert!(!secret.admits(&headers("Bearer s3cr3t-token2"), "/"));
        assert!(!secret.admits(&headers("Token s3cr3t-token"), "/"));
        let user_only = STANDARD.encode("s3cr3t-token");
        assert!(!secret.admits(&headers(&format!("Basic {user_only}")), "/"));
        assert!(!secret.admits(&headers("Basic !!!"), "/"));
        assert!(!secret.admits(&HeaderMap::new(), "/hook/wrong"));
        assert!(!secret.admits(&HeaderMap::new(), "/s3cr3t-token"));
    }

    #[test]
    fn unusable_secrets_are_refused_and_never_printed() {
        assert_eq!(Secret::new(" \n").unwrap_err(), SecretError::Empty);
        assert_eq!(Secret::new("a b").unwrap_err(), SecretError::Unprintable);
        let secret = Secret::new("hidden-value").unwrap();
        assert!(!format!("{secret:?}").contains("hidden"));
    }
}
