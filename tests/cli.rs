//! The `pkgsum` binary as a user runs it: stdout, stderr, exit status.

use crate::common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn pkgsum(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pkgsum"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// `pkgsum` with extra environment, and `input` on standard input.
fn pkgsum_with(args: &[&str], env: &[(&str, &str)], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pkgsum"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The command's standard error holds `text`.
fn assert_said(out: &Output, text: &str) {
    let err = stderr(out);
    assert!(err.contains(text), "{err}");
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An error report is one line, in words: no `Debug` dump of the SDK's
/// error types, no ANSI colour.
fn assert_one_readable_line(out: &Output) {
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "{err}");
    for dump in [
        "Error {",
        "DispatchFailure",
        "ConnectorError",
        "Some(",
        "\x1b[",
    ] {
        assert!(!err.contains(dump), "{err}");
    }
}

fn copy_oracle(dir: &Path, names: &[&str]) {
    for name in names {
        fs::copy(common::oracle().join(name), dir.join(name)).unwrap();
    }
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
    assert_said(&out, "manyfiles-1.0.tgz: more than 100000 bytes");
}

fn index_writes_summaries_and_exits_1_on_a_bad_package() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_oracle(
        dir,
        &[
            "minimal-1.0.tgz",
            "scripts-3.1.tgz",
            "compress-suffix-1.0.tbz",
        ],
    );
    let out = pkgsum(&["index", ".", "--suffix", ".tbz", "--zstd"], dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("3 packages (read 3, unchanged 0, removed 0, unreadable 0)"),
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

    // A bad package: exit 1, listed; the .tbz package stays although this
    // run forgot --suffix .tbz, and the run says why.
    fs::write(dir.join("junk-1.0.tgz"), b"\x1f\x8bnot really gzip").unwrap();
    for _ in 0..2 {
        let out = pkgsum(&["index", "."], dir);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("pkgsum: ./junk-1.0.tgz: corrupt gzip stream"),
            "{err}"
        );
        assert!(
            err.contains("also indexing *.tbz, as earlier runs"),
            "{err}"
        );
        assert!(err.contains("3 packages (read "), "{err}");
        assert!(err.contains("removed 0, unreadable 1)"), "{err}");
        // Said once, not also by a log line.
        assert_eq!(err.matches("junk-1.0.tgz").count(), 1, "{err}");
    }
    assert!(!dir.join("pkg_summary.zst").exists());
}

/// `pkgsum index` and `record` read the same PKGSUM_* settings as the
/// bucket commands and the function; flags override them when given.
fn index_and_record_read_the_shared_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_oracle(dir, &["minimal-1.0.tgz", "compress-suffix-1.0.tbz"]);
    let settings = [
        ("PKGSUM_FORMATS", "gz,zst"),
        ("PKGSUM_SUFFIXES", ".tgz,.tbz"),
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_pkgsum"))
        .args(["index", "."])
        .current_dir(dir)
        .envs(settings)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_said(&out, "2 packages");
    assert!(dir.join("pkg_summary.zst").is_file() && dir.join("pkg_summary.gz").is_file());
    assert!(!dir.join("pkg_summary.xz").exists() && !dir.join("pkg_summary.bz2").exists());

    let oracle = common::oracle();
    let limited = [("PKGSUM_METADATA_LIMIT", "100000")];
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pkgsum"))
            .args(args)
            .current_dir(&oracle)
            .envs(limited)
            .output()
            .unwrap()
    };
    let out = run(&["record", "manyfiles-1.0.tgz"]);
    assert_eq!(out.status.code(), Some(1));
    assert_said(&out, "more than 100000 bytes");
    let out = run(&[
        "record",
        "--metadata-limit",
        "10000000",
        "manyfiles-1.0.tgz",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn index_of_a_missing_directory_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = pkgsum(&["index", "nope"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "pkgsum: nope: No such file or directory (os error 2)\n"
    );
}

fn index_refuses_an_empty_directory_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = pkgsum(&["index", "."], dir);
    assert_eq!(out.status.code(), Some(2));
    assert_said(&out, "no packages found: nothing was published");
    assert_eq!(fs::read_dir(dir).unwrap().count(), 0, "it wrote something");

    let out = pkgsum(&["index", ".", "--allow-empty"], dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(common::decompress(&fs::read(dir.join("pkg_summary.gz")).unwrap()).is_empty());

    // Indexed packages that all vanish: refused, the summary kept.
    copy_oracle(dir, &["minimal-1.0.tgz", "scripts-3.1.tgz"]);
    assert!(pkgsum(&["index", "."], dir).status.success());
    let before = fs::read(dir.join("pkg_summary.xz")).unwrap();
    for name in ["minimal-1.0.tgz", "scripts-3.1.tgz"] {
        fs::remove_file(dir.join(name)).unwrap();
    }
    let out = pkgsum(&["index", "."], dir);
    assert_eq!(out.status.code(), Some(2));
    assert_said(&out, "the index still lists 2 packages, left as it is");
    assert_eq!(fs::read(dir.join("pkg_summary.xz")).unwrap(), before);
}

fn index_says_who_holds_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_oracle(dir, &["minimal-1.0.tgz"]);
    assert!(pkgsum(&["index", "."], dir).status.success());
    // Another run holds the lock, as pkgsum records itself in it.
    let lock_path = dir.join(".pkgsum/lock");
    let mut lock = fs::File::options().write(true).open(&lock_path).unwrap();
    lock.lock().unwrap();
    lock.set_len(0).unwrap();
    lock.write_all(b"pkgsum index (pid 4242)").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pkgsum"))
        .args(["index", "."])
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut first = String::new();
    let mut byte = [0u8; 1];
    while !first.ends_with('\n') && std::io::Read::read(&mut err, &mut byte).unwrap() == 1 {
        first.push(byte[0] as char);
    }
    assert_eq!(
        first,
        "pkgsum: .: waiting for pkgsum index (pid 4242) to finish\n"
    );
    drop(lock);
    assert!(child.wait().unwrap().success());
}

fn index_leaves_hidden_files_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_oracle(dir, &["minimal-1.0.tgz"]);
    // An upload in progress, as some tools name it.
    fs::copy(
        common::oracle().join("scripts-3.1.tgz"),
        dir.join(".scripts-3.1.tgz"),
    )
    .unwrap();
    let out = pkgsum(&["index", "."], dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let gz = common::decompress(&fs::read(dir.join("pkg_summary.gz")).unwrap());
    assert_eq!(
        gz,
        fs::read(common::oracle().join("minimal-1.0.tgz.expected")).unwrap()
    );
}

fn logs_are_detail_on_request_and_never_coloured() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_oracle(dir, &["minimal-1.0.tgz", "scripts-3.1.tgz"]);
    let out = Command::new(env!("CARGO_BIN_EXE_pkgsum"))
        .args(["index", "."])
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains('\x1b'), "colour codes in {err}");
    assert!(err.contains("header read"), "{err}");
    assert!(err.contains("scripts-3.1.tgz"), "{err}");
    // Without RUST_LOG only the command's own lines.
    fs::remove_dir_all(dir.join(".pkgsum")).unwrap();
    let out = pkgsum(&["index", "."], dir);
    let err = stderr(&out);
    assert!(
        !err.contains("header read") && !err.contains("INFO"),
        "{err}"
    );
}

