//! Who may read a private repository through the gateway: HTTP Basic
//! credentials checked against a file of bcrypt or Argon2 hashes, one
//! `user:hash` per line (`#` comments and blank lines allowed), as
//! `htpasswd -B` or `argon2` write them.
//!
//! The file is parsed and bounded when it is loaded: every hash must parse
//! (bcrypt `$2a$`/`$2b$`/`$2y$`, Argon2 in PHC form), and its cost must be
//! one a check can afford (bcrypt cost at most [`MAX_BCRYPT_COST`], Argon2
//! at most [`MAX_ARGON2_KIB`] KiB and [`MAX_ARGON2_PASSES`] passes), since
//! the file decides what each login costs; a byte-order mark is skipped.
//!
//! Each check of a password costs a slow hash on purpose, so a credential
//! that was admitted once is remembered by the SHA-256 of its header (a
//! bounded set) and at most two checks per CPU run at a time; a wrong one
//! is never remembered. A check waits at most [`CHECK_WAIT`] for its turn,
//! and at most [`WAITING_PER_CHECK`] times as many as run may wait: a flood
//! of bad logins gets quick refusals (503) instead of a queue that makes
//! real ones wait for seconds. An unknown user costs a check of the same
//! algorithm and cost as the file's most common one (against one of its
//! own hashes, the answer thrown away), so timing does not tell which
//! users exist when all users share one algorithm and cost.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::{Argon2, PasswordVerifier};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::config::read_small_file;
use crate::http::basic_credentials;

/// Admitted credentials remembered at most.
const REMEMBERED: usize = 10_000;

/// Largest credentials file read.
const FILE_LIMIT: u64 = 1 << 20;

/// Highest bcrypt cost accepted: each step doubles a check's time (cost
/// 10, `htpasswd -B`'s usual, takes about 70 ms; 14 about a second).
pub const MAX_BCRYPT_COST: u32 = 14;

/// Most memory an Argon2 hash may ask a check for, in KiB (64 MiB; two
/// checks per CPU run at once), and most passes.
pub const MAX_ARGON2_KIB: u32 = 64 << 10;
pub const MAX_ARGON2_PASSES: u32 = 16;
const MAX_ARGON2_LANES: u32 = 8;

/// Longest a check waits for its turn before the request is refused (503).
pub const CHECK_WAIT: Duration = Duration::from_secs(2);

/// Checks that may wait for a turn, per check that may run.
pub const WAITING_PER_CHECK: usize = 4;

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
        why: String,
    },
    #[error("{path} names no user")]
    Empty { path: String },
}

/// The users and their password hashes.
pub struct Credentials {
    users: BTreeMap<String, String>,
    /// A hash of the file's most common algorithm and cost, checked (and
    /// its answer thrown away) for a user the file does not name.
    stand_in: String,
    admitted: Mutex<HashSet<[u8; 32]>>,
    checks: Arc<Semaphore>,
    /// Turns to wait for a check: taken before waiting, so the queue is
    /// bounded.
    waiting: Arc<Semaphore>,
}

/// Why a request's credentials were not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Missing, malformed, an unknown user or a wrong password: 401.
    Wrong,
    /// Too many checks are running or waiting: 503, try again.
    Busy,
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
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut users = BTreeMap::new();
        let mut classes: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| CredentialsError::Line {
                path: path.to_owned(),
                line: i + 1,
                why: why.to_owned(),
            };
            let (user, hash) = line.split_once(':').ok_or_else(|| bad("not user:hash"))?;
            if user.is_empty() {
                return Err(bad("an empty user name"));
            }
            if line.chars().any(char::is_control) {
                return Err(bad("a control character"));
            }
            let class = hash_class(hash).map_err(|why| bad(&why))?;
            if users.insert(user.to_owned(), hash.to_owned()).is_some() {
                return Err(bad("a user named twice"));
            }
            classes.entry(class).or_insert((0, hash.to_owned())).0 += 1;
        }
        let Some((_, (_, stand_in))) = classes.into_iter().max_by_key(|(_, (n, _))| *n) else {
            return Err(CredentialsError::Empty {
                path: path.to_owned(),
            });
        };
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Credentials {
            users,
            stand_in,
            admitted: Mutex::new(HashSet::new()),
            checks: Arc::new(Semaphore::new(2 * parallel)),
            waiting: Arc::new(Semaphore::new(2 * parallel * WAITING_PER_CHECK)),
        })
    }

    /// Whether the request's `Authorization: Basic` names a user with the
    /// right password.
    pub async fn admit(&self, headers: &HeaderMap) -> Result<(), Refused> {
        let value = headers.get(AUTHORIZATION).ok_or(Refused::Wrong)?;
        let seen: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        if self.remembered(&seen) {
            return Ok(());
        }
        let (user, password) = basic(value.as_bytes()).ok_or(Refused::Wrong)?;
        let hash = self.users.get(&user).cloned();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.stand_in.clone());
        let _turn = self
            .waiting
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Busy)?;
        let permit = tokio::time::timeout(CHECK_WAIT, self.checks.clone().acquire_owned());
        let Ok(Ok(_permit)) = permit.await else {
            return Err(Refused::Busy);
        };
        let good = tokio::task::spawn_blocking(move || check(&password, &hash))
            .await
            .unwrap_or(false);
        if good && known {
            self.remember(seen);
            return Ok(());
        }
        Err(Refused::Wrong)
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

