//! `pkgsum gateway URL`: a private repository served read-only to pkgin.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use pkgsum::config::Config;
use pkgsum::gateway::{Credentials, Gateway};
use pkgsum::store::open::{Buckets, RepoUrl, open};
use pkgsum::verdict::Verdict;

use super::args::HttpArgs;

pub const ABOUT: &str = "Serve a repository (s3://BUCKET/PREFIX/, or a directory) read-only over \
    HTTP to an unmodified pkgin, for stores with no CloudFront: GET and HEAD of pkg_summary.* \
    and package files directly under /PREFIX, with the store's Content-Length, Last-Modified \
    and ETag, byte ranges and conditional requests, to clients with a user and password from \
    --credentials (one user:hash per line, bcrypt or Argon2, as `htpasswd -B` or `argon2` \
    write them). Nothing is listed, and nothing outside the prefix is reachable. Put it behind \
    TLS: pkgin then uses https://USER:PASSWORD@HOST/PREFIX.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// s3://BUCKET/PREFIX/, a directory, or file://DIR
    url: String,
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    listen: std::net::SocketAddr,
    /// The credentials file.
    #[arg(long, value_name = "FILE")]
    credentials: PathBuf,
    #[command(flatten)]
    http: HttpArgs,
}

pub async fn run(args: Args) -> anyhow::Result<Verdict> {
    let url: RepoUrl = args.url.parse()?;
    let config = Config::from_env()?;
    let credentials = Credentials::from_file(&args.credentials)?;
    let repository = open(&url, &Buckets::from_env(), false).await?;
    let gateway = Arc::new(Gateway::new(
        repository.store,
        &repository.prefix,
        config.suffixes.clone(),
        credentials,
    ));
    let listen = args.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("gateway: listening on {listen}"))?;
    let address = listener
        .local_addr()
        .context("gateway: the bound address")?;
    eprintln!(
        "pkgsum: serving {} read-only at http://{address}{}",
        url,
        gateway.path()
    );
    let limits = args.http.limits();
    pkgsum::http::serve(listener, gateway.router(), limits, super::stop_signal()).await;
    eprintln!("pkgsum: stopped");
    Ok(Verdict::Indexed)
}