fn record_reads_standard_input() {
    let oracle = common::oracle();
    let body = fs::read(oracle.join("rich-buildinfo-4.5.6nb2.tgz")).unwrap();
    let out = pkgsum_with(&["record", "-"], &[], &body);
    assert!(out.status.success(), "{}", stderr(&out));
    // FILE_NAME is PKGNAME.tgz, the name pkgin fetches, which this
    // fixture has; FILE_SIZE is what came in.
    assert!(out.stdout == fs::read(oracle.join("rich-buildinfo-4.5.6nb2.tgz.expected")).unwrap());
    let out = pkgsum_with(&["record", "--file-name", "x.tgz", "-"], &[], &body);
    assert!(
        stdout(&out).contains("\nFILE_NAME=x.tgz\n"),
        "{}",
        stdout(&out)
    );
}

fn record_of_a_directory_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("x.tgz")).unwrap();
    let out = pkgsum(&["record", "x.tgz"], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "pkgsum: x.tgz: not a package file: it is a directory\n"
    );
}

fn record_into_a_closed_pipe_ends_quietly() {
    // Far more output than a pipe holds, so writes after `head` left fail.
    let args = vec!["scripts-3.1.tgz"; 100];
    let tmp = tempfile::tempdir().unwrap();
    let err = tmp.path().join("err");
    let script = format!(
        r#""$0" record "$@" 2>'{}' | head -c 1 >/dev/null; echo "${{PIPESTATUS[0]}}""#,
        err.display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_pkgsum"))
        .args(&args)
        .current_dir(common::oracle())
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "0", "exit status of pkgsum");
    assert_eq!(fs::read_to_string(err).unwrap(), "");
}

