//! The `pkg-vulnerabilities` file, read and checked as `pkg_admin
//! check-pkg-vulnerabilities` reads it (pkg_install's
//! `lib/vulnerabilities-file.c`), and matched against a repository's
//! packages as `pkg_admin audit` matches installed ones.
//!
//! The file may be gzip, bzip2 or xz compressed. Its text is a header
//! (blank lines, `# $NetBSD` and `Hash:` lines, `#` comments), a `#FORMAT
//! 1.1.0` line, then `#CHECKSUM ALGORITHM HEX` and entries `PATTERN TYPE
//! URL`, one a line, every line ending in a newline, no NUL anywhere;
//! optionally all of it inside a clear-signed OpenPGP message. The
//! checksum covers the text (inside the signed message, if it is one)
//! without its blank, `Hash:`, `# $NetBSD` and `#CHECKSUM` lines, up to the
//! signature. pkg_install knows SHA512 and SHA1; so does this.
//!
//! This is stricter than pkg_admin where pkg_admin is lax to no one's
//! benefit: a file without a `#CHECKSUM`, or with only an algorithm it
//! does not know, is refused rather than let through. Everything is
//! bounded: the decompressed size, the entries, and each pattern as the
//! DEPENDS checks bound one (a pattern too large to expand is kept in the
//! file but matches nothing here, and is counted).

use std::fmt;

use sha2::{Digest, Sha512};

use crate::checks::Names;
use crate::compression::Compression;
use crate::excerpt::{Bare, excerpt};
use crate::limit::Limited;

/// The largest decompressed file read (NetBSD's is about 4 MiB).
pub const TEXT_LIMIT: u64 = 64 << 20;

/// Most entries read.
pub const MAX_ENTRIES: usize = 1_000_000;

/// Where a clear-signed message begins, and where its signature does.
const PGP_BEGIN: &str = "-----BEGIN PGP SIGNED MESSAGE-----\n";
const PGP_SIGNATURE: &str = "-----BEGIN PGP SIGNATURE-----\n";
/// Where an X.509 signature appended to the file begins.
const PKCS7_BEGIN: &str = "-----BEGIN PKCS7-----\n";

/// One line of the file: packages `pattern` matches have a `kind`
/// vulnerability (`eol`: end of life) described at `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub pattern: String,
    pub kind: String,
    pub url: String,
}

/// A file that passed the checks.
#[derive(Debug, Clone)]
pub struct Vulnerabilities {
    /// The text, decompressed.
    pub text: String,
    pub entries: Vec<Entry>,
    /// Whether the text is a clear-signed OpenPGP message.
    pub signed: bool,
    /// The algorithm the checksum was made with.
    pub algorithm: &'static str,
}

/// Why a file was refused, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn refused(why: impl Into<String>) -> Refused {
    Refused(why.into())
}

/// Reads and checks `file` (compressed or not).
pub fn parse(file: &[u8]) -> Result<Vulnerabilities, Refused> {
    let text = decompress(file)?;
    if text.contains('\0') {
        return Err(refused("it holds a NUL character"));
    }
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(refused("its last line has no newline"));
    }
    let signed = text.starts_with(PGP_BEGIN);
    let body = if signed {
        &text[PGP_BEGIN.len()..]
    } else {
        &text[..]
    };
    let mut lines = body.split_inclusive('\n');
    header(&mut lines)?;
    let mut entries = Vec::new();
    let mut algorithm = None;
    for line in lines {
        if (signed && line == PGP_SIGNATURE) || (!signed && line == PKCS7_BEGIN) {
            break;
        }
        let trimmed = line.trim_end_matches('\n');
        if trimmed.is_empty() || is_comment(trimmed) {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("#CHECKSUM") {
            algorithm = Some(check_hash(body, signed, rest)?);
            continue;
        }
        if trimmed.starts_with('#') {
            // pkg_install skips these too ("should be an error, but it is
            // still used").
            continue;
        }
        if entries.len() == MAX_ENTRIES {
            return Err(refused(format!("it has more than {MAX_ENTRIES} entries")));
        }
        entries.push(entry(trimmed)?);
    }
    let Some(algorithm) = algorithm else {
        return Err(refused("it has no #CHECKSUM line"));
    };
    Ok(Vulnerabilities {
        text,
        entries,
        signed,
        algorithm,
    })
}

