//! The `pkgsum` command line: a thin shell over the library.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pkgsum::limit::Limits;

#[derive(Parser)]
#[command(name = "pkgsum", version, about = "Index pkgsrc binary packages into pkg_summary files")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print each package's summary record, exactly as `pkg_info -X FILE...`.
    Record {
        /// Package files.
        #[arg(required = true)]
        files: Vec<OsString>,
        /// Most decompressed metadata bytes read from one package.
        #[arg(long, default_value_t = pkgsum::limit::DEFAULT_METADATA_LIMIT)]
        metadata_limit: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Record {
            files,
            metadata_limit,
        } => record(&files, &Limits { metadata: metadata_limit }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("pkgsum: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Prints records in argument order; a bad file is reported and skipped.
/// Returns whether every file gave a record.
fn record(files: &[OsString], limits: &Limits) -> anyhow::Result<bool> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut ok = true;
    for file in files {
        let path = PathBuf::from(file);
        match pkgsum::record_file(&path, limits) {
            Ok((record, warnings)) => {
                for warning in warnings {
                    eprintln!("pkgsum: {}: {warning}", path.display());
                }
                out.write_all(&record).context("writing to stdout")?;
            }
            Err(err) => {
                ok = false;
                // Flush first so stderr lines follow the records before them.
                out.flush().context("writing to stdout")?;
                eprintln!("pkgsum: {}: {err}", path.display());
            }
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(ok)
}