fn demo_refuses_a_directory_that_is_not_empty() {
    let tmp = tempfile::tempdir().unwrap();
    copy_oracle(tmp.path(), &["minimal-1.0.tgz"]);
    let out = pkgsum(&["demo", "."], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert_said(&out, "not empty");
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
}

fn help_is_short_lists_index_first_and_gives_the_exit_rule() {
    let here = std::env::current_dir().unwrap();
    let out = pkgsum(&["--help"], &here);
    let help = stdout(&out);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(commands[0].trim_start().starts_with("index "), "{help}");
    for line in help.lines() {
        assert!(line.len() <= 100, "long line in --help: {line}");
    }
    for command in [
        "index",
        "record",
        "rebuild",
        "verify",
        "apply-event",
        "poll",
        "demo",
    ] {
        let help = stdout(&pkgsum(&[command, "--help"], &here));
        assert!(
            help.contains("Exit status (the same for every command):"),
            "{command}: {help}"
        );
        assert!(
            help.contains("1  done, but some packages are unreadable"),
            "{command}"
        );
    }
    let rebuild = stdout(&pkgsum(&["rebuild", "--help"], &here));
    assert!(!rebuild.contains("default: 32"), "{rebuild}");
}

/// `--help` of every command names each setting it honours, with its
/// default, and none it does not: all from the one table.
fn every_help_names_the_settings_its_command_honours() {
    let here = std::env::current_dir().unwrap();
    let help = stdout(&pkgsum(&["--help"], &here));
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 10, "{help}");
    for command in commands {
        let help = stdout(&pkgsum(&[command, "--help"], &here));
        for setting in pkgsum::settings::SETTINGS {
            let named = format!("  {} (default: {})\n", setting.name, setting.default);
            assert_eq!(
                help.contains(&named),
                pkgsum::settings::honours(command, setting),
                "{command} --help and {}: {help}",
                setting.name
            );
        }
    }
}

/// docs/cli.md is what `pkgsum generate markdown` prints, byte for byte.
fn the_command_reference_is_generated() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = pkgsum(&["generate", "markdown"], &root);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let committed = fs::read_to_string(root.join("docs/cli.md")).unwrap();
    assert!(
        committed == stdout(&out),
        "docs/cli.md is stale: run `cargo run -- generate markdown > docs/cli.md`"
    );
    let tmp = tempfile::tempdir().unwrap();
    let man = tmp.path().join("man");
    let out = pkgsum(&["generate", "man", man.to_str().unwrap()], tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = fs::read_to_string(man.join("pkgsum-index.1")).unwrap();
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH pkgsum-index"),
        "{page}"
    );
    let out = pkgsum(&["generate", "completions", "bash"], tmp.path());
    assert!(
        stdout(&out).contains("pkgsum__subcmd__index"),
        "{}",
        stdout(&out)
    );
}

