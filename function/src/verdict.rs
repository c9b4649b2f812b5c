//! What a command or an invocation achieved, summed up the same way by
//! every entry point: the CLI's exit status, `pkgsum poll`'s batches and
//! the Lambda function's answer.
//!
//! - 0, [`Verdict::Indexed`]: every package is indexed and published.
//! - 1, [`Verdict::Incomplete`]: done, but some packages cannot be read,
//!   or the summary is held back (a hold, a publish gate); each is listed
//!   every time, until it is fixed, removed or resumed.
//! - 2, [`Verdict::Failed`]: could not run, or could not finish (a store
//!   error, bad input or settings); nothing published was harmed, and
//!   running again (or the event's redelivery) completes the work.

/// The three outcomes, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Verdict {
    #[default]
    Indexed,
    Incomplete,
    Failed,
}

impl Verdict {
    /// The exit status a command ends with.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Indexed => 0,
            Verdict::Incomplete => 1,
            Verdict::Failed => 2,
        }
    }

    /// The word the function's answers and the logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Indexed => "indexed",
            Verdict::Incomplete => "incomplete",
            Verdict::Failed => "failed",
        }
    }

    /// [`Verdict::Incomplete`] when anything is unreadable or held back.
    pub fn from_unreadable(count: usize) -> Verdict {
        if count == 0 {
            Verdict::Indexed
        } else {
            Verdict::Incomplete
        }
    }
}

/// The rule as `--help` and the README state it.
pub const EXIT_STATUS_HELP: &str = "\
Exit status (the same for every command):
  0  everything is indexed
  1  done, but some packages are unreadable or the summary is held back
     (each is listed, every run)
  2  could not run or finish (bad arguments, settings or input; a store error)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_verdict_wins() {
        let all = [Verdict::Incomplete, Verdict::Indexed, Verdict::Failed];
        assert_eq!(all.iter().max(), Some(&Verdict::Failed));
        assert_eq!(Verdict::from_unreadable(0).exit_code(), 0);
        assert_eq!(Verdict::from_unreadable(3).exit_code(), 1);
        assert_eq!(Verdict::Failed.exit_code(), 2);
    }
}
