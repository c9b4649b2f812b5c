//! `index_directory` on real directories: byte-exact outputs, incremental reads,
//! bad packages, stale variants, odd names.

use crate::common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use pkgsum::compression::Compression;
use pkgsum::config::Config;
use pkgsum::create::PackageBuilder;
use pkgsum::directory::index_directory;
use pkgsum::limit::Limits;
use pkgsum::repo::Report;

fn copy_oracle(dir: &Path) {
    for entry in fs::read_dir(common::oracle()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(".tgz") || name.ends_with(".tbz") {
            fs::write(dir.join(&name), fs::read(&path).unwrap()).unwrap();
        }
    }
}

fn index(dir: &Path, config: &Config) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(index_directory(dir, config, &())).unwrap()
}

fn output(dir: &Path, format: Compression) -> Vec<u8> {
    common::decompress(&fs::read(dir.join(pkgsum::summary::file_name(format))).unwrap())
}

/// The summary rebuilt independently: `pkgsum record` of every package
/// file in name order, as `pkg_info -X *.tgz | gzip` would.
fn expected_summary(dir: &Path, suffixes: &[&str]) -> Vec<u8> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| suffixes.iter().any(|s| n.ends_with(s)))
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|n| pkgsum::record_file(&dir.join(n), &Limits::default()).ok())
        .flat_map(|(record, _)| record)
        .collect()
}

fn assert_outputs(dir: &Path, want: &[u8]) {
    for format in pkgsum::summary::DEFAULT_FORMATS {
        assert!(
            output(dir, format) == want,
            "{format:?} differs from the expected summary"
        );
    }
}

fn oracle_directory_gives_pkg_info_output_in_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    copy_oracle(tmp.path());
    let report = index(tmp.path(), &Config::default());
    assert_eq!(report.read.len(), 16);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(report.published);
    // pkg_info -X *.tgz in LC_ALL=C order is exactly the sorted summary.
    let all = fs::read(common::oracle().join("all.expected")).unwrap();
    assert_outputs(tmp.path(), &all);
    // pkg_info's own warning, the name pkgin would download instead, and
    // an OS_VERSION that a CRLF +BUILD_INFO ends with a `\r`.
    let crlf = "OS_VERSION is \"6.1.0\\r\", where 14 of 15 packages have \"6.1.0\": \
                pkg_add refuses or warns of a package built for another platform";
    let mismatch = "pkgin downloads \"real-name-2.0nb3.tgz\" for PKGNAME=real-name-2.0nb3, \
                    not this file: the package is listed but cannot be installed \
                    (rename it to \"real-name-2.0nb3.tgz\")";
    // And the DEPENDS no oracle package satisfies: dewey ranges, globs and
    // alternates as pkg_install writes them.
    let unresolved = |file: &str, dep: &str| {
        (
            file.to_owned(),
            format!(
                "DEPENDS {dep} is satisfied by no package in this repository: pkgin \
                 cannot install this package unless another repository provides it"
            ),
        )
    };
    let meta = [
        "bar-[0-9]*",
        "baz{,-nox11}>=2.0<3",
        "cmdline-dep>=1.0",
        "libfoo>=1.2",
        "other-cmdline-dep-[0-9]*",
        "py311-quux>=0.5.1nb2",
        "qux-1.0{,nb[0-9]*}",
    ];
    let mut want = vec![("buildinfo-edge-0.1.tgz".to_owned(), crlf.to_owned())];
    want.extend(
        meta.iter()
            .map(|dep| unresolved("meta-deps-2.3nb1.tgz", dep)),
    );
    want.push((
        "minimal-1.0.tgz".to_owned(),
        "build information missing".to_owned(),
    ));
    want.push(("name-mismatch-1.0.tgz".to_owned(), mismatch.to_owned()));
    for dep in ["gettext-lib>=0.22", "zlib>=1.2.3"] {
        want.push(unresolved("rich-buildinfo-4.5.6nb2.tgz", dep));
    }
    assert_eq!(report.warnings, want);
    // The directory gets the status object a bucket gets.
    let status: serde_json::Value =
        serde_json::from_slice(&fs::read(tmp.path().join(".pkgsum/status.json")).unwrap()).unwrap();
    assert_eq!(status["packages"], 16);
    assert_eq!(
        status["warnings"],
        serde_json::json!([
            {"file": "minimal-1.0.tgz", "warning": "build information missing"},
            {"file": "name-mismatch-1.0.tgz", "warning": mismatch},
        ])
    );
}