/// `verify` and `rebuild` take a directory, as a path or `file://`, as
/// they take a bucket.
fn verify_and_rebuild_take_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    copy_oracle(tmp.path(), &["minimal-1.0.tgz"]);
    let out = pkgsum(&["rebuild", "."], tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(tmp.path().join("pkg_summary.gz").exists());
    let url = format!("file://{}", tmp.path().display());
    for repository in [".", url.as_str()] {
        let out = pkgsum(&["verify", repository], tmp.path());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_said(&out, "1 package, 0 unreadable, generation 1: no drift");
    }
    // A package gone behind the index's back is drift.
    fs::remove_file(tmp.path().join("minimal-1.0.tgz")).unwrap();
    let out = pkgsum(&["verify", "."], tmp.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("minimal-1.0.tgz"), "{}", stdout(&out));
    let out = pkgsum(&["verify", "ftp://host/All/"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert_said(
        &out,
        "\"ftp://host/All/\" is not a repository: s3://BUCKET/PREFIX/, a directory",
    );
}

/// Every error the CLI can end with is one line that says each cause
/// once: an error that quotes its source is not followed by it again.
fn every_error_says_each_cause_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("file"), "not a directory").unwrap();
    fs::write(dir.join("credentials"), "ann:plain\n").unwrap();
    // An "event" past the 16 MiB apply-event reads.
    fs::write(dir.join("huge.json"), vec![b' '; (16 << 20) + 1]).unwrap();
    copy_oracle(dir, &["minimal-1.0.tgz"]);
    let store = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ("AWS_CONFIG_FILE", "/nonexistent"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("PKGSUM_AUTH_TOKEN", "a-secret-of-enough-length"),
    ];
    let spool = format!("{}/file/spool", dir.display());
    let cases: Vec<Vec<String>> = [
        vec!["index", "missing"],
        vec!["index", "file"],
        vec!["rebuild", "missing"],
        vec!["verify", "missing"],
        vec!["apply-event", "missing.json"],
        vec!["apply-event", "."],
        vec!["apply-event", "huge.json"],
        vec![
            "gateway",
            "s3://b/All/",
            "--listen",
            "127.0.0.1:0",
            "--credentials",
            "credentials",
        ],
        vec![
            "gateway",
            "s3://b/All/",
            "--listen",
            "127.0.0.1:0",
            "--credentials",
            "missing",
        ],
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--repository",
            "s3://b/All/",
            "--spool",
            &spool,
        ],
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--repository",
            "nope",
            "--spool",
            "spool",
        ],
        vec!["demo", "."],
        vec!["verify", "s3://b/All/"],
    ]
    .into_iter()
    .map(|args| args.into_iter().map(str::to_owned).collect())
    .collect();
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_pkgsum"));
        command.args(&args).current_dir(dir).envs(store);
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        // serve says where it listens before it meets the spool.
        if args[0] != "serve" {
            assert_one_readable_line(&out);
        }
        let line = stderr(&out).lines().last().unwrap_or_default().to_owned();
        if args.contains(&"huge.json") {
            assert!(
                line.contains("larger than 16777216 bytes; not an event"),
                "{line}"
            );
        }
        let causes: Vec<&str> = line.trim_end().split(": ").collect();
        for (i, cause) in causes.iter().enumerate() {
            let again = causes[i + 1..].iter().any(|later| later == cause);
            assert!(
                !again || cause.len() < 8,
                "{args:?} says {cause:?} twice: {line}"
            );
        }
    }
}

