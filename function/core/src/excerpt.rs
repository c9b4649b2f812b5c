//! How text from outside (package metadata, object keys, event fields) is
//! quoted in messages, warnings and logs: a short, escaped excerpt, never
//! the whole. One upload of a few KiB can decompress to megabytes of one
//! line; quoting it whole would turn each message about it into megabytes,
//! kept in the state and written to the status on every pass after.

use std::fmt;

/// Most bytes of outside text quoted in one excerpt.
pub const EXCERPT_BYTES: usize = 200;

/// Most bytes of one message kept in the state (a failure's reason, a
/// warning): several excerpts and the words around them.
pub const MESSAGE_BYTES: usize = 1024;

/// Outside text quoted as Rust quotes a string (`"a\nb"`: control
/// characters, quotes and backslashes escaped, so it cannot forge a log
/// line), cut to [`EXCERPT_BYTES`] with its full length said when longer.
#[derive(Clone, Copy)]
pub struct Excerpt<'a>(pub &'a [u8]);

/// An [`Excerpt`] of `text`.
pub fn excerpt(text: &(impl AsRef<[u8]> + ?Sized)) -> Excerpt<'_> {
    Excerpt(text.as_ref())
}

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        // The lossy view of no more bytes than can show.
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(EXCERPT_BYTES)]);
        f.write_str("\"")?;
        let cut = write_escaped(f, &shown, |c| c.escape_debug().to_string(), EXCERPT_BYTES)?;
        f.write_str("\"")?;
        if cut || bytes.len() > EXCERPT_BYTES {
            write!(f, "… ({} bytes)", bytes.len())?;
        }
        Ok(())
    }
}

/// Writes `text` escaped by `escape`, stopping before the escaped text
/// would pass `most` bytes (an escape can be six times its character);
/// returns whether it stopped early.
fn write_escaped(
    f: &mut fmt::Formatter<'_>,
    text: &str,
    escape: impl Fn(char) -> String,
    most: usize,
) -> Result<bool, fmt::Error> {
    let mut written = 0;
    for c in text.chars() {
        let escaped = escape(c);
        if written + escaped.len() > most {
            return Ok(true);
        }
        written += escaped.len();
        f.write_str(&escaped)?;
    }
    Ok(false)
}

/// A control character as `\n`, `\u{0}`; anything else as it is.
fn escape_control(c: char) -> String {
    if c.is_control() {
        c.escape_default().to_string()
    } else {
        c.to_string()
    }
}

impl fmt::Debug for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Outside text written bare (no quotes) where a message reads better so
/// (a name in a warning): escaped as [`Escaped`] does, and cut to
/// [`EXCERPT_BYTES`] with its full length said.
#[derive(Clone, Copy)]
pub struct Bare<'a>(pub &'a str);

impl fmt::Display for Bare<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        if write_escaped(f, text, escape_control, EXCERPT_BYTES)? {
            write!(f, "… ({} bytes)", text.len())?;
        }
        Ok(())
    }
}

/// Outside text whose length is bounded already (an object key: 1,024
/// bytes at most) written whole, with its control characters escaped
/// (`\n`, `\u{0}`), so a key cannot forge a log line or a message.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0, escape_control, usize::MAX).map(drop)
    }
}

/// A count in a message: "1 package", "2 packages".
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `message` cut to [`MESSAGE_BYTES`] (at a character boundary, with a
/// mark): the last bound on what the state keeps of one message, behind
/// the excerpts every message quotes outside text in.
pub fn bounded(mut message: String) -> String {
    if message.len() <= MESSAGE_BYTES {
        return message;
    }
    let mut end = MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message.push_str("… (cut)");
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_quoted_whole_and_escaped() {
        assert_eq!(excerpt("a\nb\"c\\").to_string(), r#""a\nb\"c\\""#);
        assert_eq!(excerpt(&b"\xff\x00"[..]).to_string(), "\"\u{fffd}\\0\"");
    }

    #[test]
    fn escapes_count_toward_the_bound() {
        // Found by fuzzing: 200 bytes of DEL made 1,200 of `\u{7f}`.
        let shown = excerpt(&[0x7f; 300][..]).to_string();
        assert!(shown.len() <= EXCERPT_BYTES + 20, "{}", shown.len());
        assert!(shown.ends_with("… (300 bytes)"), "{shown}");
        let shown = Bare(&"\0".repeat(300)).to_string();
        assert!(shown.len() <= EXCERPT_BYTES + 20, "{}", shown.len());
    }

    #[test]
    fn long_text_is_cut_with_its_length() {
        let long = "x".repeat(60 << 20);
        let shown = excerpt(&long).to_string();
        assert!(shown.len() < EXCERPT_BYTES + 40, "{}", shown.len());
        assert!(
            shown.ends_with(&format!("… ({} bytes)", 60 << 20)),
            "{shown}"
        );
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let text = "é".repeat(EXCERPT_BYTES);
        let shown = Bare(&text).to_string();
        assert!(shown.ends_with("bytes)"), "{shown}");
        assert_eq!(
            bounded("é".repeat(MESSAGE_BYTES)).len(),
            MESSAGE_BYTES + "… (cut)".len()
        );
    }

    #[test]
    fn bare_text_cannot_forge_a_line() {
        assert_eq!(Bare("a\nINFO x\r\0").to_string(), "a\\nINFO x\\r\\u{0}");
        assert_eq!(Escaped("é\u{85}ü\x7f").to_string(), "é\\u{85}ü\\u{7f}");
        let key = "k".repeat(1000);
        assert_eq!(Escaped(&key).to_string(), key);
    }
}
