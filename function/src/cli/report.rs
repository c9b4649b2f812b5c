//! What the commands tell a person: logs on request, a progress bar on a
//! terminal, what a pass did, and how a command ends: its verdict, or its
//! error in one line.

use std::io::{self, IsTerminal};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use pkgsum::dispatch::Outcome;
use pkgsum::excerpt::{Bare, Escaped};
use pkgsum::progress::Progress;
use pkgsum::repo::Report;
use pkgsum::verdict::Verdict;

/// Logs go to stderr, at `default` unless RUST_LOG says otherwise, and
/// are coloured only on a terminal.
pub fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(io::stderr)
        .init();
}

/// The verdict a command ends with; an error is printed first, in one
/// line. A closed stdout (`pkgsum record ... | head`) ends it quietly.
pub fn finish(result: anyhow::Result<Verdict>) -> Verdict {
    match result {
        Ok(verdict) => verdict,
        Err(err) if is_broken_pipe(&err) => Verdict::Indexed,
        Err(err) => {
            eprintln!("pkgsum: {}", one_line(&err));
            Verdict::Failed
        }
    }
}

/// An error and its causes in one line, each cause once: a cause whose
/// text the line already holds (an error that quotes its source) adds
/// nothing, and neither does anything below it.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            break;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

pub use pkgsum::excerpt::count;

/// A progress bar on stderr; indicatif draws nothing when stderr is not a
/// terminal, so logs never fill with it.
pub struct Bar {
    bar: ProgressBar,
    /// What the pass is about, for the note when it must wait.
    place: String,
}

impl Bar {
    pub fn new(what: &str, place: &str) -> anyhow::Result<Bar> {
        let style = ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{pos}}/{{len}} [{{bar:30}}] {{per_sec}} {{eta}}"
        ))
        .context("progress bar template")?;
        Ok(Bar {
            bar: ProgressBar::new(0).with_style(style),
            place: place.to_owned(),
        })
    }
}

impl Progress for Bar {
    fn begin(&self, total: u64) {
        self.bar.set_length(total);
    }
    fn advance(&self) {
        self.bar.inc(1);
    }
    fn end(&self) {
        self.bar.finish_and_clear();
    }
    fn waiting(&self, holder: &str) {
        eprintln!("pkgsum: {}: waiting for {holder} to finish", self.place);
    }
}

/// What a pass did: a recreated state, every warning and unreadable
/// package, and the summary line.
pub fn print_report(report: &Report) {
    let place = &report.repository;
    if let Some(loss) = &report.state_lost {
        let above = report
            .published_generation
            .map(|g| format!(", above the published generation {g}"))
            .unwrap_or_default();
        eprintln!(
            "pkgsum: {place}.pkgsum/state was {loss}; recreated from a listing at generation {}{above}",
            report.generation
        );
    } else if let Some(g) = report.published_generation {
        eprintln!(
            "pkgsum: {place}.pkgsum/state was behind the published generation {g}; moved to {}",
            report.generation
        );
    }
    // Names are escaped: a file name cannot forge a line of this output.
    for (name, warning) in &report.warnings {
        eprintln!("pkgsum: {place}{}: warning: {warning}", Escaped(name));
    }
    if report.warnings_more > 0 {
        eprintln!(
            "pkgsum: {place}: {} more warnings beside the other packages (status.json counts them; `pkgsum verify` lists them)",
            report.warnings_more
        );
    }
    for (name, reason) in &report.failures {
        eprintln!("pkgsum: {place}{}: {reason}", Escaped(name));
    }
    for why in &report.held {
        eprintln!("pkgsum: {place}: not published: {why}");
    }
    for line in &report.stalled {
        eprintln!("pkgsum: {place}: {line}");
    }
    eprintln!("pkgsum: {place}: {}", report.summary());
}

/// What applying notifications did: what was ignored (ten lines at
/// most), each repository's report, and every error.
pub fn print_outcome(outcome: &Outcome) {
    for line in outcome.ignored.iter().take(10) {
        eprintln!("pkgsum: ignored: {}", Bare(line));
    }
    if outcome.ignored.len() > 10 {
        eprintln!("pkgsum: ignored: {} more", outcome.ignored.len() - 10);
    }
    for report in &outcome.reports {
        print_report(report);
    }
    for error in &outcome.errors {
        eprintln!("pkgsum: {error}");
    }
}

/// Says so when a bucket was found to ignore conditional writes (then
/// only one writer at a time is safe).
pub fn print_found(bucket: &str, found: Option<&pkgsum::store::s3::ConditionalWrites>) {
    if let Some(found) = found.filter(|found| !found.honoured()) {
        eprintln!("pkgsum: s3://{bucket}/: {found}");
    }
}

/// What became of a package pushed or promoted to `location`, as
/// `push` and `promote` say it; `sent` is what was done to it
/// ("uploaded", "copied"). Returns its state, the seconds until it was
/// live, the reason, and the verdict it calls for.
pub fn say_fate(
    location: &str,
    fate: pkgsum::push::wait::Fate,
    sent: &str,
    timeout: std::time::Duration,
) -> (&'static str, Option<f64>, Option<String>, Verdict) {
    use pkgsum::push::wait::Fate;
    match fate {
        Fate::Live(after) => {
            eprintln!(
                "pkgsum: {location}: live after {:.1} s",
                after.as_secs_f64()
            );
            ("live", Some(after.as_secs_f64()), None, Verdict::Indexed)
        }
        Fate::Unreadable(why) => {
            eprintln!("pkgsum: {location}: {sent}, but the indexer cannot read it: {why}");
            ("unreadable", None, Some(why), Verdict::Incomplete)
        }
        Fate::Held(why) => {
            eprintln!("pkgsum: {location}: indexed, but not published: {why}");
            ("held", None, Some(why), Verdict::Incomplete)
        }
        Fate::Waiting => {
            let why = format!("not in the published summary after {} s", timeout.as_secs());
            eprintln!("pkgsum: {location}: {why}");
            ("waiting", None, Some(why), Verdict::Failed)
        }
    }
}

/// Says that no indexer answered within `timeout`.
pub fn say_unanswered(url: &impl std::fmt::Display, timeout: std::time::Duration) {
    eprintln!(
        "pkgsum: {url}: no indexer answered within {} s: is the function or `pkgsum serve` running? `pkgsum rebuild` indexes now",
        timeout.as_secs()
    );
}

/// One package's line of the report `push` and `promote` print.
pub struct Line {
    /// Where it came from: a file, or its name in SRC.
    pub from: String,
    /// Its name in the repository, once known.
    pub name: Option<String>,
    pub state: &'static str,
    pub seconds: Option<f64>,
    pub reason: Option<String>,
}

impl Line {
    /// The line in `--json`'s report, `from` under the key `from_key`.
    pub fn json(&self, from_key: &str) -> serde_json::Value {
        serde_json::json!({
            from_key: self.from,
            "name": self.name,
            "state": self.state,
            "seconds": self.seconds,
            "reason": self.reason,
        })
    }
}