/// What a user sees when the store cannot be used at all.
fn store_errors_are_one_readable_line() {
    let tmp = tempfile::tempdir().unwrap();
    let isolated = [
        ("AWS_CONFIG_FILE", "/nonexistent"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_REGION", "us-east-1"),
    ];
    // Nothing listens on port 1.
    let mut dead = isolated.to_vec();
    dead.extend([
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]);
    let out = pkgsum_with(&["verify", "s3://b/All/"], &dead, b"");
    assert_eq!(out.status.code(), Some(2));
    assert_one_readable_line(&out);
    assert!(
        stderr(&out).starts_with(
            "pkgsum: GET s3://b/All/.pkgsum/state: cannot reach the store: http://127.0.0.1:1: Connection refused"
        ),
        "{}",
        stderr(&out)
    );

    // No credentials anywhere.
    let mut bare: Vec<(&str, &str)> = isolated.to_vec();
    bare.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:1"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_pkgsum"));
    command
        .args(["rebuild", "s3://b/All/"])
        .current_dir(tmp.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .envs(bare.iter().copied());
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_one_readable_line(&out);
    // A writer first learns the store's conditional writes, on a scratch
    // key of the repository.
    assert_said(&out, "PUT s3://b/All/.pkgsum/probe-");
    assert_said(&out, ": no credentials: ");

    // Settings and arguments that cannot be used.
    let out = pkgsum_with(&["verify", "s3://b/"], &[("PKGSUM_FORMATS", "gz,rar")], b"");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "pkgsum: PKGSUM_FORMATS=\"gz,rar\": expected a list of gz, bz2, xz, zst\n"
    );
    let out = pkgsum_with(&["rebuild", "http://b/All/"], &[], b"");
    assert_eq!(out.status.code(), Some(2));
    assert_one_readable_line(&out);
    let out = pkgsum_with(&["apply-event", "-"], &[], b"{\"hello\": 1}");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "pkgsum: (stdin): not an S3, SQS, SNS or EventBridge event; nothing applied\n"
    );
}

