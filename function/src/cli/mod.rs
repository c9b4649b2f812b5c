//! The commands, one module each, as ripgrep keeps its flags apart from
//! its search: a module holds its command's arguments and its body. The
//! argument groups several commands share ([`args`]) are each applied to
//! [`Config`](pkgsum::config::Config) once; what a command prints about a
//! pass, and how an error ends it, is [`report`]'s.
//!
//! The help of every command ends with the settings it honours, from
//! [`pkgsum::settings`], and the exit-status rule.

mod apply_event;
pub mod args;
mod demo;
#[cfg(feature = "gateway")]
mod gateway;
mod generate;
mod history;
mod hold;
mod index;
#[cfg(feature = "poll")]
mod poll;
mod promote;
mod prune;
mod push;
mod rebuild;
mod record;
pub mod report;
#[cfg(feature = "serve")]
mod serve;
mod verify;
mod vulnerabilities;

use clap::{Parser, Subcommand};
use pkgsum::verdict::{EXIT_STATUS_HELP, Verdict};

#[derive(Parser)]
#[command(
    name = "pkgsum",
    version,
    about = "Index pkgsrc binary packages into pkg_summary files, byte for byte as pkg_info -X",
    after_help = EXIT_STATUS_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What `--help` of `command` ends with: the settings it honours, then
