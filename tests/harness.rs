//! The test harness: every test is a libtest-mimic trial, so a test that
//! cannot run here (no LocalStack, no cargo-lambda, no third-party
//! fixtures) shows as ignored with its reason in cargo's totals instead of
//! passing without having run.
//!
//! Each test module lists its tests with [`trials!`]; `tests.rs` gathers
//! them. Kinds: `test` (plain), `tokio` (async), `s3` (async, needs
//! LocalStack), `lambda` (async, needs LocalStack and cargo-lambda), `rgw`
//! (async, needs the Ceph RGW that `ceph/start.sh` runs), `seaweedfs`
//! (async, needs `seaweedfs/start.sh`'s server), `node` (needs Node.js),
//! `chromium` (needs Debian's Chromium and its WebDriver).

use std::future::Future;

use libtest_mimic::{Completion, Failed, Trial};

/// Lists a module's tests as trials named `module::function`, in a
/// function `trials` (or the one named by a leading `fn NAME;`).
macro_rules! trials {
    (fn $list:ident; $($kind:ident $name:ident),* $(,)?) => {
        pub fn $list() -> Vec<libtest_mimic::Trial> {
            let module = module_path!().rsplit("::").next().unwrap_or_default();
            vec![$(
                $crate::harness::$kind(
                    format!("{module}::{}", stringify!($name)),
                    $name,
                )
            ),*]
        }
    };
    ($($kind:ident $name:ident),* $(,)?) => {
        $crate::harness::trials!(fn trials; $($kind $name),*);
    };
}
pub(crate) use trials;

/// What a test needs beyond the build itself.
#[derive(Debug, Clone, Copy)]
enum Needs {
    LocalStack,
    CargoLambda,
    Rgw,
    SeaweedFs,
}

impl Needs {
    /// Why the test cannot run here, or `None` if it can. Where the
    /// environment says the need is met (`PKGSUM_LOCALSTACK=1`,
    /// `PKGSUM_REQUIRE_CARGO_LAMBDA=1`, `PKGSUM_REQUIRE_S3_COMPATIBLE=1`,
    /// as `scripts/test` sets them), the test runs and fails if it is not.
    fn missing(self) -> Option<&'static str> {
        let set = |name: &str| std::env::var(name).as_deref() == Ok("1");
        match self {
            Needs::LocalStack if !set("PKGSUM_LOCALSTACK") => {
                Some("needs LocalStack: run the tests with scripts/test")
            }
            Needs::CargoLambda if !set("PKGSUM_REQUIRE_CARGO_LAMBDA") && !cargo_lambda() => {
                Some("needs cargo-lambda: run the tests with scripts/test")
            }
            Needs::Rgw if !compatible("PKGSUM_RGW_ENDPOINT") => {
                Some("needs Ceph RGW: run the tests with scripts/test")
            }
            Needs::SeaweedFs if !compatible("PKGSUM_SEAWEEDFS_ENDPOINT") => {
                Some("needs SeaweedFS: run the tests with scripts/test")
            }
            _ => None,
        }
    }
}

/// Whether an S3-compatible server's tests should run: its endpoint is
/// given, or `PKGSUM_REQUIRE_S3_COMPATIBLE=1` (as `scripts/test` sets it)
/// says it must be, so a server that failed to start fails its tests.
fn compatible(endpoint: &str) -> bool {
    std::env::var_os(endpoint).is_some()
        || std::env::var("PKGSUM_REQUIRE_S3_COMPATIBLE").as_deref() == Ok("1")
}

fn cargo_lambda() -> bool {
    std::process::Command::new("cargo")
        .args(["lambda", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A plain test.
pub fn test(name: String, body: fn()) -> Trial {
    Trial::test(name, move || {
        body();
        Ok(())
    })
}

/// An async test on a multi-threaded runtime of its own.
pub fn tokio<F, Fut>(name: String, body: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    needing(name, &[], body)
}

/// An async test against the S3 and SQS of LocalStack.
pub fn s3<F, Fut>(name: String, body: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    needing(name, &[Needs::LocalStack], body)
}

/// An async test that also runs the function behind cargo-lambda's
/// emulated Lambda runtime API.
pub fn lambda<F, Fut>(name: String, body: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    needing(name, &[Needs::LocalStack, Needs::CargoLambda], body)
}

/// An async test against Ceph RGW (a one-node cluster on 127.0.0.1).
pub fn rgw<F, Fut>(name: String, body: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    needing(name, &[Needs::Rgw], body)
}

/// An async test against SeaweedFS (`weed server` on 127.0.0.1).
pub fn seaweedfs<F, Fut>(name: String, body: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    needing(name, &[Needs::SeaweedFs], body)
}

fn needing<F, Fut>(name: String, needs: &'static [Needs], body: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    Trial::ignorable_test(name, move || {
        if let Some(reason) = needs.iter().find_map(|n| n.missing()) {
            return Ok(Completion::ignored_with(reason));
        }
        runtime()?.block_on(body());
        Ok(Completion::Completed)
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, Failed> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("starting a runtime: {e}")))
}

/// A test that runs a Node.js script; ignored where there is no `node`.
pub fn node(name: String, body: fn()) -> Trial {
    Trial::ignorable_test(name, move || {
        let found = std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Ok(Completion::ignored_with("needs Node.js (node) on the PATH"));
        }
        body();
        Ok(Completion::Completed)
    })
}

/// A test that drives Debian's Chromium through its WebDriver
/// (`chromedriver`); ignored where they are not installed, unless
/// `PKGSUM_REQUIRE_CHROMIUM=1` (as `scripts/test` sets it) says they must
/// be.
pub fn chromium(name: String, body: fn()) -> Trial {
    Trial::ignorable_test(name, move || {
        let found = ["chromium", "chromedriver"].iter().all(|tool| {
            std::process::Command::new(tool)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
        let required = std::env::var("PKGSUM_REQUIRE_CHROMIUM").as_deref() == Ok("1");
        if !found && !required {
            return Ok(Completion::ignored_with(
                "needs chromium and chromedriver (Debian's chromium, chromium-driver): run the tests with scripts/test",
            ));
        }
        body();
        Ok(Completion::Completed)
    })
}

/// A trial that reports itself ignored for `reason`.
pub fn ignored(name: impl Into<String>, reason: &'static str) -> Trial {
    Trial::ignorable_test(name, move || Ok(Completion::ignored_with(reason)))
}
