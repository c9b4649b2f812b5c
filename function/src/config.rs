//! The settings every entry point shares, read in one place: the CLI's
//! commands, the Lambda function and `pkgsum poll` all take a [`Config`]
//! from the `PKGSUM_*` environment variables, and command-line flags
//! override it only where they are given.

use std::sync::Arc;
use std::time::Duration;

use crate::compression::Compression;
use crate::fetch::FetchOptions;
use crate::gate::{Gates, Unresolved};
use crate::keys::is_package_key;
use crate::select::Select;
use crate::settings;
use crate::trust::{Policy, Trust};
use crate::{state, summary};

/// How passes behave.
#[derive(Debug, Clone)]
pub struct Config {
    /// Key suffixes that are packages.
    pub suffixes: Vec<String>,
    /// Summary formats to publish; pkgin's others are removed.
    pub formats: Vec<Compression>,
    pub fetch: FetchOptions,
    /// Commit attempts before giving up on a contended state.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with full jitter.
    pub backoff: Duration,
    /// Most packages one repository may hold.
    pub max_records: usize,
    /// Bound on the decoded size of a stored state.
    pub state_limit: u64,
    /// HEADs and header fetches in flight at once.
    pub concurrency: usize,
    /// Whether a pass over a listing that finds no package at all may
    /// publish an empty summary (`PKGSUM_ALLOW_EMPTY`, `--allow-empty`).
    pub allow_empty: bool,
    /// `s3://bucket/prefix/` repositories the scheduled reconcile covers
    /// when its payload names none (`PKGSUM_REPOSITORIES`).
    pub repositories: Vec<String>,
    /// The signature policy and its keys (`PKGSUM_SIGNATURES`,
    /// `PKGSUM_GPG_KEYRING`, `PKGSUM_X509_ANCHORS`).
    pub trust: Arc<Trust>,
    /// Whether a signed package is read whole to check every block of its
    /// inner package against `+PKG_HASH` (`PKGSUM_VERIFY_PAYLOAD`).
    pub verify_payload: bool,
    /// What a summary lists, and what keeps it from being published
    /// (`PKGSUM_SELECT`, `PKGSUM_MAX_SHRINK`, `PKGSUM_REQUIRED`,
    /// `PKGSUM_UNRESOLVED`).
    pub gates: Gates,
    /// Published generations whose summaries are kept for `pkgsum
    /// rollback` (`PKGSUM_HISTORY`; 0 keeps none).
    pub history: usize,
    /// How long a release may wait for its members before it is reported
    /// as incomplete (`PKGSUM_RELEASE_TIMEOUT`).
    pub release_timeout: Duration,
    /// Retention (`PKGSUM_PRUNE_KEEP`, `PKGSUM_PRUNE_OLDER_THAN`,
    /// `PKGSUM_PRUNE_GRACE`): `pkgsum prune`'s defaults, and what the
    /// scheduled reconcile prunes when a rule is set.
    pub prune: crate::prune::PruneOptions,
    /// The keys `pkg-vulnerabilities` must be signed by
    /// (`PKGSUM_VULN_KEYRING`); none: its checksum alone is checked.
    pub vulnerability_keys: Option<Arc<Trust>>,
    /// Whether the browsable site is published with each generation
    /// (`PKGSUM_SITE`).
    pub site: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            suffixes: vec![".tgz".to_owned()],
            formats: summary::DEFAULT_FORMATS.to_vec(),
            fetch: FetchOptions::default(),
            max_attempts: 10,
            backoff: Duration::from_millis(50),
            max_records: 200_000,
            state_limit: state::DEFAULT_STATE_LIMIT,
            concurrency: 16,
            allow_empty: false,
            repositories: Vec::new(),
            trust: Arc::new(Trust::ignore()),
            verify_payload: false,
            gates: Gates::default(),
            history: 50,
            release_timeout: Duration::from_secs(3600),
            prune: crate::prune::PruneOptions::default(),
            vulnerability_keys: None,
            site: true,
        }
    }
}

