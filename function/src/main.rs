//! The `pkgsum` command line: a thin shell over the library. [`cli`] holds
//! the commands, one module each, and the argument groups they share.
//! Every command ends with the same exit status ([`pkgsum::verdict`]): 0
//! everything indexed, 1 done but some packages unreadable, 2 could not
//! run.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    cli::report::init_logs(cli.command.default_log());
    let verdict = cli::report::finish(cli.command.run());
    ExitCode::from(verdict.exit_code())
}
