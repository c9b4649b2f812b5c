//! Golden test: every `*.expected` under the shared oracle and real
//! fixtures, compared byte for byte with what pkgsum prints. New fixtures
//! of the `NAME.expected` beside `NAME` kind are picked up with no code
//! change; a file no rule understands fails the test.

use crate::common;
use crate::harness;
use libtest_mimic::Trial;

use std::fs;
use std::path::{Path, PathBuf};

use pkgsum::limit::Limits;
use pkgsum::record;

/// pkg_info could not read these; the fixture README gives the package
/// whose record they must reproduce (with their own FILE_NAME/FILE_SIZE).
const DERIVED: [(&str, &str); 1] = [(
    "negative/compress-zstd-recompressed-1.0.tgz",
    "compress-gzip-1.0.tgz",
)];

/// pkg_info runs under other configurations, kept for information only.
const INFORMATIONAL: [&str; 2] = [".noconf.expected", ".unpatched.expected"];

fn expected_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            expected_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "expected") {
            out.push(path);
        }
    }
}

fn is_signed(package: &Path) -> bool {
    fs::read(package).unwrap().starts_with(b"!<arch>\n")
}

fn ours(package: &Path) -> Vec<u8> {
    pkgsum::record_file(package, &Limits::default())
        .unwrap_or_else(|e| panic!("{}: {e}", package.display()))
        .0
}

/// The record of a package as an installed package shows it: no
/// FILE_NAME/FILE_SIZE.
fn ours_installed(package: &Path) -> Vec<u8> {
    let file = fs::File::open(package).unwrap();
    let header = pkgsum::header::read_header(file, &Limits::default()).unwrap();
    record::render(&header.metadata, None)
}

/// The expectation for a package's record file, signed or not.
fn expectation(package: &Path, expected: &[u8]) -> Vec<u8> {
    if is_signed(package) {
        common::record_lines(expected)
    } else {
        expected.to_vec()
    }
}

/// Records of every `*.tgz` in `dir`, in `LC_ALL=C` glob order, as
/// `pkg_info -X *.tgz` printed them.
fn all_in(dir: &Path) -> (Vec<u8>, bool) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tgz"))
        .collect();
    names.sort();
    let signed = names.iter().any(|p| is_signed(p));
    (names.iter().flat_map(|p| ours(p)).collect(), signed)
}

