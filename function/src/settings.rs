//! Every environment setting pkgsum reads, defined once: its name, its
//! default, what it means and which commands honour it. [`crate::config`]
//! reads them by these names, the CLI's `--help` of each command lists the
//! ones it honours from this table, and `docs/cli.md` is generated from
//! that help, so none of the three can drift from the others.

/// One environment setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    /// The default, as a person writes it.
    pub default: &'static str,
    /// What it sets, in a few words.
    pub meaning: &'static str,
    /// What it is about, which says which commands honour it.
    pub scope: Scope,
}

/// What a setting is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Reading one package's header.
    Read,
    /// Which files are packages.
    Packages,
    /// The repository pass.
    Pass,
    /// Notifications, and the repositories they may name.
    Events,
    /// An S3 store.
    Store,
    /// `pkgsum serve`'s own.
    Serve,
    /// Retention: `pkgsum prune`'s defaults, and the scheduled prune.
    Prune,
    /// The `pkg-vulnerabilities` file.
    Vulnerabilities,
}

pub const SUFFIXES: &str = "PKGSUM_SUFFIXES";
pub const FORMATS: &str = "PKGSUM_FORMATS";
pub const CONCURRENCY: &str = "PKGSUM_CONCURRENCY";
pub const FETCH_INITIAL: &str = "PKGSUM_FETCH_INITIAL";
pub const METADATA_LIMIT: &str = "PKGSUM_METADATA_LIMIT";
pub const PKG_HASH_LIMIT: &str = "PKGSUM_PKG_HASH_LIMIT";
pub const RECORD_LIMIT: &str = "PKGSUM_RECORD_LIMIT";
pub const STREAM_LIMIT: &str = "PKGSUM_STREAM_LIMIT";
pub const STATE_LIMIT: &str = "PKGSUM_STATE_LIMIT";
pub const MAX_ATTEMPTS: &str = "PKGSUM_MAX_ATTEMPTS";
pub const MAX_RECORDS: &str = "PKGSUM_MAX_RECORDS";
pub const ALLOW_EMPTY: &str = "PKGSUM_ALLOW_EMPTY";
pub const REPOSITORIES: &str = "PKGSUM_REPOSITORIES";
pub const SIGNATURES: &str = "PKGSUM_SIGNATURES";
pub const GPG_KEYRING: &str = "PKGSUM_GPG_KEYRING";
pub const X509_ANCHORS: &str = "PKGSUM_X509_ANCHORS";
pub const VERIFY_PAYLOAD: &str = "PKGSUM_VERIFY_PAYLOAD";
pub const SELECT: &str = "PKGSUM_SELECT";
pub const MAX_SHRINK: &str = "PKGSUM_MAX_SHRINK";
pub const REQUIRED: &str = "PKGSUM_REQUIRED";
pub const UNRESOLVED: &str = "PKGSUM_UNRESOLVED";
pub const HISTORY: &str = "PKGSUM_HISTORY";
pub const RELEASE_TIMEOUT: &str = "PKGSUM_RELEASE_TIMEOUT";
pub const VULN_KEYRING: &str = "PKGSUM_VULN_KEYRING";
pub const SITE: &str = "PKGSUM_SITE";
pub const PRUNE_KEEP: &str = "PKGSUM_PRUNE_KEEP";
pub const PRUNE_OLDER_THAN: &str = "PKGSUM_PRUNE_OLDER_THAN";
pub const PRUNE_GRACE: &str = "PKGSUM_PRUNE_GRACE";
pub const AUTH_TOKEN: &str = "PKGSUM_AUTH_TOKEN";
pub const FORCE_PATH_STYLE: &str = "AWS_S3_FORCE_PATH_STYLE";