/// The text of `file`, decompressed within [`TEXT_LIMIT`].
fn decompress(file: &[u8]) -> Result<String, Refused> {
    use std::io::Read as _;
    let format = Compression::detect(file);
    let mut text = Vec::new();
    format
        .decoder(file)
        .and_then(|decoder| Limited::new(decoder, TEXT_LIMIT).read_to_end(&mut text))
        .map_err(|e| refused(format!("it cannot be read as {}: {e}", format.name())))?;
    String::from_utf8(text).map_err(|_| refused("it is not UTF-8 text"))
}

/// A `#` followed by white space, or alone: a comment.
fn is_comment(line: &str) -> bool {
    line == "#"
        || line
            .strip_prefix('#')
            .is_some_and(|r| r.starts_with([' ', '\t']))
}

/// Reads up to and including the `#FORMAT 1.1.0` line.
fn header<'a>(lines: &mut impl Iterator<Item = &'a str>) -> Result<(), Refused> {
    for line in lines.by_ref() {
        let trimmed = line.trim_end_matches('\n');
        if trimmed.is_empty() || trimmed.starts_with("Hash:") || trimmed.starts_with("# $NetBSD") {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('#')
            && rest.starts_with(char::is_whitespace)
        {
            if !rest.trim().is_empty() {
                return Err(refused(format!(
                    "its header has a line pkg_admin refuses: {}",
                    excerpt(trimmed)
                )));
            }
            continue;
        }
        let Some(version) = trimmed.strip_prefix("#FORMAT") else {
            return Err(refused(format!(
                "it does not begin with #FORMAT 1.1.0 but {}",
                excerpt(trimmed)
            )));
        };
        if !version.starts_with(char::is_whitespace) || version.trim() != "1.1.0" {
            return Err(refused(format!(
                "its format is {}, not 1.1.0",
                excerpt(version.trim())
            )));
        }
        return Ok(());
    }
    Err(refused("it has no #FORMAT line"))
}

/// Checks the `#CHECKSUM` line whose text after the keyword is `rest`
/// against `body`; returns the algorithm.
fn check_hash(body: &str, signed: bool, rest: &str) -> Result<&'static str, Refused> {
    let mut words = rest.split_whitespace();
    let (Some(algorithm), Some(want)) = (words.next(), words.next()) else {
        return Err(refused("its #CHECKSUM line names no algorithm and digest"));
    };
    let digest = |hash: &mut dyn FnMut(&[u8])| {
        for line in hashed(body, signed) {
            hash(line.as_bytes());
        }
    };
    let (name, have) = match algorithm {
        "SHA512" => {
            let mut sha = Sha512::new();
            digest(&mut |b| sha.update(b));
            ("SHA512", crate::hex(&sha.finalize()))
        }
        "SHA1" => {
            let mut sha = sha1::Sha1::new();
            digest(&mut |b| sha.update(b));
            ("SHA1", crate::hex(&sha.finalize()))
        }
        other => {
            return Err(refused(format!(
                "its #CHECKSUM algorithm {} is not SHA512 or SHA1",
                excerpt(other)
            )));
        }
    };
    if !want.eq_ignore_ascii_case(&have) {
        return Err(refused(format!(
            "its {name} checksum does not match its text (the file is damaged or was changed)"
        )));
    }
    Ok(name)
}