/// A hash's algorithm and cost ("bcrypt 10", "argon2id m=19456 t=2 p=1"),
/// or why it cannot be used.
fn hash_class(hash: &str) -> Result<String, String> {
    if is_bcrypt(hash) {
        let parts: bcrypt::HashParts = hash
            .parse()
            .map_err(|_| "a malformed bcrypt hash".to_owned())?;
        let cost = parts.get_cost();
        if cost > MAX_BCRYPT_COST {
            return Err(format!(
                "bcrypt cost {cost} is above {MAX_BCRYPT_COST} (each login would take seconds)"
            ));
        }
        return Ok(format!("bcrypt {cost}"));
    }
    if hash.starts_with("$argon2") {
        let parsed =
            argon2::PasswordHash::new(hash).map_err(|_| "a malformed Argon2 hash".to_owned())?;
        let params = argon2::Params::try_from(&parsed)
            .map_err(|_| "Argon2 parameters out of range".to_owned())?;
        let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
        if m > MAX_ARGON2_KIB || t > MAX_ARGON2_PASSES || p > MAX_ARGON2_LANES {
            return Err(format!(
                "Argon2 m={m} t={t} p={p} asks more than m={MAX_ARGON2_KIB} t={MAX_ARGON2_PASSES} \
                 p={MAX_ARGON2_LANES} (each login would cost that)"
            ));
        }
        return Ok(format!("{} m={m} t={t} p={p}", parsed.algorithm));
    }
    Err("the hash is neither bcrypt ($2b$...) nor Argon2 ($argon2id$...)".to_owned())
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

    fn bcrypt_line(user: &str, cost: u32) -> String {
        format!("{user}:{}\n", bcrypt::hash("secret", cost).unwrap())
    }

    #[test]
    fn hashes_are_parsed_and_bounded_at_load() {
        // L7: malformed hashes and a byte-order mark were accepted (those
        // users could never log in), and costs came from the file.
        let good = format!("\u{feff}{}", bcrypt_line("ann", 4));
        assert!(Credentials::parse(&good, "creds").is_ok());
        let malformed = "bob:$2b$10$tooshort\n";
        let err = Credentials::parse(malformed, "creds").unwrap_err();
        assert_eq!(err.to_string(), "creds line 1: a malformed bcrypt hash");
        let dear = bcrypt_line("cat", 4).replace("$04$", "$20$");
        let err = Credentials::parse(&dear, "creds").unwrap_err();
        assert!(
            err.to_string().contains("bcrypt cost 20 is above 14"),
            "{err}"
        );
        let gig = "dan:$argon2id$v=19$m=1048576,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\n";
        let err = Credentials::parse(gig, "creds").unwrap_err();
        assert!(err.to_string().contains("m=1048576"), "{err}");
        let control = format!("e\x01ve:{}", &bcrypt_line("x", 4)[2..]);
        let err = Credentials::parse(&control, "creds").unwrap_err();
        assert!(err.to_string().ends_with("a control character"), "{err}");
    }

    #[test]
    fn an_unknown_user_costs_a_check_of_the_common_class() {
        // M7: an unknown user cost a cost-10 bcrypt whatever the file held.
        let mut text = bcrypt_line("ann", 4);
        text.push_str(&bcrypt_line("bob", 4));
        text.push_str(&bcrypt_line("cat", 5));
        let creds = Credentials::parse(&text, "creds").unwrap();
        assert!(creds.stand_in.starts_with("$2b$04$"), "{}", creds.stand_in);
        assert_eq!(hash_class(&creds.stand_in).unwrap(), "bcrypt 4");
    }

    #[tokio::test]
    async fn known_unknown_and_busy_answers() {
        let creds = Credentials::parse(&bcrypt_line("ann", 4), "creds").unwrap();
        let header = |user: &str, password: &str| {
            let mut headers = HeaderMap::new();
            let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
            headers.insert(AUTHORIZATION, value.parse().unwrap());
            headers
        };
        assert_eq!(creds.admit(&header("ann", "secret")).await, Ok(()));
        assert_eq!(
            creds.admit(&header("ann", "wrong")).await,
            Err(Refused::Wrong)
        );
        // The stand-in is ann's own hash: her password still admits nobody else.
        assert_eq!(
            creds.admit(&header("zed", "secret")).await,
            Err(Refused::Wrong)
        );
        assert_eq!(creds.admit(&HeaderMap::new()).await, Err(Refused::Wrong));
        // With every turn to wait taken, a new check is refused at once.
        let held: Vec<_> = (0..creds.waiting.available_permits())
            .map(|_| creds.waiting.clone().try_acquire_owned().unwrap())
            .collect();
        assert_eq!(
            creds.admit(&header("ann", "other")).await,
            Err(Refused::Busy)
        );
        drop(held);
    }
}