async fn rebuild_verify_and_apply_event_against_s3() {
    use pkgsum::store::Store;
    let store = common::s3_bucket().await;
    let bucket = store.bucket().to_owned();
    let oracle = common::oracle();
    common::upload_oracle(
        &store,
        "All/",
        &["minimal-1.0.tgz", "scripts-3.1.tgz", "desc-edge-1.0.tgz"],
    )
    .await;
    let url = format!("s3://{bucket}/All/");
    let here = std::env::current_dir().unwrap();

    // Before anything is indexed, verify reports every package.
    let out = pkgsum(&["verify", &url], &here);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("All/minimal-1.0.tgz: not indexed"));

    let out = pkgsum(&["rebuild", &url], &here);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_said(&out, "3 packages: read 3");
    let out = pkgsum(&["verify", &url], &here);
    assert!(
        out.status.success(),
        "{}{}",
        stderr(&out),
        String::from_utf8_lossy(&out.stdout)
    );
    // A package's warnings are told, and are no drift.
    assert!(
        stderr(&out).contains("All/minimal-1.0.tgz: warning: build information missing"),
        "{}",
        stderr(&out)
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
    assert_said(&out, "removed 1");
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

    // An event naming a bucket that does not exist: exit 2, in words.
    let bad = common::s3_event(
        "no-such-bucket-pkgsum",
        "ObjectCreated:Put",
        &["All/x-1.tgz"],
    )
    .to_string();
    let out = pkgsum_with(&["apply-event", "-"], &[], bad.as_bytes());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_one_readable_line(&out);
    assert_eq!(
        stderr(&out),
        "pkgsum: GET s3://no-such-bucket-pkgsum/All/.pkgsum/state: the bucket \"no-such-bucket-pkgsum\" does not exist\n"
    );
    for command in ["rebuild", "verify"] {
        let out = pkgsum(&[command, "s3://no-such-bucket-pkgsum/All/"], &here);
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert_one_readable_line(&out);
        assert_said(&out, "does not exist");
    }

    // `aws sqs receive-message` output is an event too.
    store.delete("All/minimal-1.0.tgz").await.unwrap();
    let body = common::s3_event(&bucket, "ObjectRemoved:Delete", &["All/minimal-1.0.tgz"]);
    let output = serde_json::json!({"Messages": [
        {"MessageId": "m1", "ReceiptHandle": "r1", "Body": body.to_string()}
    ]});
    let out = pkgsum_with(&["apply-event", "-"], &[], output.to_string().as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_said(&out, "1 package: read 0, removed 1");
}

/// One rule for every command: 1 while a package is unreadable, and each
/// is listed every time; 2 when the command could not do its work.
async fn exit_codes_and_counts_agree_between_commands() {
    let store = common::s3_bucket().await;
    let bucket = store.bucket().to_owned();
    let here = std::env::current_dir().unwrap();
    let url = format!("s3://{bucket}/All/");
    let put = |key: &str, body: Vec<u8>| {
        let store = store.clone();
        let key = key.to_owned();
        async move {
            use pkgsum::store::{PutOptions, Store};
            store
                .put(&key, body.into(), PutOptions::default())
                .await
                .unwrap();
        }
    };
    put(
        "All/good-1.0.tgz",
        fs::read(common::oracle().join("minimal-1.0.tgz")).unwrap(),
    )
    .await;
    put("All/bad-1.0.tgz", b"\x1f\x8bnot gzip at all".to_vec()).await;
    let event = common::s3_event(
        &bucket,
        "ObjectCreated:Put",
        &["All/good-1.0.tgz", "All/bad-1.0.tgz"],
    );
    let out = pkgsum_with(&["apply-event", "-"], &[], event.to_string().as_bytes());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_said(&out, &format!("pkgsum: {url}bad-1.0.tgz: corrupt gzip"));

    // An event for the good package only still lists the bad one.
    let event = common::s3_event(&bucket, "ObjectCreated:Put", &["All/good-1.0.tgz"]);
    let out = pkgsum_with(&["apply-event", "-"], &[], event.to_string().as_bytes());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_said(&out, "bad-1.0.tgz: corrupt gzip");
    assert_said(
        &out,
        "1 package: read 0, removed 0, unchanged 1, unreadable 1",
    );

    let out = pkgsum(&["rebuild", &url], &here);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_said(&out, "unreadable 1");
    assert_said(&out, "bad-1.0.tgz: corrupt gzip");

    let out = pkgsum(&["verify", &url], &here);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("All/bad-1.0.tgz: unreadable: corrupt gzip"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).ends_with("1 package, 1 unreadable, generation 1: no drift\n"),
        "{}",
        stderr(&out)
    );

    // Deleted without an event: gone from the bucket, not "indexed".
    use pkgsum::store::Store;
    store.delete("All/bad-1.0.tgz").await.unwrap();
    let out = pkgsum(&["verify", &url], &here);
    assert!(
        stdout(&out).contains("All/bad-1.0.tgz: recorded as unreadable, but gone from the bucket"),
        "{}",
        stdout(&out)
    );
    let out = pkgsum(&["rebuild", &url], &here);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(pkgsum(&["verify", &url], &here).status.code(), Some(0));

    // A mistyped prefix publishes nothing, unless asked.
    let typo = format!("s3://{bucket}/Al/");
    let out = pkgsum(&["rebuild", &typo], &here);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "pkgsum: {typo}: no packages found: nothing was published (is the path right? --allow-empty or PKGSUM_ALLOW_EMPTY=1 publishes an empty summary)\n"
        )
    );
    assert!(store.head("Al/pkg_summary.gz").await.unwrap().is_none());
    let out = pkgsum(&["rebuild", &typo, "--allow-empty"], &here);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(store.head("Al/pkg_summary.gz").await.unwrap().is_some());
}