/// The lines of `body` a `#CHECKSUM` covers: all up to the signature but
/// blank, `Hash:`, `# $NetBSD` and `#CHECKSUM` lines.
fn hashed(body: &str, signed: bool) -> impl Iterator<Item = &str> {
    body.split_inclusive('\n')
        .take_while(move |line| {
            !(signed && *line == PGP_SIGNATURE || !signed && *line == PKCS7_BEGIN)
        })
        .filter(|line| {
            !(*line == "\n"
                || line.starts_with("Hash:")
                || line.starts_with("# $NetBSD")
                || line.starts_with("#CHECKSUM"))
        })
}

/// `PATTERN TYPE URL`.
fn entry(line: &str) -> Result<Entry, Refused> {
    let mut words = line.split_whitespace();
    let pattern = words.next().unwrap_or_default();
    let (Some(kind), Some(url)) = (words.next(), words.next()) else {
        return Err(refused(format!(
            "an entry has no type or no URL: {}",
            excerpt(line)
        )));
    };
    Ok(Entry {
        pattern: pattern.to_owned(),
        kind: kind.to_owned(),
        url: url.to_owned(),
    })
}

/// A package of the repository an entry matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The package's file name and PKGNAME.
    pub file: String,
    pub pkgname: String,
    pub kind: String,
    pub url: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind.as_str() {
            "eol" => write!(
                f,
                "Package {} has reached end-of-life (eol), see {}",
                Bare(&self.pkgname),
                Bare(&self.url)
            ),
            kind => write!(
                f,
                "Package {} has a {} vulnerability, see {}",
                Bare(&self.pkgname),
                Bare(kind),
                Bare(&self.url)
            ),
        }
    }
}

/// What an audit found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// Sorted by file, then pattern's order in the file.
    pub findings: Vec<Finding>,
    /// Entries whose pattern is too large to expand or not a pattern.
    pub unmatched: usize,
    /// Whether the work budget ran out before every entry was matched.
    pub cut_short: bool,
}

/// The packages (file name, PKGNAME) each entry of `file` matches, by
/// pkg_install's pattern rules, within [`crate::checks::MATCH_BUDGET`].
pub fn audit<'a>(
    file: &Vulnerabilities,
    packages: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Audit {
    let (files, pkgnames): (Vec<&str>, Vec<&str>) = packages.into_iter().unzip();
    let names = Names::new(pkgnames.clone());
    let mut budget = crate::checks::MATCH_BUDGET;
    let mut audit = Audit::default();
    for entry in &file.entries {
        let Ok(pattern) = Names::pattern(entry.pattern.as_bytes()) else {
            audit.unmatched += 1;
            continue;
        };
        let found = names.matching(&pattern, &mut budget, |i| {
            audit.findings.push(Finding {
                file: files[i].to_owned(),
                pkgname: pkgnames[i].to_owned(),
                kind: entry.kind.clone(),
                url: entry.url.clone(),
            });
            false
        });
        if found.is_none() {
            audit.cut_short = true;
            break;
        }
    }
    audit.findings.sort_by(|a, b| a.file.cmp(&b.file));
    audit
}