fn only_new_changed_and_deleted_packages_are_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_oracle(dir);
    let first = index(dir, &Config::default());
    assert_eq!(first.read.len(), 16);

    // Unchanged: nothing read, nothing rewritten.
    let mtime = fs::metadata(dir.join("pkg_summary.gz"))
        .unwrap()
        .modified()
        .unwrap();
    let again = index(dir, &Config::default());
    assert!(again.read.is_empty() && again.removed.is_empty());
    assert_eq!(again.unchanged, 16);
    assert_eq!(again.bytes_fetched, 0);
    assert!(!again.published);
    assert_eq!(
        fs::metadata(dir.join("pkg_summary.gz"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );

    // Added.
    // Uncompressed, so that a changed comment keeps the file size.
    let added = PackageBuilder::new("added-2.0")
        .compression(Compression::None)
        .build()
        .unwrap();
    fs::write(dir.join("added-2.0.tgz"), &added).unwrap();
    let report = index(dir, &Config::default());
    assert_eq!(report.read, vec!["added-2.0.tgz"]);
    assert!(report.published);
    assert_outputs(dir, &expected_summary(dir, &[".tgz"]));

    // Replaced by rename, as rsync and uploads do.
    let replacement = PackageBuilder::new("minimal-1.0")
        .member("+COMMENT", "Replaced\n")
        .build()
        .unwrap();
    fs::write(dir.join(".tmp-upload"), &replacement).unwrap();
    fs::rename(dir.join(".tmp-upload"), dir.join("minimal-1.0.tgz")).unwrap();
    let report = index(dir, &Config::default());
    assert_eq!(report.read, vec!["minimal-1.0.tgz"]);
    let summary = output(dir, Compression::Gzip);
    assert!(summary.windows(17).any(|w| w == b"COMMENT=Replaced\n"));
    assert_outputs(dir, &expected_summary(dir, &[".tgz"]));

    // Rewritten in place with the same size and the old mtime restored.
    let path = dir.join("added-2.0.tgz");
    let before = fs::metadata(&path).unwrap();
    let same_size = PackageBuilder::new("added-2.0")
        .member("+COMMENT", "Same size, other text\n")
        .compression(Compression::None)
        .build()
        .unwrap();
    assert_eq!(same_size.len(), added.len());
    fs::write(&path, &same_size).unwrap();
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(before.modified().unwrap())
        .unwrap();
    assert_eq!(fs::metadata(&path).unwrap().ino(), before.ino());
    let report = index(dir, &Config::default());
    assert_eq!(report.read, vec!["added-2.0.tgz"]);
    assert_outputs(dir, &expected_summary(dir, &[".tgz"]));

    // Deleted.
    fs::remove_file(dir.join("scripts-3.1.tgz")).unwrap();
    let report = index(dir, &Config::default());
    assert!(report.read.is_empty());
    assert_eq!(report.removed, vec!["scripts-3.1.tgz"]);
    assert_outputs(dir, &expected_summary(dir, &[".tgz"]));
    assert!(
        !output(dir, Compression::Xz)
            .windows(19)
            .any(|w| w == b"PKGNAME=scripts-3.1")
    );

    // No temporary files are left behind.
    let leftovers: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("pkgsum-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn a_bad_package_costs_only_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_oracle(dir);
    let good = fs::read(dir.join("scripts-3.1.tgz")).unwrap();
    fs::write(dir.join("broken-1.0.tgz"), &good[..good.len() / 3]).unwrap();
    fs::write(dir.join("empty-1.0.tgz"), b"").unwrap();

    let report = index(dir, &Config::default());
    let failed: Vec<&str> = report.failures.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(failed, vec!["broken-1.0.tgz", "empty-1.0.tgz"]);
    assert!(
        report.failures[0].1.contains("truncated"),
        "{:?}",
        report.failures
    );
    assert_eq!(report.failures[1].1, "empty file");
    assert_eq!(report.packages, 16);
    let all = fs::read(common::oracle().join("all.expected")).unwrap();
    assert_outputs(dir, &all);

    // Unchanged bad files are reported again without being read again.
    let again = index(dir, &Config::default());
    assert!(again.read.is_empty());
    assert_eq!(again.failures.len(), 2);

    // Fixing it indexes it.
    fs::write(dir.join("broken-1.0.tgz"), &good).unwrap();
    let fixed = index(dir, &Config::default());
    assert_eq!(fixed.read, vec!["broken-1.0.tgz"]);
    assert_eq!(fixed.failures.len(), 1);
    assert_outputs(dir, &expected_summary(dir, &[".tgz"]));
}

fn stale_zstd_is_removed_and_written_only_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_oracle(dir);
    fs::write(dir.join("pkg_summary.zst"), b"stale").unwrap();
    index(dir, &Config::default());
    assert!(!dir.join("pkg_summary.zst").exists());

    let mut with_zstd = Config::default();
    with_zstd.formats.push(Compression::Zstd);
    let report = index(dir, &with_zstd);
    assert!(report.published && report.read.is_empty());
    let all = fs::read(common::oracle().join("all.expected")).unwrap();
    assert!(output(dir, Compression::Zstd) == all);

    // Turning zstd off again removes it rather than leaving it stale.
    let report = index(dir, &Config::default());
    assert!(report.published);
    assert!(!dir.join("pkg_summary.zst").exists());
}

fn suffixes_select_packages() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_oracle(dir);
    let mut options = Config::default();
    options.suffixes.push(".tbz".to_owned());
    let report = index(dir, &options);
    assert_eq!(report.packages, 17);
    assert_outputs(dir, &expected_summary(dir, &[".tgz", ".tbz"]));
}

