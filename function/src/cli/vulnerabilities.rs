//! `pkgsum vulnerabilities URL --from FILE|URL` and `pkgsum audit URL`:
//! the `pkg-vulnerabilities` file beside a repository, and its packages
//! that the file names.

use pkgsum::advisories::{self, AdvisoryError, FILE_NAME};
use pkgsum::repo::Repo;
use pkgsum::store::open::{Buckets, RepoUrl, open};
use pkgsum::verdict::Verdict;

use super::report::count;

pub const PUBLISH_ABOUT: &str = "Publish a pkg-vulnerabilities file beside a repository's \
    summaries (s3://BUCKET/PREFIX/, or a directory) as PREFIX/pkg-vulnerabilities.gz, so its \
    clients can set PKGVULNURL to it (pkg_add with CHECK_VULNERABILITIES=always refuses every \
    install when it cannot fetch one). The file (a path, or an http:// or https:// URL such \
    as NetBSD's https://cdn.NetBSD.org/pub/NetBSD/packages/vulns/pkg-vulnerabilities.gz) is \
    checked first as pkg_admin check-pkg-vulnerabilities checks it: its #FORMAT, its \
    #CHECKSUM (SHA512 or SHA1) over its text, every entry; and, when PKGSUM_VULN_KEYRING is \
    set, its clear-signed OpenPGP signature by a key of that keyring. A file that fails is \
    not published. Then the repository's packages it names are listed, as `pkgsum audit` \
    does.";

pub const AUDIT_ABOUT: &str = "List the packages of a repository (s3://BUCKET/PREFIX/, or a \
    directory) that the pkg-vulnerabilities file names, matched by pkg_install's pattern \
    rules (dewey ranges, globs, alternatives), as pkg_admin audit says it: \"Package P has \
    a TYPE vulnerability, see URL\". The file is the one published beside the summaries, \
    or --from FILE|URL. Exits 1 when a package is named.";

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// s3://BUCKET/PREFIX/, a directory, or file://DIR
    url: String,
    /// The pkg-vulnerabilities file: a path, or an http(s) URL
    #[arg(long, value_name = "FILE|URL")]
    from: String,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// s3://BUCKET/PREFIX/, a directory, or file://DIR
    url: String,
    /// Audit against this file instead of the one published
    #[arg(long, value_name = "FILE|URL")]
    from: Option<String>,
    /// One JSON object, for tools
    #[arg(long)]
    json: bool,
}

pub async fn publish(args: PublishArgs) -> anyhow::Result<Verdict> {
    let (_, repository, config) = super::open_for_writing(&args.url).await?;
    let repo = Repo::new(&repository.store, &repository.prefix, &config);
    let bytes = advisories::read_source(&args.from).await?;
    let checked = advisories::check(&bytes, &args.from, config.vulnerability_keys.as_deref())?;
    let location = advisories::publish(&repo, &bytes, &checked).await?;
    let signed = match &checked.signer {
        Some(by) => format!(", signed by {by}"),
        None => String::new(),
    };
    eprintln!(
        "pkgsum: {location}: published {} ({} checksum{signed}); clients set PKGVULNURL to the repository's URL followed by {FILE_NAME}",
        entries(checked.file.entries.len()),
        checked.file.algorithm,
    );
    let mut state = repo.read_state().await?;
    let audit = advisories::audit(&state, &checked.file);
    advisories::keep(&repo, &mut state, &audit).await?;
    print_audit(&audit);
    Ok(Verdict::Indexed)
}

pub async fn audit(args: AuditArgs) -> anyhow::Result<Verdict> {
    let url: RepoUrl = args.url.parse()?;
    let config = pkgsum::config::Config::from_env()?;
    let repository = open(&url, &Buckets::from_env(), false).await?;
    let repo = Repo::new(&repository.store, &repository.prefix, &config);
    let checked = match &args.from {
        Some(from) => {
            let bytes = advisories::read_source(from).await?;
            advisories::check(&bytes, from, config.vulnerability_keys.as_deref())?
        }
        None => advisories::published(&repo)
            .await?
            .ok_or_else(|| AdvisoryError::NotPublished(url.to_string()))?,
    };
    let mut state = repo.read_state().await?;
    let audit = advisories::audit(&state, &checked.file);
    if args.from.is_none() {
        // What the site shows is the published file's audit.
        advisories::keep(&repo, &mut state, &audit).await?;
    }
    if args.json {
        let findings: Vec<serde_json::Value> = audit
            .findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "file": f.file, "pkgname": f.pkgname, "type": f.kind, "url": f.url,
                })
            })
            .collect();
        let report = serde_json::json!({
            "repository": url.to_string(),
            "entries": checked.file.entries.len(),
            "findings": findings,
            "unmatched": audit.unmatched,
            "cut_short": audit.cut_short,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_audit(&audit);
    }
    eprintln!(
        "pkgsum: {url}: {} of {} named by {}",
        count(audit.findings.len(), "finding"),
        count(state.len(), "package"),
        entries(checked.file.entries.len())
    );
    Ok(match audit.findings.is_empty() {
        true => Verdict::Indexed,
        false => Verdict::Incomplete,
    })
}

/// Each finding a line, as pkg_admin audit prints it; then what was not
/// matched.
fn print_audit(audit: &pkgsum::vulnerabilities::Audit) {
    for finding in &audit.findings {
        println!("{finding}");
    }
    if audit.unmatched > 0 {
        eprintln!(
            "pkgsum: {} with a pattern too large to expand or not a pattern: not matched",
            entries(audit.unmatched)
        );
    }
    if audit.cut_short {
        eprintln!("pkgsum: matching stopped at its work budget: the audit is incomplete");
    }
}

/// "1 entry", "2 entries".
fn entries(n: usize) -> String {
    match n {
        1 => "1 entry".to_owned(),
        n => format!("{n} entries"),
    }
}
