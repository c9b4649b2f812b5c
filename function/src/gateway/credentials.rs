//! Who may read a private repository through the gateway: HTTP Basic
//! credentials checked against a file of bcrypt or Argon2 hashes, one
//! `user:hash` per line (`#` comments and blank lines allowed), as
//! `htpasswd -B` or `argon2` write them.
//!
//! Each check of a password costs a slow hash on purpose, so a credential
//! that was admitted once is remembered by the SHA-256 of its header (a
//! bounded set) and at most two checks per CPU run at a time; a wrong one
//! is never remembered. An unknown user costs a hash too, so timing does
//! not tell which users exist.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use argon2::{Argon2, PasswordVerifier};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::config::read_small_file;
use crate::serve::auth::basic_credentials;

/// Admitted credentials remembered at most.
const REMEMBERED: usize = 10_000;

/// Largest credentials file read.
const FILE_LIMIT: u64 = 1 << 20;

/// A hash checked for unknown users: bcrypt, cost 10 (what `htpasswd -B`
/// uses), of a password nobody knows; made once per process.
fn dummy() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let password: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(32)
            .collect();
        bcrypt::hash(password, 10).unwrap_or_default()
    })
}

/// A credentials file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {why}")]
    Line {
        path: String,
        line: usize,
        why: &'static str,
    },
    #[error("{path} names no user")]
    Empty { path: String },
}

/// The users and their password hashes.
pub struct Credentials {
    users: BTreeMap<String, String>,
    admitted: Mutex<HashSet<[u8; 32]>>,
    checks: Arc<Semaphore>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("users", &self.users.len())
            .finish()
    }
}

impl Credentials {
    /// Reads `user:hash` lines from `path` (at most 1 MiB).
    pub fn from_file(path: &Path) -> Result<Credentials, CredentialsError> {
        let shown = path.display().to_string();
        let read = |source| CredentialsError::Read {
            path: shown.clone(),
            source,
        };
        let bytes = read_small_file(path, FILE_LIMIT).map_err(read)?;
        let text = String::from_utf8(bytes)
            .map_err(|e| read(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        Credentials::parse(&text, &shown)
    }

    /// Parses the file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Credentials, CredentialsError> {
        let mut users = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why| CredentialsError::Line {
                path: path.to_owned(),
                line: i + 1,
                why,
            };
            let (user, hash) = line.split_once(':').ok_or_else(|| bad("not user:hash"))?;
            if user.is_empty() {
                return Err(bad("an empty user name"));
            }
            if !is_bcrypt(hash) && !hash.starts_with("$argon2") {
                return Err(bad(
                    "the hash is neither bcrypt ($2b$...) nor Argon2 ($argon2id$...)",
                ));
            }
            if users.insert(user.to_owned(), hash.to_owned()).is_some() {
                return Err(bad("a user named twice"));
            }
        }
        if users.is_empty() {
            return Err(CredentialsError::Empty {
                path: path.to_owned(),
            });
        }
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Credentials {
            users,
            admitted: Mutex::new(HashSet::new()),
            checks: Arc::new(Semaphore::new(2 * parallel)),
        })
    }

    /// Whether the request's `Authorization: Basic` names a user with the
    /// right password.
    pub async fn admit(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return false;
        };
        let seen: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        if self.remembered(&seen) {
            return true;
        }
        let Some((user, password)) = basic(value.as_bytes()) else {
            return false;
        };
        let hash = self.users.get(&user).cloned();
        let Ok(_permit) = self.checks.clone().acquire_owned().await else {
            return false;
        };
        let known = hash.is_some();
        let good = tokio::task::spawn_blocking(move || match &hash {
            Some(hash) => check(&password, hash),
            None => check(&password, dummy()),
        })
        .await
        .unwrap_or(false);
        if good && known {
            self.remember(seen);
        }
        good && known
    }

    fn remembered(&self, seen: &[u8; 32]) -> bool {
        self.admitted.lock().is_ok_and(|set| set.contains(seen))
    }

    fn remember(&self, seen: [u8; 32]) {
        if let Ok(mut set) = self.admitted.lock() {
            if set.len() >= REMEMBERED {
                set.clear();
            }
            set.insert(seen);
        }
    }
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
}

/// Whether `password` matches `hash`.
fn check(password: &[u8], hash: &str) -> bool {
    if is_bcrypt(hash) {
        bcrypt::verify(password, hash).unwrap_or(false)
    } else {
        Argon2::default().verify_password(password, hash).is_ok()
    }
}

/// The user (as text) and password of `Basic base64(user:password)`.
fn basic(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let (user, password) = basic_credentials(value)?;
    Some((String::from_utf8(user).ok()?, password))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn bad_lines_are_named() {
        let err = Credentials::parse("# users\n\nalice\n", "creds").unwrap_err();
        assert_eq!(err.to_string(), "creds line 3: not user:hash");
        let err = Credentials::parse("bob:plain\n", "creds").unwrap_err();
        assert_eq!(
            err.to_string(),
            "creds line 1: the hash is neither bcrypt ($2b$...) nor Argon2 ($argon2id$...)"
        );
        let err = Credentials::parse("# nobody\n", "creds").unwrap_err();
        assert_eq!(err.to_string(), "creds names no user");
    }

    #[test]
    fn basic_headers_are_split_at_the_first_colon() {
        let value = format!("Basic {}", STANDARD.encode("ann:pa:ss"));
        assert_eq!(
            basic(value.as_bytes()),
            Some(("ann".to_owned(), b"pa:ss".to_vec()))
        );
        assert_eq!(basic(b"Bearer abc"), None);
        assert_eq!(basic(b"Basic !!!"), None);
    }

    #[test]
    fn the_dummy_hash_is_a_bcrypt_hash() {
        assert_eq!(bcrypt::verify("anything", dummy()).ok(), Some(false));
    }
}