fn odd_file_names_are_kept_verbatim_and_sorted_bytewise() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for name in [
        "b+plus-1.0.tgz",
        "a space-1.0.tgz",
        "ü-unicode-1.0.tgz",
        "B-upper-1.0.tgz",
    ] {
        let bytes = PackageBuilder::new(name.trim_end_matches(".tgz"))
            .build()
            .unwrap();
        fs::write(dir.join(name), bytes).unwrap();
    }
    index(dir, &Config::default());
    let summary = output(dir, Compression::Gzip);
    let names: Vec<String> = common::split_records(&summary)
        .iter()
        .map(|r| {
            let line = r
                .split(|&b| b == b'\n')
                .find(|l| l.starts_with(b"FILE_NAME="))
                .unwrap();
            String::from_utf8(line[10..].to_vec()).unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "B-upper-1.0.tgz",
            "a space-1.0.tgz",
            "b+plus-1.0.tgz",
            "ü-unicode-1.0.tgz"
        ]
    );
}

fn a_broken_state_or_missing_output_is_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_oracle(dir);
    index(dir, &Config::default());

    fs::remove_file(dir.join("pkg_summary.bz2")).unwrap();
    let report = index(dir, &Config::default());
    assert!(report.published && report.read.is_empty());
    assert!(dir.join("pkg_summary.bz2").is_file());

    fs::write(dir.join(".pkgsum/state"), b"pkgsum-state\n\x01garbage").unwrap();
    let report = index(dir, &Config::default());
    assert!(report.state_lost.is_some());
    assert_eq!(report.read.len(), 16);
    let all = fs::read(common::oracle().join("all.expected")).unwrap();
    assert_outputs(dir, &all);
}

fn each_new_summary_is_a_second_later_than_the_last() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let summary = dir.join("pkg_summary.gz");
    // A summary stamped in the future, as after a clock step.
    fs::write(
        dir.join("a-1.tgz"),
        PackageBuilder::new("a-1").build().unwrap(),
    )
    .unwrap();
    index(dir, &Config::default());
    let future = SystemTime::now() + Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&summary)
        .unwrap()
        .set_modified(future)
        .unwrap();

    fs::write(
        dir.join("b-1.tgz"),
        PackageBuilder::new("b-1").build().unwrap(),
    )
    .unwrap();
    index(dir, &Config::default());
    let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let new = fs::metadata(&summary).unwrap().modified().unwrap();
    assert_eq!(secs(new), secs(future) + 1);
}

fn unusable_names_and_own_outputs_are_not_packages() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(
        dir.join("a-1.tgz"),
        PackageBuilder::new("a-1").build().unwrap(),
    )
    .unwrap();
    let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9-1.tgz");
    fs::write(
        dir.join(latin1),
        PackageBuilder::new("cafe-1").build().unwrap(),
    )
    .unwrap();
    // Even a suffix that matches the summary files must not index them.
    let mut options = Config::default();
    options.suffixes.push(".gz".to_owned());
    index(dir, &options);
    let report = index(dir, &options);
    assert_eq!(report.packages, 1);
    assert_eq!(
        report.failures,
        vec![(
            "caf\u{fffd}-1.tgz".to_owned(),
            "file name is not valid UTF-8".to_owned()
        )]
    );
}

