//! `pkgsum record FILE...`: what `pkg_info -X` prints, file by file.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::Path;

use anyhow::Context;
use pkgsum::config::Config;
use pkgsum::limit::Limits;
use pkgsum::verdict::Verdict;

use super::args::LimitArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Package files; - reads one package from standard input.
    #[arg(required = true)]
    files: Vec<OsString>,
    /// FILE_NAME for a package read from standard input (default:
    /// PKGNAME.tgz, the name pkgin fetches it by).
    #[arg(long, value_name = "NAME")]
    file_name: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

pub fn run(args: Args) -> anyhow::Result<Verdict> {
    let mut config = Config::from_env()?;
    args.limits.apply(&mut config);
    record(&args.files, args.file_name.as_deref(), &config.fetch.limits)
}

/// Prints records in argument order; a bad file is reported and skipped.
fn record(files: &[OsString], file_name: Option<&str>, limits: &Limits) -> anyhow::Result<Verdict> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut verdict = Verdict::Indexed;
    for file in files {
        let (shown, result) = if file == "-" {
            let name = file_name.map(str::as_bytes);
            let stdin = io::stdin().lock();
            (
                "(stdin)".to_owned(),
                pkgsum::record_stream(stdin, name, limits),
            )
        } else {
            let path = Path::new(file);
            (
                path.display().to_string(),
                pkgsum::record_file(path, limits),
            )
        };
        match result {
            Ok((record, warnings)) => {
                for warning in warnings {
                    eprintln!("pkgsum: {shown}: {warning}");
                }
                out.write_all(&record).context("writing to stdout")?;
            }
            Err(err) => {
                verdict = Verdict::Incomplete;
                // Flush first so messages follow the records before them.
                out.flush().context("writing to stdout")?;
                eprintln!("pkgsum: {shown}: {err}");
            }
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(verdict)
}
