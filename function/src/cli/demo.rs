//! `pkgsum demo`: a small sample repository, indexed twice.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use pkgsum::compression::Compression;
use pkgsum::config::Config;
use pkgsum::create::{PackageBuilder, Signature, sign};
use pkgsum::verdict::Verdict;

pub const ABOUT: &str = "Build a small sample repository (one package per compression, one \
    signed) in DIR, which must be new or empty, index it, print its summary, and index it \
    again to show nothing is read twice.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to build it (default: a new directory under the system
    /// temporary directory).
    dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<Verdict> {
    let dir = match args.dir {
        Some(dir) => {
            let occupied = fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some());
            if occupied {
                bail!(
                    "{}: not empty; the demo writes sample packages only into a new or empty directory",
                    dir.display()
                );
            }
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir
        }
        None => tempfile::Builder::new()
            .prefix("pkgsum-demo-")
            .tempdir()
            .context("creating a temporary directory")?
            .keep(),
    };
    write_packages(&dir)
        .with_context(|| format!("writing sample packages to {}", dir.display()))?;
    eprintln!("pkgsum: sample repository in {}", dir.display());
    let config = Config::default();
    let first = super::run_async(super::index::index(&dir, &config))?;
    let gz = fs::read(dir.join("pkg_summary.gz")).context("reading pkg_summary.gz")?;
    let mut summary = Vec::new();
    Compression::Gzip
        .decoder(&gz[..])?
        .read_to_end(&mut summary)?;
    io::stdout()
        .write_all(&summary)
        .context("writing to stdout")?;
    eprintln!("pkgsum: indexing again reads nothing new:");
    let again = super::run_async(super::index::index(&dir, &config))?;
    Ok(first.max(again))
}

/// Sample packages in every compression pkgsum reads, one of them signed.
fn write_packages(dir: &Path) -> anyhow::Result<()> {
    let samples = [
        ("hello-2.12nb1", Compression::Gzip, "@pkgdep libfoo>=1.2\n"),
        (
            "libfoo-1.4",
            Compression::Xz,
            "@pkgcfl libfoo-devel-[0-9]*\n",
        ),
        ("tool-0.9", Compression::Bzip2, ""),
        ("modern-3.0", Compression::Zstd, "@pkgdep libfoo>=1.0\n"),
    ];
    for (name, compression, extra) in samples {
        let contents = format!("@name {name}\n{extra}@cwd /usr/pkg\nbin/{name}\n");
        let bytes = PackageBuilder::new(name)
            .member("+CONTENTS", contents)
            .file(&format!("bin/{name}"), format!("#!/bin/sh\necho {name}\n"))
            .compression(compression)
            .build()?;
        fs::write(dir.join(format!("{name}.tgz")), bytes)?;
    }
    let inner = PackageBuilder::new("signed-1.0")
        .compression(Compression::Xz)
        .build()?;
    let signed = sign(&inner, "signed-1.0.tgz", "signed-1.0", Signature::Gpg)?;
    fs::write(dir.join("signed-1.0.tgz"), signed)?;
    Ok(())
}