impl Config {
    /// The configuration from the `PKGSUM_*` environment variables of
    /// [`settings::SETTINGS`]: the one place every entry point (the CLI's
    /// commands, the Lambda function) reads its settings, so all behave the
    /// same; command-line flags override them only when given.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Config::from_env`] over any variable lookup (testable).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let bad = |name: &'static str, value: &str, expected: &str| ConfigError {
            name,
            value: value.to_owned(),
            expected: expected.to_owned(),
        };
        let number = |name: &'static str| -> Result<Option<u64>, ConfigError> {
            var(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| bad(name, &v, "a number"))
                })
                .transpose()
        };
        if let Some(list) = var(settings::SUFFIXES).filter(|v| !v.trim().is_empty()) {
            config.suffixes = list
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(list) = var(settings::FORMATS).filter(|v| !v.trim().is_empty()) {
            config.formats = list
                .split(',')
                .map(|f| match f.trim() {
                    "gz" | "gzip" => Ok(Compression::Gzip),
                    "bz2" | "bzip2" => Ok(Compression::Bzip2),
                    "xz" => Ok(Compression::Xz),
                    "zst" | "zstd" => Ok(Compression::Zstd),
                    _ => Err(bad(settings::FORMATS, &list, "a list of gz, bz2, xz, zst")),
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(n) = number(settings::FETCH_INITIAL)? {
            config.fetch.initial = n;
        }
        if let Some(n) = number(settings::METADATA_LIMIT)? {
            config.fetch.limits.metadata = n;
        }
        if let Some(n) = number(settings::PKG_HASH_LIMIT)? {
            config.fetch.limits.pkg_hash = n;
        }
        if let Some(n) = number(settings::RECORD_LIMIT)? {
            config.fetch.limits.record = n;
        }
        if let Some(n) = number(settings::STREAM_LIMIT)? {
            config.fetch.limits.streams = n.clamp(1, u64::from(u32::MAX)) as u32;
        }
        if let Some(n) = number(settings::STATE_LIMIT)? {
            config.state_limit = n;
        }
        if let Some(n) = number(settings::MAX_ATTEMPTS)? {
            config.max_attempts = n.clamp(1, 100) as u32;
        }
        if let Some(n) = number(settings::MAX_RECORDS)? {
            config.max_records = n as usize;
        }
        let duration = |name: &'static str| -> Result<Option<Duration>, ConfigError> {
            let Some(value) = var(name).filter(|v| !v.trim().is_empty()) else {
                return Ok(None);
            };
            let text = value.trim();
            let parsed = match text.parse::<u64>() {
                Ok(seconds) => Ok(Duration::from_secs(seconds)),
                Err(_) => humantime::parse_duration(text),
            };
            parsed
                .map(Some)
                .map_err(|_| bad(name, &value, "seconds, or a duration such as 1h or 30m"))
        };
        if let Some(timeout) = duration(settings::RELEASE_TIMEOUT)? {
            config.release_timeout = timeout;
        }
        if let Some(n) = number(settings::PRUNE_KEEP)? {
            config.prune.rules.keep = (n > 0).then_some(n.min(100_000) as usize);
        }
        if let Some(age) = duration(settings::PRUNE_OLDER_THAN)? {
            config.prune.rules.older_than = Some(age.as_secs());
        }
        if let Some(grace) = duration(settings::PRUNE_GRACE)? {
            config.prune.grace = grace;
        }
        if let Some(n) = number(settings::HISTORY)? {
            config.history = n.min(100_000) as usize;
        }
        if let Some(n) = number(settings::CONCURRENCY)? {
            config.concurrency = n.clamp(1, 1024) as usize;
        }
        let flag = |name: &'static str| -> Result<Option<bool>, ConfigError> {
            let Some(value) = var(name).filter(|v| !v.trim().is_empty()) else {
                return Ok(None);
            };
            match value.trim() {
                "1" | "true" | "yes" => Ok(Some(true)),
                "0" | "false" | "no" => Ok(Some(false)),
                _ => Err(bad(name, &value, "1 or 0")),
            }
        };
        if let Some(on) = flag(settings::ALLOW_EMPTY)? {
            config.allow_empty = on;
        }
        if let Some(on) = flag(settings::SITE)? {
            config.site = on;
        }
        if let Some(on) = flag(settings::VERIFY_PAYLOAD)? {
            config.verify_payload = on;
        }
        if let Some(list) = var(settings::REPOSITORIES) {
            config.repositories = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        config.trust = Arc::new(trust_from_vars(&var)?);
        if let Some(keys) = key_material(&var, settings::VULN_KEYRING)? {
            let trust =
                Trust::new(Policy::Check, Some(&keys), None).map_err(|err| ConfigError {
                    name: settings::VULN_KEYRING,
                    value: var(settings::VULN_KEYRING).unwrap_or_default(),
                    expected: format!("an OpenPGP keyring ({err})"),
                })?;
            config.vulnerability_keys = Some(Arc::new(trust));
        }
        config.gates = gates_from_vars(&var)?;
        if config.suffixes.is_empty() {
            let value = var(settings::SUFFIXES).unwrap_or_default();
            return Err(bad(settings::SUFFIXES, &value, "at least one suffix"));
        }
        Ok(config)
    }
}

/// A `PKGSUM_*` setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?}: expected {expected}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub expected: String,
}