/// A file made as pkgsrc's `pkg-vulnerabilities` is (for tests and the
/// demo): `entries` under a SHA512 `#CHECKSUM`.
pub fn make(entries: &[Entry]) -> String {
    let mut body =
        String::from("# $NetBSD: pkg-vulnerabilities made by pkgsum $\n#FORMAT 1.1.0\n#\n");
    for e in entries {
        body.push_str(&format!("{} {} {}\n", e.pattern, e.kind, e.url));
    }
    let mut sha = Sha512::new();
    for line in hashed(&body, false) {
        sha.update(line.as_bytes());
    }
    let checksum = crate::hex(&sha.finalize());
    body.replacen("#\n", &format!("#\n#CHECKSUM SHA512 {checksum}\n"), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        let e = |p: &str, k: &str, u: &str| Entry {
            pattern: p.into(),
            kind: k.into(),
            url: u.into(),
        };
        vec![
            e(
                "foo<1.2",
                "remote-code-execution",
                "https://example.org/CVE-1",
            ),
            e(
                "{bar,baz}-[0-9]*",
                "denial-of-service",
                "https://example.org/CVE-2",
            ),
            e("old-[0-9]*", "eol", "https://www.pkgsrc.org/pkgsrc-eol"),
        ]
    }

    #[test]
    fn a_made_file_reads_back_and_audits_by_pkg_install_rules() {
        let text = make(&entries());
        let file = parse(text.as_bytes()).unwrap();
        assert_eq!(file.entries, entries());
        assert_eq!(file.algorithm, "SHA512");
        let packages = [
            ("foo-1.1.tgz", "foo-1.1"),
            ("foo-1.2.tgz", "foo-1.2"),
            ("baz-3.tgz", "baz-3"),
            ("old-1.tgz", "old-1"),
            ("bard-1.tgz", "bard-1"),
        ];
        let audit = audit(&file, packages);
        let found: Vec<String> = audit.findings.iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "Package baz-3 has a denial-of-service vulnerability, see https://example.org/CVE-2",
                "Package foo-1.1 has a remote-code-execution vulnerability, see https://example.org/CVE-1",
                "Package old-1 has reached end-of-life (eol), see https://www.pkgsrc.org/pkgsrc-eol",
            ]
        );
        // Compressed as NetBSD publishes it.
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(parse(&gz).unwrap().entries.len(), 3);
    }

    #[test]
    fn a_changed_or_malformed_file_is_refused() {
        let text = make(&entries());
        let changed = text.replace("foo<1.2", "foo<1.1");
        let why = |t: &str| parse(t.as_bytes()).unwrap_err().to_string();
        assert!(
            why(&changed).contains("SHA512 checksum does not match"),
            "{}",
            why(&changed)
        );
        let unchecked = text
            .lines()
            .filter(|l| !l.starts_with("#CHECKSUM"))
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        assert_eq!(why(&unchecked), "it has no #CHECKSUM line");
        assert!(why(&text.replace("1.1.0", "2.0.0")).contains("not 1.1.0"));
        assert_eq!(why(text.trim_end()), "its last line has no newline");
        assert_eq!(
            why(&text.replace("foo<1.2", "foo\0")),
            "it holds a NUL character"
        );
        let short = make(&[Entry {
            pattern: "foo<1".into(),
            kind: "overflow".into(),
            url: String::new(),
        }]);
        assert!(
            why(&short).starts_with("an entry has no type or no URL"),
            "{}",
            why(&short)
        );
        assert!(why(&format!("# not blank\n{text}")).contains("header has a line"));
        assert!(why("garbage\n").starts_with("it does not begin with #FORMAT"));
        // Blank and Hash: lines do not count; a signed message's armour
        // does not either.
        let spaced = text.replacen("#FORMAT 1.1.0\n", "#FORMAT 1.1.0\n\n", 1);
        assert!(parse(spaced.as_bytes()).is_ok());
        let armoured = format!(
            "{PGP_BEGIN}Hash: SHA512\n\n{text}{PGP_SIGNATURE}\nxyz\n-----END PGP SIGNATURE-----\n"
        );
        let file = parse(armoured.as_bytes()).unwrap();
        assert!(file.signed);
    }

    #[test]
    fn hostile_files_cost_bounded_work() {
        // A gzip bomb: 128 MiB of newlines.
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![b'\n'; 1 << 20];
        for _ in 0..128 {
            gz.write_all(&zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        let why = parse(&bomb).unwrap_err().to_string();
        assert!(why.starts_with("it cannot be read as gzip"), "{why}");
        // Patterns too wide to expand match nothing and are counted.
        let wide = format!("{{{}}}-[0-9]*", vec!["x"; 300].join(","));
        let file = parse(
            make(&[Entry {
                pattern: wide,
                kind: "x".into(),
                url: "u".into(),
            }])
            .as_bytes(),
        )
        .unwrap();
        let audit = audit(&file, [("x-1.tgz", "x-1")]);
        assert_eq!((audit.findings.len(), audit.unmatched), (0, 1));
    }
}
