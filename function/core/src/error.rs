//! The library's error type: one enum naming every way reading a package or
//! a state can fail, so callers can tell a bad package from a broken disk.

use std::error::Error as StdError;
use std::io;

/// Why a package header, a state file or an output could not be handled.
///
/// Messages name the reason only; callers add the object's name (file path
/// or S3 key) because only they know it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The io::Error is shown in the message and not chained as a source,
    // so `{:#}` chains do not print it twice.
    #[error("I/O error: {0}")]
    Io(io::Error),

    #[error("{}: {error}", path.display())]
    Path {
        path: std::path::PathBuf,
        error: io::Error,
    },

    #[error("empty file")]
    Empty,

    #[error("not a package file: it is {0}")]
    NotAFile(&'static str),

    #[error("not a pkgsrc package: unrecognised format (first bytes: {0})")]
    UnknownFormat(String),

    #[error("truncated: the {0} ended before the package metadata was complete")]
    Truncated(&'static str),

    #[error("corrupt {codec}: {reason}")]
    Corrupt { codec: &'static str, reason: String },

    #[error("more than {limit} bytes of decompressed data (the limit)")]
    TooLarge { limit: u64 },

    /// Reading the header needed more of the object than may be fetched.
    #[error("its header needs more than the first {limit} bytes of the file (the fetch limit)")]
    FetchLimit { limit: u64 },

    #[error("{}", memory_message(codec, *declared, *limit))]
    MemoryLimit {
        codec: &'static str,
        declared: Option<u64>,
        limit: u64,
    },

    #[error("invalid package: required member {0} is missing")]
    MissingMember(&'static str),

    #[error("invalid package: duplicate member {0}")]
    DuplicateMember(String),

    #[error("invalid signed package: {0}")]
    Signed(String),

    #[error("invalid state: {0}")]
    State(String),

    #[error(transparent)]
    RecordTooLong(#[from] crate::record::RecordTooLong),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on a named local path.
    pub fn path(path: impl Into<std::path::PathBuf>, error: io::Error) -> Error {
        Error::Path {
            path: path.into(),
            error,
        }
    }
}

/// Marks an I/O error with the layer that raised it (the raw input or a
/// decompressor), so a failure deep inside the tar reader can still be
/// reported as "corrupt xz stream" rather than a bare I/O message.
#[derive(Debug, thiserror::Error)]
#[error("{layer}: {source}")]
pub(crate) struct LayerError {
    pub layer: Layer,
    #[source]
    pub source: io::Error,
}

/// Where bytes come from: the outside world, or a decoder over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layer {
    Input,
    Codec(&'static str),
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layer::Input => f.write_str("input"),
            Layer::Codec(name) => f.write_str(name),
        }
    }
}

/// Raised by a decoder whose stream needs more memory than allowed.
#[derive(Debug, thiserror::Error)]
#[error("{}", memory_message(codec, *declared, *limit))]
pub(crate) struct MemoryLimitExceeded {
    pub codec: &'static str,
    /// The dictionary (xz) or window (zstd) size the stream declared.
    pub declared: Option<u64>,
    pub limit: u64,
}

fn memory_message(codec: &str, declared: Option<u64>, limit: u64) -> String {
    let what = if codec == "xz" {
        "dictionary"
    } else {
        "window"
    };
    match declared {
        Some(size) => format!(
            "{codec} {what} of {} exceeds the {} memory limit",
            human_bytes(size),
            human_bytes(limit)
        ),
        None => format!(
            "{codec} stream needs more than the {} memory limit to decode (its {what} is too large)",
            human_bytes(limit)
        ),
    }
}

/// "4 GiB", "128 MiB", "1.5 KiB", "12 bytes".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let shown = format!("{value:.1}");
    let shown = shown.strip_suffix(".0").unwrap_or(&shown);
    format!("{shown} {}", UNITS[unit])
}

/// Raised by the block check of a signed package's inner package when a
/// block does not match its hash in `+PKG_HASH`; the message says which.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BlockMismatch(pub String);

/// Raised by a decoder given more concatenated streams than allowed.
#[derive(Debug, thiserror::Error)]
#[error("more than {limit} concatenated {codec} streams")]
pub(crate) struct TooManyStreams {
    pub codec: &'static str,
    pub limit: u32,
}

/// Raised by [`crate::limit::Limited`] when the byte budget is spent.
#[derive(Debug, thiserror::Error)]
#[error("more than {limit} bytes")]
pub(crate) struct LimitExceeded {
    pub limit: u64,
}

/// Finds the first error of type `T` in the chain behind an `io::Error`.
///
/// `io::Error::source` skips its own payload, so the walk uses `get_ref`
/// for every `io::Error` link.
pub(crate) fn find_in_chain<T: StdError + 'static>(err: &io::Error) -> Option<&T> {
    let mut cur: Option<&(dyn StdError + 'static)> = err.get_ref().map(|e| e as _);
    while let Some(e) = cur {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        cur = match e.downcast_ref::<io::Error>() {
            Some(io_err) => io_err.get_ref().map(|e| e as _),
            None => e.source(),
        };
    }
    None
}

/// Turns an I/O error from the header reader into the reason a person
/// should read: truncation, corruption in a named codec, the limit, or a
/// genuine I/O failure of the input.
///
/// `container` names the structure parsed when no layer claims the error
/// (for example "tar archive").
pub(crate) fn classify(err: io::Error, container: &'static str) -> Error {
    if let Some(BlockMismatch(message)) = find_in_chain::<BlockMismatch>(&err) {
        return Error::Signed(message.clone());
    }
    if let Some(over) = find_in_chain::<TooManyStreams>(&err) {
        return Error::Corrupt {
            codec: over.codec,
            reason: over.to_string(),
        };
    }
    if let Some(limit) = find_in_chain::<LimitExceeded>(&err) {
        return Error::TooLarge { limit: limit.limit };
    }
    if let Some(over) = find_in_chain::<MemoryLimitExceeded>(&err) {
        return Error::MemoryLimit {
            codec: over.codec,
            declared: over.declared,
            limit: over.limit,
        };
    }
    match find_in_chain::<LayerError>(&err) {
        Some(LayerError {
            layer: Layer::Input,
            ..
        }) => Error::Io(err),
        Some(LayerError {
            layer: Layer::Codec(codec),
            source,
        }) => codec_error(codec, source),
        None => match err.kind() {
            io::ErrorKind::UnexpectedEof => Error::Truncated(container),
            _ => Error::Corrupt {
                codec: container,
                reason: err.to_string(),
            },
        },
    }
}

fn codec_error(codec: &'static str, source: &io::Error) -> Error {
    match source.kind() {
        io::ErrorKind::UnexpectedEof => Error::Truncated(codec),
        _ => Error::Corrupt {
            codec,
            reason: source.to_string(),
        },
    }
}