/// The publish gates.
fn gates_from_vars(var: &impl Fn(&str) -> Option<String>) -> Result<Gates, ConfigError> {
    let mut gates = Gates::default();
    let given = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let bad = |name: &'static str, value: String, expected: &str| ConfigError {
        name,
        value,
        expected: expected.to_owned(),
    };
    if let Some(value) = given(settings::SELECT) {
        gates.select = value
            .trim()
            .parse::<Select>()
            .map_err(|_| bad(settings::SELECT, value.clone(), "all or newest"))?;
    }
    if let Some(value) = given(settings::MAX_SHRINK) {
        let percent = value.trim().trim_end_matches('%');
        gates.max_shrink = percent
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| {
                bad(
                    settings::MAX_SHRINK,
                    value.clone(),
                    "a percentage, 0 to 100",
                )
            })?;
    }
    if let Some(value) = given(settings::REQUIRED) {
        gates.required = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(value) = given(settings::UNRESOLVED) {
        gates.unresolved = value
            .trim()
            .parse::<Unresolved>()
            .map_err(|()| bad(settings::UNRESOLVED, value.clone(), "warn or hold"))?;
    }
    Ok(gates)
}

/// The signature policy and the keys it names.
fn trust_from_vars(var: &impl Fn(&str) -> Option<String>) -> Result<Trust, ConfigError> {
    let value = var(settings::SIGNATURES).unwrap_or_default();
    let policy = match value.trim() {
        "" => Policy::Ignore,
        v => v.parse::<Policy>().map_err(|()| ConfigError {
            name: settings::SIGNATURES,
            value: value.clone(),
            expected: "ignore, check or require".to_owned(),
        })?,
    };
    let keyring = key_material(var, settings::GPG_KEYRING)?;
    let anchors = key_material(var, settings::X509_ANCHORS)?;
    Trust::new(policy, keyring.as_deref(), anchors.as_deref()).map_err(|err| ConfigError {
        name: settings::SIGNATURES,
        value,
        expected: format!("usable keys ({err})"),
    })
}