/// Replaces FILE_NAME/FILE_SIZE lines with those of `package`.
fn with_file_lines(record: &[u8], package: &Path) -> Vec<u8> {
    let name = package.file_name().unwrap().to_str().unwrap();
    let size = fs::metadata(package).unwrap().len();
    let mut out = Vec::new();
    for line in record.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"FILE_NAME=") {
            out.extend_from_slice(format!("FILE_NAME={name}\n").as_bytes());
        } else if line.starts_with(b"FILE_SIZE=") {
            out.extend_from_slice(format!("FILE_SIZE={size}\n").as_bytes());
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

fn is_informational(file: &Path) -> bool {
    let name = file.file_name().unwrap().to_str().unwrap();
    INFORMATIONAL.iter().any(|s| name.ends_with(s))
}

/// What pkgsum must print for one golden file under `root` (a fixture
/// set), and what it printed.
fn compare(root: &Path, file: &Path) -> (Vec<u8>, Vec<u8>) {
    let name = file.file_name().unwrap().to_str().unwrap();
    let expected = fs::read(file).unwrap();
    let dir = file.parent().unwrap();
    let stem = name.strip_suffix(".expected").unwrap();
    let beside = dir.join(stem);
    let relative = beside
        .strip_prefix(root)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();

    if let Some((_, source)) = DERIVED.iter().find(|(d, _)| *d == relative) {
        let source = root.join(source);
        let source_expected = fs::read(format!("{}.expected", source.display())).unwrap();
        return (with_file_lines(&source_expected, &beside), ours(&beside));
    }
    if beside.is_file() {
        return (expectation(&beside, &expected), ours(&beside));
    }
    if stem == "all" && dir.ends_with("installed") {
        // readdir order, not sorted: compare as sorted lists of records.
        let mut want = common::split_records(&expected);
        let mut got: Vec<Vec<u8>> = want
            .iter()
            .map(|r| {
                let pkgname = std::str::from_utf8(record::pkgname(r).unwrap()).unwrap();
                ours_installed(&dir.join("..").join(format!("{pkgname}.tgz")))
            })
            .collect();
        want.sort();
        got.sort();
        return (want.concat(), got.concat());
    }
    if stem == "all" {
        let (got, signed) = all_in(dir);
        let want = if signed {
            common::record_lines(&expected)
        } else {
            expected
        };
        return (want, got);
    }
    if dir.ends_with("installed") {
        return (
            expected,
            ours_installed(&dir.join("..").join(format!("{stem}.tgz"))),
        );
    }
    // variants/NAME.tgz.<form>.expected: the same package reached by
    // another path form.
    if let Some((package, _form)) = stem.rsplit_once('.') {
        let package = dir.join("..").join(package);
        if package.is_file() {
            return (expectation(&package, &expected), ours(&package));
        }
    }
    panic!("no rule for golden file {}", file.display());
}

/// One golden file: pkgsum's output must equal it byte for byte.
fn golden_file(root: &Path, file: &Path) {
    let (want, got) = compare(root, file);
    assert!(!want.is_empty(), "{}: empty expectation", file.display());
    assert!(
        want == got,
        "{}\n--- want\n{}--- got\n{}",
        file.display(),
        String::from_utf8_lossy(&want),
        String::from_utf8_lossy(&got)
    );
}

/// One trial per golden file of a fixture set, named by its path.
fn golden_trials(set: &str, root: PathBuf) -> Vec<Trial> {
    let mut files = Vec::new();
    expected_files(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|file| !is_informational(file))
        .map(|file| {
            let relative = file.strip_prefix(&root).unwrap().display().to_string();
            let root = root.clone();
            Trial::test(format!("golden::{set}/{relative}"), move || {
                golden_file(&root, &file);
                Ok(())
            })
        })
        .collect()
}

/// Every golden file: the oracle set always; the third-party set when it
/// is there, else one trial that says why it did not run.
pub fn trials() -> Vec<Trial> {
    let mut trials = golden_trials("oracle", common::oracle());
    // 17 top-level oracle records, 2 signed, and the derived, installed,
    // variant and all-in-one files: a lost directory must not go unseen.
    assert!(
        trials.len() >= 25,
        "only {} oracle golden files",
        trials.len()
    );
    match common::real_fixtures() {
        Some(real) => trials.extend(golden_trials("real", real)),
        None => trials.push(harness::ignored(
            "golden::real",
            "the third-party fixtures are not at ../shared/fixtures/real (set PKGSUM_REAL_FIXTURES)",
        )),
    }
    trials.extend(more_trials());
    trials
}

fn file_name_is_the_text_after_the_last_slash() {
    let oracle = common::oracle();
    let want = fs::read(oracle.join("variants/minimal-1.0.tgz.relpath.expected")).unwrap();
    let relative = oracle.join("signed/../minimal-1.0.tgz");
    assert_eq!(ours(&relative), want);
    let absolute = fs::canonicalize(oracle.join("minimal-1.0.tgz")).unwrap();
    assert_eq!(ours(&absolute), want);
}

fn signed_packages_describe_the_outer_file() {
    let oracle = common::oracle();
    for name in ["signed-gpg-1.0.tgz", "signed-x509-1.0.tgz"] {
        let path = oracle.join("signed").join(name);
        let header =
            pkgsum::header::read_header(fs::File::open(&path).unwrap(), &Limits::default())
                .unwrap();
        let hash = header.signature.expect("signed").hash;
        assert_eq!(hash.algorithm, "SHA512");
        assert_eq!(hash.pkgname, name.trim_end_matches(".tgz"));
        let record = ours(&path);
        let size = fs::metadata(&path).unwrap().len();
        let line = format!("FILE_SIZE={size}\n");
        assert!(
            record.windows(line.len()).any(|w| w == line.as_bytes()),
            "{name}: record lacks {line:?}"
        );
    }
}

fn only_the_front_of_a_large_package_is_read() {
    // bigpayload-1.0.tgz is 5 MiB of random payload after small metadata.
    let path = common::oracle().join("bigpayload-1.0.tgz");
    let size = fs::metadata(&path).unwrap().len();
    let header =
        pkgsum::header::read_header(fs::File::open(&path).unwrap(), &Limits::default()).unwrap();
    eprintln!("bigpayload: read {} of {size} bytes", header.consumed);
    assert!(size > 5_000_000);
    assert!(
        header.consumed < 64 * 1024,
        "read {} bytes",
        header.consumed
    );
}

crate::harness::trials! {
    fn more_trials;
    test file_name_is_the_text_after_the_last_slash,
    test signed_packages_describe_the_outer_file,
    test only_the_front_of_a_large_package_is_read,
}
