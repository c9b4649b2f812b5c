//! The LocalStack walkthrough, run as written: its shell block is taken
//! from docs/development.md, with only the binary (`cargo run --` is this
//! build's `pkgsum`), the bucket and the demo directory made unique, and
//! `localstack/stop.sh` left out (the other tests use the same LocalStack).

use std::path::Path;
use std::process::Command;

const HEADING: &str = "## Trying it by hand on LocalStack";

/// The first `sh` block after the walkthrough's heading.
fn walkthrough(doc: &str) -> String {
    let section = &doc[doc.find(HEADING).expect("the walkthrough heading")..];
    let start = section.find("```sh\n").expect("a shell block") + "```sh\n".len();
    let end = start + section[start..].find("```").expect("the block's end");
    section[start..end].to_owned()
}

async fn the_walkthrough_ends_with_the_upload_published() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/development.md")).unwrap();
    let block = walkthrough(&doc);
    assert!(block.contains("localstack/stop.sh"), "{block}");
    let demo = tempfile::tempdir().unwrap();
    let demo_dir = demo.path().join("pkgsum-demo");
    let bucket = format!("walk-{:08x}", fastrand::u32(..));
    let script: String = block
        .lines()
        .filter(|line| !line.starts_with("localstack/stop.sh"))
        .map(|line| {
            line.replace("cargo run --", env!("CARGO_BIN_EXE_pkgsum"))
                .replace("pkgsum-local", &bucket)
                .replace("/tmp/pkgsum-demo", &demo_dir.display().to_string())
                + "\n"
        })
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(root)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The summary it printed last holds both uploads.
    let summary = &stdout[stdout.rfind("PKGNAME=signed-1.0").unwrap_or(0)..];
    for record in ["PKGNAME=hello-2.12nb1\n", "PKGNAME=libfoo-1.4\n"] {
        assert!(summary.contains(record), "{record} missing: {stdout}");
    }
    assert!(
        stderr.contains(&format!("s3://{bucket}/All/: 2 packages: read 2")),
        "{stderr}"
    );
    assert!(stderr.contains("published"), "{stderr}");
    assert!(stderr.contains("generation 1: no drift"), "{stderr}");
}

crate::harness::trials![s3 the_walkthrough_ends_with_the_upload_published];
