//! The `pkgsum` binary as a user runs it: stdout, stderr, exit status.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn pkgsum(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pkgsum"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn record_prints_what_pkg_info_prints_for_many_files() {
    let oracle = common::oracle();
    let mut names: Vec<String> = fs::read_dir(&oracle)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tgz"))
        .collect();
    names.sort();
    let args: Vec<&str> = std::iter::once("record")
        .chain(names.iter().map(String::as_str))
        .collect();
    let out = pkgsum(&args, &oracle);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == fs::read(oracle.join("all.expected")).unwrap());
    assert_eq!(
        stderr(&out),
        "pkgsum: minimal-1.0.tgz: build information missing\n"
    );
}

fn record_reports_bad_files_and_goes_on() {
    let oracle = common::oracle();
    let out = pkgsum(
        &[
            "record",
            "minimal-1.0.tgz",
            "README.md",
            "no-such-1.0.tgz",
            "scripts-3.1.tgz",
        ],
        &oracle,
    );
    assert_eq!(out.status.code(), Some(1));
    let want = [
        fs::read(oracle.join("minimal-1.0.tgz.expected")).unwrap(),
        fs::read(oracle.join("scripts-3.1.tgz.expected")).unwrap(),
    ]
    .concat();
    assert!(out.stdout == want);
    let err = stderr(&out);
    assert!(
        err.contains("pkgsum: README.md: not a pkgsrc package"),
        "{err}"
    );
    assert!(
        err.contains("pkgsum: no-such-1.0.tgz: I/O error: No such file"),
        "{err}"
    );
}

fn record_honours_the_metadata_limit() {
    let oracle = common::oracle();
    // manyfiles has a 765,117-byte +CONTENTS.
    let out = pkgsum(
        &["record", "--metadata-limit", "100000", "manyfiles-1.0.tgz"],
        &oracle,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("manyfiles-1.0.tgz: more than 100000 bytes"),
        "{}",
        stderr(&out)
    );
}

fn index_writes_summaries_and_exits_1_on_a_bad_package() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for name in [
        "minimal-1.0.tgz",
        "scripts-3.1.tgz",
        "compress-suffix-1.0.tbz",
    ] {
        fs::write(
            dir.join(name),
            fs::read(common::oracle().join(name)).unwrap(),
        )
        .unwrap();
    }
    let out = pkgsum(&["index", ".", "--suffix", ".tbz", "--zstd"], dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("3 packages (read 3, unchanged 0, removed 0, failed 0)"),
        "{err}"
    );
    // No progress bar in captured output.
    assert!(!err.contains("reading headers"), "{err}");
    let gz = common::decompress(&fs::read(dir.join("pkg_summary.gz")).unwrap());
    for ext in ["bz2", "xz", "zst"] {
        let other = common::decompress(&fs::read(dir.join(format!("pkg_summary.{ext}"))).unwrap());
        assert!(other == gz, "pkg_summary.{ext} differs");
    }
    assert_eq!(common::split_records(&gz).len(), 3);

    fs::write(dir.join("junk-1.0.tgz"), b"\x1f\x8bnot really gzip").unwrap();
    let out = pkgsum(&["index", "."], dir);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("pkgsum: ./junk-1.0.tgz: corrupt gzip stream"),
        "{err}"
    );
    assert!(
        err.contains("2 packages (read 1, unchanged 2, removed 1, failed 1)"),
        "{err}"
    );
    assert!(!dir.join("pkg_summary.zst").exists());
}

fn index_of_a_missing_directory_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = pkgsum(&["index", "nope"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("indexing nope"), "{}", stderr(&out));
}

async fn rebuild_verify_and_apply_event_against_s3() {
    use pkgsum::store::{PutOptions, Store};
    let store = common::s3_bucket().await;
    let bucket = store.bucket().to_owned();
    let oracle = common::oracle();
    for name in ["minimal-1.0.tgz", "scripts-3.1.tgz", "desc-edge-1.0.tgz"] {
        let body = fs::read(oracle.join(name)).unwrap();
        store
            .put(&format!("All/{name}"), body.into(), PutOptions::default())
            .await
            .unwrap();
    }
    let url = format!("s3://{bucket}/All/");
    let here = std::env::current_dir().unwrap();

    // Before anything is indexed, verify reports every package.
    let out = pkgsum(&["verify", &url], &here);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("All/minimal-1.0.tgz: not indexed"));

    let out = pkgsum(&["rebuild", &url], &here);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("read 3"), "{}", stderr(&out));
    let out = pkgsum(&["verify", &url], &here);
    assert!(
        out.status.success(),
        "{}{}",
        stderr(&out),
        String::from_utf8_lossy(&out.stdout)
    );

    // A delete with no event: drift, then repaired by apply-event from stdin.
    store.delete("All/scripts-3.1.tgz").await.unwrap();
    let out = pkgsum(&["verify", &url], &here);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("All/scripts-3.1.tgz: indexed, but gone")
    );
    let event =
        common::s3_event(&bucket, "ObjectRemoved:Delete", &["All/scripts-3.1.tgz"]).to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pkgsum"))
        .args(["apply-event", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(event.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("removed 1"), "{}", stderr(&out));
    let out = pkgsum(&["verify", &url], &here);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let want = [
        fs::read(oracle.join("desc-edge-1.0.tgz.expected")).unwrap(),
        fs::read(oracle.join("minimal-1.0.tgz.expected")).unwrap(),
    ]
    .concat();
    assert!(common::published(&store, "All/pkg_summary.gz").await == want);

    // An event naming a key that cannot be read (no such bucket) fails.
    let bad = common::s3_event(
        "no-such-bucket-pkgsum",
        "ObjectCreated:Put",
        &["All/x-1.tgz"],
    )
    .to_string();
    let path = std::env::temp_dir().join(format!("pkgsum-bad-event-{}.json", std::process::id()));
    fs::write(&path, bad).unwrap();
    let out = pkgsum(&["apply-event", path.to_str().unwrap()], &here);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let _ = fs::remove_file(path);
}

crate::harness::trials![
    test record_prints_what_pkg_info_prints_for_many_files,
    test record_reports_bad_files_and_goes_on,
    test record_honours_the_metadata_limit,
    test index_writes_summaries_and_exits_1_on_a_bad_package,
    test index_of_a_missing_directory_fails_clearly,
    s3 rebuild_verify_and_apply_event_against_s3,
];