/// The scopes of the settings each command honours (`lambda` is the
/// function); a command not named honours none.
const COMMANDS: &[(&str, &[Scope])] = {
    use Scope::*;
    &[
        ("record", &[Read]),
        ("index", &[Read, Packages, Pass]),
        ("rebuild", &[Read, Packages, Pass, Store]),
        ("verify", &[Read, Packages, Pass, Store]),
        ("push", &[Read, Packages, Pass, Store]),
        ("hold", &[Pass, Store]),
        ("resume", &[Pass, Store]),
        ("history", &[Store]),
        ("rollback", &[Pass, Store]),
        ("prune", &[Read, Packages, Pass, Store, Prune]),
        ("promote", &[Read, Packages, Pass, Store]),
        ("vulnerabilities", &[Pass, Store, Vulnerabilities]),
        ("audit", &[Pass, Store, Vulnerabilities]),
        ("apply-event", &[Read, Packages, Pass, Events, Store]),
        ("poll", &[Read, Packages, Pass, Events, Store]),
        ("serve", &[Read, Packages, Pass, Events, Store, Serve]),
        ("gateway", &[Packages, Store]),
        (
            "lambda",
            &[Read, Packages, Pass, Events, Store, Prune, Vulnerabilities],
        ),
    ]
};

/// The table. The AWS SDK's own settings (credentials, `AWS_REGION`,
/// `AWS_ENDPOINT_URL`, `AWS_PROFILE`) are the SDK's and not repeated here.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: SUFFIXES,
        default: ".tgz",
        meaning: "comma list of package file suffixes",
        scope: Scope::Packages,
    },
    Setting {
        name: FORMATS,
        default: "gz,bz2,xz",
        meaning: "summaries to publish (add zst for pkgin 26.2 and later)",
        scope: Scope::Pass,
    },
    Setting {
        name: CONCURRENCY,
        default: "16",
        meaning: "header reads in flight",
        scope: Scope::Pass,
    },
    Setting {
        name: FETCH_INITIAL,
        default: "65536",
        meaning: "bytes of a package's first ranged read",
        scope: Scope::Pass,
    },
    Setting {
        name: METADATA_LIMIT,
        default: "67108864",
        meaning: "decompressed metadata bytes read from one package",
        scope: Scope::Read,
    },
    Setting {
        name: PKG_HASH_LIMIT,
        default: "8388608",
        meaning: "bytes of one +PKG_HASH",
        scope: Scope::Read,
    },
    Setting {
        name: RECORD_LIMIT,
        default: "1048576",
        meaning: "bytes of one record",
        scope: Scope::Read,
    },
    Setting {
        name: STREAM_LIMIT,
        default: "64",
        meaning: "concatenated compressed streams in one layer of a package",
        scope: Scope::Read,
    },
    Setting {
        name: STATE_LIMIT,
        default: "67108864",
        meaning: "bytes of the stored state manifest (a larger one is rebuilt)",
        scope: Scope::Pass,
    },
    Setting {
        name: MAX_ATTEMPTS,
        default: "10",
        meaning: "state commit attempts under contention",
        scope: Scope::Pass,
    },
    Setting {
        name: MAX_RECORDS,
        default: "200000",
        meaning: "packages one repository may hold",
        scope: Scope::Pass,
    },
    Setting {
        name: ALLOW_EMPTY,
        default: "0",
        meaning: "1: a listing with no package may publish an empty summary",
        scope: Scope::Pass,
    },
    Setting {
        name: REPOSITORIES,
        default: "(none)",
        meaning: "comma list of s3://BUCKET/PREFIX/: the repositories events may name, and those reconciled",
        scope: Scope::Events,
    },
    Setting {
        name: SIGNATURES,
        default: "ignore",
        meaning: "ignore, check (judge every signature) or require (also leave out packages without a good one)",
        scope: Scope::Pass,
    },
    Setting {
        name: GPG_KEYRING,
        default: "(none)",
        meaning: "OpenPGP public keys: a file, or the armored text",
        scope: Scope::Pass,
    },
    Setting {
        name: X509_ANCHORS,
        default: "(none)",
        meaning: "X.509 trust anchors: a PEM file, or the PEM text",
        scope: Scope::Pass,
    },
    Setting {
        name: VERIFY_PAYLOAD,
        default: "0",
        meaning: "1: read signed packages whole and check every block hash",
        scope: Scope::Pass,
    },
    Setting {
        name: SELECT,
        default: "all",
        meaning: "all, or newest: list only the newest version of each PKGPATH (dewey order)",
        scope: Scope::Pass,
    },
    Setting {
        name: MAX_SHRINK,
        default: "25",
        meaning: "percent of the published packages a summary may drop before it is held, if 10 or more (100: off)",
        scope: Scope::Pass,
    },
    Setting {
        name: REQUIRED,
        default: "(none)",
        meaning: "comma list of PKGBASEs every published summary must list (e.g. pkgin,pkg_install)",
        scope: Scope::Pass,
    },
    Setting {
        name: UNRESOLVED,
        default: "warn",
        meaning: "warn, or hold: keep back a summary with DEPENDS nothing listed satisfies",
        scope: Scope::Pass,
    },
    Setting {
        name: HISTORY,
        default: "50",
        meaning: "published generations whose summaries are kept in .pkgsum/history/ for rollback (0: none)",
        scope: Scope::Pass,
    },
    Setting {
        name: RELEASE_TIMEOUT,
        default: "1h",
        meaning: "how long a pushed release may wait for its packages before it is reported incomplete",
        scope: Scope::Pass,
    },
    Setting {
        name: SITE,
        default: "1",
        meaning: "0: publish no browsable site (index.html, packages.json) beside the summaries",
        scope: Scope::Pass,
    },
    Setting {
        name: VULN_KEYRING,
        default: "(none)",
        meaning: "OpenPGP keys (a file or armored text) pkg-vulnerabilities must be clear-signed by, as pkg_install's GPG_KEYRING_PKGVULN",
        scope: Scope::Vulnerabilities,
    },
    Setting {
        name: PRUNE_KEEP,
        default: "(none)",
        meaning: "retention: keep the newest N versions of each PKGPATH (the scheduled prune runs when this or PKGSUM_PRUNE_OLDER_THAN is set)",
        scope: Scope::Prune,
    },
    Setting {
        name: PRUNE_OLDER_THAN,
        default: "(none)",
        meaning: "retention: let go only files uploaded longer ago than this (e.g. 90d)",
        scope: Scope::Prune,
    },
    Setting {
        name: PRUNE_GRACE,
        default: "30d",
        meaning: "retention: keep files listed by a generation current within this long",
        scope: Scope::Prune,
    },
    Setting {
        name: AUTH_TOKEN,
        default: "(none)",
        meaning: "the webhook secret (or --auth-token-file)",
        scope: Scope::Serve,
    },
    Setting {
        name: FORCE_PATH_STYLE,
        default: "false",
        meaning: "true: path-style S3 addressing (always with AWS_ENDPOINT_URL)",
        scope: Scope::Store,
    },
];

