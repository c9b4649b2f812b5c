//! pkgsum's integration tests: one binary, one module per concern, run
//! by libtest-mimic (see `harness.rs`) so that a test which cannot
//! run here is reported as ignored, with its reason, never as passed.
//!
//! - `golden`: every `pkg_info -X` golden file, byte for byte.
//! - `malformed`: bad packages give clear errors and bounded reads.
//! - `index`: `pkgsum index` on real directories.
//! - `cli`: the `pkgsum` binary as a user runs it.
//! - `store`: the store conformance suite on every backend.
//! - `fetch`: header-only ranged reads.
//! - `apply`: the repository pass and the event handler.
//! - `hostile`: hostile uploads and racing writers cost only themselves.
//! - `chaos`: seeded trials of racing appliers and unreliable notifications.
//! - `signatures`: signature policies and every verdict.
//! - `notify`: real S3 -> SQS notifications and the Lambda runtime API.
//! - `publish`: what a summary lists, the publish gates, hold and resume.
//! - `splice`: summaries larger than a part, spliced inside the store.
//! - `prune`: retention that cannot break a client.
//! - `promote`: packages moved between repositories inside the store.
//! - `vulnerabilities`: the pkg-vulnerabilities file, checked and published; the audit.
//! - `site`: the browsable site in headless Chromium.
//! - `serve`: `pkgsum serve` with Ceph RGW, SeaweedFS and LocalStack.
//! - `gateway`: `pkgsum gateway`, a private repository for pkgin.
//! - `walkthrough`: the LocalStack walkthrough of docs/development.md, run as written.
//! - `deploy`: the SAM stack on LocalStack's CloudFormation.

mod common;
mod harness;

mod apply;
mod chaos;
mod cli;
mod deploy;
mod fetch;
mod gateway;
mod golden;
mod hostile;
mod index;
mod malformed;
mod notify;
mod promote;
mod prune;
mod publish;
mod serve;
mod signatures;
mod site;
mod splice;
mod store;
mod vulnerabilities;
mod walkthrough;

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let trials: Vec<_> = [
        golden::trials(),
        malformed::trials(),
        index::trials(),
        cli::trials(),
        store::trials(),
        fetch::trials(),
        apply::trials(),
        hostile::trials(),
        chaos::trials(),
        signatures::trials(),
        notify::trials(),
        publish::trials(),
        splice::trials(),
        prune::trials(),
        promote::trials(),
        vulnerabilities::trials(),
        site::trials(),
        serve::trials(),
        gateway::trials(),
        walkthrough::trials(),
        deploy::trials(),
    ]
    .into_iter()
    .flatten()
    .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