/// A keyring or anchors: the text itself when it starts as armor or PEM
/// does, else a file to read (bounded: key files are small).
fn key_material(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<Vec<u8>>, ConfigError> {
    const LIMIT: u64 = 4 << 20;
    let Some(value) = var(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    if value.trim_start().starts_with("-----BEGIN") {
        return Ok(Some(value.into_bytes()));
    }
    read_small_file(std::path::Path::new(value.trim()), LIMIT)
        .map(Some)
        .map_err(|e| ConfigError {
            name,
            value: value.clone(),
            expected: format!("a key file or armored text ({e})"),
        })
}

/// A small settings file (keys, credentials) read whole; one larger than
/// `limit` bytes is refused rather than cut.
pub(crate) fn read_small_file(path: &std::path::Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        let why = format!("larger than {limit} bytes");
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
    }
    Ok(bytes)
}

impl Config {
    /// What the verdicts and payload failures of a state depend on: the
    /// signature policy with its keys, and whether payloads are checked.
    /// A state judged under another is judged again.
    pub fn judgement(&self) -> String {
        let payload = if self.verify_payload { "+payload" } else { "" };
        format!("{}{payload}", self.trust.fingerprint())
    }

    /// Whether an event on `key` concerns a package. Keys with control
    /// characters or dot segments never do. Hidden files (`.x.tgz`)
    /// never do: pkgsrc never names a package so, upload tools use such
    /// names for partial files, `pkg_info -X *.tgz` skips them, and pkgin
    /// could not install one (it fetches `PKGNAME.tgz`).
    pub fn wants(&self, key: &str) -> bool {
        let suffixes: Vec<&str> = self.suffixes.iter().map(String::as_str).collect();
        is_package_key(key, &suffixes)
    }
}

impl Config {
    /// The repositories events may name, as (bucket, prefix), from
    /// `PKGSUM_REPOSITORIES`; `None` when it names none (every repository
    /// a key's prefix makes is served). A deployment sets it, so an upload
    /// to `PREFIX/sub/x.tgz` never makes a repository of `PREFIX/sub/`.
    pub fn allowed_repositories(&self) -> Option<std::collections::BTreeSet<(String, String)>> {
        let allowed: std::collections::BTreeSet<(String, String)> = self
            .repositories
            .iter()
            .filter_map(|url| crate::store::open::parse_s3_url(url).ok())
            .collect();
        (!allowed.is_empty()).then_some(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_keys_are_packages() {
        // L5: a SeaweedFS rename to `../../x.tgz` made pkgsum GET outside
        // its prefix; a NUL or a newline reaches no store and forges logs.
        let config = Config::default();
        for key in [
            "All/a-1.tgz",
            "a-1.tgz",
            "deep/er/a-1.tgz",
            "All/pkg_summary-utils-1.tgz",
        ] {
            assert!(config.wants(key), "{key}");
        }
        for key in [
            "All/../../x.tgz",
            "../x.tgz",
            "All/./x.tgz",
            "All//x.tgz",
            "/x.tgz",
            "All/a\0b.tgz",
            "All/a\nINFO b.tgz",
            "All/pkg_summary.gz",
            "All/.pkgsum/x.tgz",
        ] {
            assert!(!config.wants(key), "{key:?}");
        }
    }

    #[test]
    fn the_repositories_setting_is_the_allow_list() {
        let vars = |name: &str| {
            (name == settings::REPOSITORIES).then(|| "s3://b/All/, s3://c, bad".to_owned())
        };
        let allowed = Config::from_vars(vars)
            .unwrap()
            .allowed_repositories()
            .unwrap();
        let want = [
            ("b".to_owned(), "All/".to_owned()),
            ("c".to_owned(), String::new()),
        ];
        assert_eq!(allowed, want.into_iter().collect());
        assert_eq!(Config::default().allowed_repositories(), None);
    }

    #[test]
    fn publishing_settings_are_read_and_bounded() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let config = Config::from_vars(vars(&[
            (settings::SELECT, "newest"),
            (settings::MAX_SHRINK, "40%"),
            (settings::REQUIRED, " pkgin, pkg_install ,"),
            (settings::UNRESOLVED, "hold"),
            (settings::RELEASE_TIMEOUT, "2h30m"),
            (settings::HISTORY, "7"),
            (settings::PRUNE_KEEP, "3"),
            (settings::PRUNE_OLDER_THAN, "90d"),
            (settings::PRUNE_GRACE, "7d"),
        ]))
        .unwrap();
        assert_eq!(config.prune.rules.keep, Some(3));
        assert_eq!(config.prune.rules.older_than, Some(90 * 86_400));
        assert_eq!(config.prune.grace, Duration::from_secs(7 * 86_400));
        assert!(!Config::default().prune.is_set());
        assert_eq!(config.gates.select, Select::Newest);
        assert_eq!(config.gates.max_shrink, 40);
        assert_eq!(config.gates.required, ["pkgin", "pkg_install"]);
        assert_eq!(config.gates.unresolved, Unresolved::Hold);
        assert_eq!(config.release_timeout, Duration::from_secs(9000));
        assert_eq!(config.history, 7);
        let seconds = Config::from_vars(vars(&[(settings::RELEASE_TIMEOUT, "90")])).unwrap();
        assert_eq!(seconds.release_timeout, Duration::from_secs(90));
        for (name, value) in [
            (settings::SELECT, "oldest"),
            (settings::MAX_SHRINK, "101"),
            (settings::UNRESOLVED, "ignore"),
            (settings::RELEASE_TIMEOUT, "soon"),
            (settings::PRUNE_KEEP, "two"),
            (settings::PRUNE_GRACE, "a month"),
        ] {
            let pairs: &'static [(&'static str, &'static str)] =
                Box::leak(Box::new([(name, value)]));
            let err = Config::from_vars(vars(pairs)).unwrap_err();
            assert_eq!(err.name, name, "{err}");
        }
    }

    #[test]
    fn the_settings_read_are_the_ones_defined() {
        // What Config reads is what the table says the function honours,
        // but for the store's path-style setting, which the S3 client
        // reads.
        let asked = std::sync::Mutex::new(std::collections::BTreeSet::new());
        Config::from_vars(|name| {
            asked.lock().unwrap().insert(name.to_owned());
            None
        })
        .unwrap();
        let defined: std::collections::BTreeSet<String> = settings::honoured_by("lambda")
            .map(|s| s.name.to_owned())
            .filter(|name| name != settings::FORCE_PATH_STYLE)
            .collect();
        assert_eq!(asked.into_inner().unwrap(), defined);
    }

    #[test]
    fn no_setting_is_named_outside_the_table() {
        // Every PKGSUM_ name in the code is one of the table's: a setting
        // read somewhere else would be missing from every --help.
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let known: Vec<&str> = settings::SETTINGS.iter().map(|s| s.name).collect();
        let mut files = vec![src];
        while let Some(path) = files.pop() {
            // The test kit's own settings (where the test stores are)
            // are not pkgsum's.
            if path.ends_with("testing") {
                continue;
            }
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices("PKGSUM_") {
                let name: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                // A `PKGSUM_*` in prose names them all.
                assert!(
                    name == "PKGSUM_" || known.contains(&name.as_str()),
                    "{name} in {} is not in settings::SETTINGS",
                    path.display()
                );
            }
        }
    }
}