/// the exit-status rule.
fn after_help(command: &str) -> String {
    let settings = pkgsum::settings::help(command);
    if settings.is_empty() {
        EXIT_STATUS_HELP.to_owned()
    } else {
        format!("{settings}\n{EXIT_STATUS_HELP}")
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Index a package directory and write its pkg_summary files
    #[command(long_about = index::ABOUT, after_help = after_help("index"))]
    Index(index::Args),
    /// Print each package's record, exactly as pkg_info -X FILE...
    #[command(after_help = after_help("record"))]
    Record(record::Args),
    /// Build or repair a repository's index from a listing
    #[command(long_about = rebuild::ABOUT, after_help = after_help("rebuild"))]
    Rebuild(rebuild::Args),
    /// Report differences between a repository, its index and its summaries
    #[command(long_about = verify::ABOUT, after_help = after_help("verify"))]
    Verify(verify::Args),
    /// Check packages, upload them as one release, and wait until they are live
    #[command(long_about = push::ABOUT, after_help = after_help("push"))]
    Push(push::Args),
    /// Copy packages between repositories inside the store, as one release
    #[command(long_about = promote::ABOUT, after_help = after_help("promote"))]
    Promote(promote::Args),
    /// Delete old package files without breaking a client (a dry run unless --apply)
    #[command(long_about = prune::ABOUT, after_help = after_help("prune"))]
    Prune(prune::Args),
    /// Check a pkg-vulnerabilities file and publish it beside the summaries
    #[command(long_about = vulnerabilities::PUBLISH_ABOUT, after_help = after_help("vulnerabilities"))]
    Vulnerabilities(vulnerabilities::PublishArgs),
    /// List the repository's packages the pkg-vulnerabilities file names
    #[command(long_about = vulnerabilities::AUDIT_ABOUT, after_help = after_help("audit"))]
    Audit(vulnerabilities::AuditArgs),
    /// Stop publishing a repository's summaries; uploads are still indexed
    #[command(long_about = hold::HOLD_ABOUT, after_help = after_help("hold"))]
    Hold(hold::HoldArgs),
    /// Lift a hold or a gate and publish the newest state
    #[command(long_about = hold::RESUME_ABOUT, after_help = after_help("resume"))]
    Resume(hold::ResumeArgs),
    /// List the published generations and what each changed
    #[command(long_about = history::HISTORY_ABOUT, after_help = after_help("history"))]
    History(history::HistoryArgs),
    /// Publish a kept generation again, then hold publication
    #[command(long_about = history::ROLLBACK_ABOUT, after_help = after_help("rollback"))]
    Rollback(history::RollbackArgs),
    /// Apply an S3, SQS, SNS or EventBridge event, as the Lambda function does
    #[command(long_about = apply_event::ABOUT, after_help = after_help("apply-event"))]
    ApplyEvent(apply_event::Args),
    /// Consume an SQS queue of S3 notifications, as Lambda's event source does
    #[cfg(feature = "poll")]
    #[command(long_about = poll::ABOUT, after_help = after_help("poll"))]
    Poll(poll::Args),
    /// Receive bucket notifications over HTTP (MinIO, Ceph RGW, SeaweedFS) and index
    #[cfg(feature = "serve")]
    #[command(long_about = serve::ABOUT, after_help = after_help("serve"))]
    Serve(serve::Args),
    /// Serve a private repository read-only to pkgin, behind HTTP Basic
    #[cfg(feature = "gateway")]
    #[command(long_about = gateway::ABOUT, after_help = after_help("gateway"))]
    Gateway(gateway::Args),
    /// Build a small sample repository and index it
    #[command(long_about = demo::ABOUT, after_help = after_help("demo"))]
    Demo(demo::Args),
    /// Write the man page, shell completions or the Markdown reference
    #[command(long_about = generate::ABOUT, after_help = after_help("generate"))]
    Generate(generate::Args),
}

impl Command {
    /// Library logs are detail for those who ask (RUST_LOG=info); what a
    /// user needs is printed by the commands themselves, once. A service's
    /// log is its output, so the servers log at info unless told
    /// otherwise.
    pub fn default_log(&self) -> &'static str {
        match self {
            #[cfg(feature = "serve")]
            Command::Serve(_) => "pkgsum=info",
            #[cfg(feature = "gateway")]
            Command::Gateway(_) => "pkgsum=info",
            _ => "off",
        }
    }

    pub fn run(self) -> anyhow::Result<Verdict> {
        match self {
            Command::Index(args) => index::run(args),
            Command::Record(args) => record::run(args),
            Command::Rebuild(args) => run_async(rebuild::run(args)),
            Command::Verify(args) => run_async(verify::run(args)),
            Command::Push(args) => run_async(push::run(args)),
            Command::Promote(args) => run_async(promote::run(args)),
            Command::Prune(args) => run_async(prune::run(args)),
            Command::Vulnerabilities(args) => run_async(vulnerabilities::publish(args)),
            Command::Audit(args) => run_async(vulnerabilities::audit(args)),
            Command::Hold(args) => run_async(hold::hold(args)),
            Command::Resume(args) => run_async(hold::resume(args)),
            Command::History(args) => run_async(history::history(args)),
            Command::Rollback(args) => run_async(history::rollback(args)),
            Command::ApplyEvent(args) => run_async(apply_event::run(args)),
            #[cfg(feature = "poll")]
            Command::Poll(args) => run_async(poll::run(args)),
            #[cfg(feature = "serve")]
            Command::Serve(args) => serve::run(args),
            #[cfg(feature = "gateway")]
            Command::Gateway(args) => run_async(gateway::run(args)),
            Command::Demo(args) => demo::run(args),
            Command::Generate(args) => generate::run(args),
        }
    }
}

/// The repository at `url`, opened to write (a bucket's conditional
/// writes probed, and said if they are not honoured), and the settings.
async fn open_for_writing(
    url: &str,
) -> anyhow::Result<(
    pkgsum::store::open::RepoUrl,
    pkgsum::store::open::Repository,
    pkgsum::config::Config,
)> {
    use pkgsum::store::open::{Buckets, RepoUrl, open};
    let url: RepoUrl = url.parse()?;
    let config = pkgsum::config::Config::from_env()?;
    let repository = open(&url, &Buckets::from_env(), true).await?;
    if let RepoUrl::S3 { bucket, .. } = &url {
        report::print_found(bucket, repository.found.as_ref());
    }
    Ok((url, repository, config))
}

/// Runs a command's body on a fresh async runtime.
pub fn run_async(
    job: impl std::future::Future<Output = anyhow::Result<Verdict>>,
) -> anyhow::Result<Verdict> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(job)
}

/// SIGTERM (as systemd, ECS and Kubernetes stop a service) or Ctrl-C.
#[cfg(any(feature = "poll", feature = "http"))]
pub async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