/// Whether `command` honours `setting`.
pub fn honours(command: &str, setting: &Setting) -> bool {
    COMMANDS
        .iter()
        .any(|(name, scopes)| *name == command && scopes.contains(&setting.scope))
}

/// The settings `command` honours, in the table's order.
pub fn honoured_by(command: &str) -> impl Iterator<Item = &'static Setting> + '_ {
    SETTINGS.iter().filter(move |s| honours(command, s))
}

/// The paragraph `--help` of `command` ends with: every setting it
/// honours, with its default; empty when it honours none.
pub fn help(command: &str) -> String {
    let settings: Vec<&Setting> = honoured_by(command).collect();
    if settings.is_empty() {
        return String::new();
    }
    let mut text = String::from("Settings (environment; a flag given overrides its setting):\n");
    for s in settings {
        text.push_str(&format!(
            "  {} (default: {})\n      {}\n",
            s.name, s.default, s.meaning
        ));
    }
    if honoured_by(command).any(|s| s.scope == Scope::Store) {
        text.push_str(
            "  and the AWS SDK's own: credentials, AWS_REGION, AWS_ENDPOINT_URL, AWS_PROFILE\n",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_defined_once() {
        let mut names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before);
    }

    #[test]
    fn the_help_names_what_a_command_honours_and_nothing_else() {
        let record = help("record");
        assert!(record.contains(METADATA_LIMIT), "{record}");
        assert!(!record.contains(SIGNATURES), "{record}");
        assert!(!record.contains("AWS_REGION"), "{record}");
        let gateway = help("gateway");
        assert!(gateway.contains(SUFFIXES) && gateway.contains("AWS_REGION"));
        assert!(!gateway.contains(FORMATS), "{gateway}");
        assert_eq!(help("demo"), "");
    }
}