/// Packages that would fail beside the others are warned of on every
/// listing pass and by `verify`, and stay indexed: two files with one
/// PKGNAME, and a package for another MACHINE_ARCH than most.
fn duplicates_and_other_platforms_are_warned_of() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(
        dir.join("a-1.0.tgz"),
        PackageBuilder::new("a-1.0").build().unwrap(),
    )
    .unwrap();
    let b = PackageBuilder::new("b-1.0")
        .member(
            "+CONTENTS",
            "@name b-1.0\n@pkgdep a>=1.0\n@pkgdep zlib>=1.2\n@cwd /usr/pkg\n",
        )
        .build()
        .unwrap();
    fs::write(dir.join("b-1.0.tgz"), b).unwrap();
    fs::copy(dir.join("a-1.0.tgz"), dir.join("a-copy.tgz")).unwrap();
    let arm = "BUILD_DATE=2026-11-25 12:00:00 +0000\nCATEGORIES=misc\n\
               MACHINE_ARCH=aarch64\nOPSYS=NetBSD\nOS_VERSION=10.1\nPKGPATH=misc/c\n";
    let c = PackageBuilder::new("c-1.0")
        .member("+BUILD_INFO", arm)
        .build()
        .unwrap();
    fs::write(dir.join("c-1.0.tgz"), c).unwrap();
    let duplicate = |other: &str| {
        format!(
            "PKGNAME=a-1.0 is also in {other}: pkgin keeps one record for a PKGNAME, \
             so only one of them can be installed"
        )
    };
    let platform = "MACHINE_ARCH is \"aarch64\", where 3 of 4 packages have \"x86_64\": \
                    pkg_add refuses or warns of a package built for another platform";
    let unresolved = "DEPENDS zlib>=1.2 is satisfied by no package in this repository: \
                      pkgin cannot install this package unless another repository provides it";
    let beside = vec![
        ("a-1.0.tgz".to_owned(), duplicate("a-copy.tgz")),
        ("a-copy.tgz".to_owned(), duplicate("a-1.0.tgz")),
        ("b-1.0.tgz".to_owned(), unresolved.to_owned()),
        ("c-1.0.tgz".to_owned(), platform.to_owned()),
    ];
    let report = index(dir, &Config::default());
    assert_eq!(report.read.len(), 4);
    let named = |report: &Report| -> Vec<(String, String)> {
        let mut found = report.warnings.clone();
        found.retain(|(_, w)| !w.starts_with("pkgin downloads"));
        found
    };
    assert_eq!(named(&report), beside);
    // a-copy.tgz is also a name pkgin never downloads.
    assert!(
        report
            .warnings
            .iter()
            .any(|(f, w)| f == "a-copy.tgz" && w.starts_with("pkgin downloads \"a-1.0.tgz\""))
    );
    // The status object keeps them, with the generation they were found at.
    let status = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(&fs::read(dir.join(".pkgsum/status.json")).unwrap()).unwrap()
    };
    let listed: Vec<serde_json::Value> = beside
        .iter()
        .map(|(f, w)| serde_json::json!({"file": f, "warning": w}))
        .collect();
    let found = status(dir)["repository_warnings"].clone();
    assert_eq!(found["warnings"], serde_json::Value::from(listed.clone()));
    assert_eq!(found["found_at_generation"], status(dir)["generation"]);
    // A pass that reads nothing still tells them.
    let again = index(dir, &Config::default());
    assert!(again.read.is_empty());
    assert_eq!(again.warnings, beside);
    assert_eq!(status(dir)["repository_warnings"], found);
    // So does `verify`, beside the packages' own warnings.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = pkgsum::store::local::LocalStore::new(dir);
    let config = Config::default();
    let drift = runtime
        .block_on(pkgsum::reconcile::verify(&pkgsum::repo::Repo::new(
            &store, "", &config,
        )))
        .unwrap();
    assert!(drift.is_clean(), "{:?}", drift.lines);
    for warning in &beside {
        assert!(
            drift.warnings.contains(warning),
            "{warning:?} not in {:?}",
            drift.warnings
        );
    }
}

crate::harness::trials![
    test duplicates_and_other_platforms_are_warned_of,
    test oracle_directory_gives_pkg_info_output_in_every_format,
    test only_new_changed_and_deleted_packages_are_touched,
    test a_bad_package_costs_only_itself,
    test stale_zstd_is_removed_and_written_only_on_request,
    test suffixes_select_packages,
    test odd_file_names_are_kept_verbatim_and_sorted_bytewise,
    test a_broken_state_or_missing_output_is_repaired,
    test each_new_summary_is_a_second_later_than_the_last,
    test unusable_names_and_own_outputs_are_not_packages,
];