/// A lost state, as a user meets it: verify says so, rebuild says what it
/// did, and the next upload is published.
async fn rebuild_repairs_a_lost_state_and_says_so() {
    use pkgsum::store::{PutOptions, Store};
    let store = common::s3_bucket().await;
    let url = format!("s3://{}/All/", store.bucket());
    let here = std::env::current_dir().unwrap();
    for name in ["minimal-1.0.tgz", "scripts-3.1.tgz", "desc-edge-1.0.tgz"] {
        common::upload_oracle(&store, "All/", &[name]).await;
        assert!(pkgsum(&["rebuild", &url], &here).status.success());
    }
    store.delete("All/.pkgsum/state").await.unwrap();
    let out = pkgsum(&["verify", &url], &here);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out)
            .contains("All/.pkgsum/state: missing, while the summaries are at generation 3"),
        "{}",
        stdout(&out)
    );
    let out = pkgsum(&["rebuild", &url], &here);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_said(
        &out,
        &format!(
            "pkgsum: {url}.pkgsum/state was missing; recreated from a listing at generation 4, above the published generation 3"
        ),
    );
    assert_eq!(pkgsum(&["verify", &url], &here).status.code(), Some(0));
    let body = fs::read(common::oracle().join("comment-empty-1.0.tgz")).unwrap();
    store
        .put(
            "All/comment-empty-1.0.tgz",
            body.into(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let event = common::s3_event(
        store.bucket(),
        "ObjectCreated:Put",
        &["All/comment-empty-1.0.tgz"],
    );
    assert!(
        pkgsum_with(&["apply-event", "-"], &[], event.to_string().as_bytes())
            .status
            .success()
    );
    let summary = common::published(&store, "All/pkg_summary.gz").await;
    assert_eq!(common::split_records(&summary).len(), 4);
}

/// Ceph RGW's own notification shape (the key as it is, eventSource
/// "ceph:s3") applied by `pkgsum apply-event`: the store's If-Match
/// dialect is probed, so the commit succeeds where every commit used to
/// be refused ("still contended").
async fn apply_event_commits_to_ceph_rgw() {
    use pkgsum::store::Store;
    let store = pkgsum::testing::rgw_bucket().await;
    let key = "All/with space+plus-1.0.tgz";
    let package = pkgsum::create::PackageBuilder::new("with space+plus-1.0")
        .build()
        .unwrap();
    store
        .put(key, package.into(), pkgsum::store::PutOptions::default())
        .await
        .unwrap();
    let event = serde_json::json!({"Records": [{
        "eventVersion": "2.2", "eventSource": "ceph:s3", "awsRegion": "",
        "eventName": "ObjectCreated:Put", "opaqueData": "",
        "s3": {"bucket": {"name": store.bucket()},
               "object": {"key": key, "metadata": [], "versionId": ""}}
    }]});
    let var = |name: &str| std::env::var(name).unwrap();
    let (endpoint, access, secret) = (
        var("PKGSUM_RGW_ENDPOINT"),
        var("PKGSUM_RGW_ACCESS_KEY"),
        var("PKGSUM_RGW_SECRET_KEY"),
    );
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", access.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ("AWS_REGION", "default"),
        ("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required"),
        ("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required"),
        ("RUST_LOG", "pkgsum=info"),
    ];
    let out = pkgsum_with(&["apply-event", "-"], &env, event.to_string().as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_said(&out, "If-Match with the ETag unquoted");
    assert_said(&out, "1 package: read 1");
    let summary = common::published(&store, "All/pkg_summary.gz").await;
    let text = String::from_utf8_lossy(&summary);
    assert!(
        text.contains("FILE_NAME=with space+plus-1.0.tgz\n"),
        "{text}"
    );
}

crate::harness::trials![
    rgw apply_event_commits_to_ceph_rgw,
    test record_prints_what_pkg_info_prints_for_many_files,
    test record_reports_bad_files_and_goes_on,
    test record_honours_the_metadata_limit,
    test record_reads_standard_input,
    test record_of_a_directory_says_so,
    test record_into_a_closed_pipe_ends_quietly,
    test index_writes_summaries_and_exits_1_on_a_bad_package,
    test index_of_a_missing_directory_fails_clearly,
    test index_and_record_read_the_shared_settings,
    test index_refuses_an_empty_directory_unless_allowed,
    test index_says_who_holds_the_lock,
    test index_leaves_hidden_files_alone,
    test logs_are_detail_on_request_and_never_coloured,
    test demo_refuses_a_directory_that_is_not_empty,
    test help_is_short_lists_index_first_and_gives_the_exit_rule,
    test every_help_names_the_settings_its_command_honours,
    test the_command_reference_is_generated,
    test verify_and_rebuild_take_a_directory,
    test every_error_says_each_cause_once,
    test store_errors_are_one_readable_line,
    s3 rebuild_verify_and_apply_event_against_s3,
    s3 exit_codes_and_counts_agree_between_commands,
    s3 rebuild_repairs_a_lost_state_and_says_so,
];
