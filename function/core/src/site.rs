//! What the browsable site says of each package: one JSON object a line,
//! made from the package's `pkg_info -X` record, and the runs of lines
//! the site is assembled from (cut as the summaries are, so an update
//! renders only the runs whose records changed).
//!
//! Every value comes from a package, so from outside: each is bounded
//! (cut at a character boundary) and written as a JSON string that is also
//! safe inside an HTML `<script>` element: `<`, `>` and `&` are escaped as
//! `\u003c`, `\u003e` and `\u0026`, as are U+2028 and U+2029, so no value
//! can close the element or start markup, whatever it holds. The page
//! renders values as text, never as markup.

use std::fmt::Write as _;

use crate::summary;

/// Most bytes kept of a DESCRIPTION; of any other value.
pub const DESCRIPTION_BYTES: usize = 16 << 10;
pub const VALUE_BYTES: usize = 1 << 10;

/// Most DEPENDS kept of one package.
pub const MAX_DEPENDS: usize = 256;

/// The fields of a record the site shows, by their key in the JSON line.
const FIELDS: [(&str, &str); 9] = [
    ("n", "PKGNAME"),
    ("c", "COMMENT"),
    ("s", "FILE_SIZE"),
    ("d", "BUILD_DATE"),
    ("p", "PKGPATH"),
    ("l", "LICENSE"),
    ("a", "MACHINE_ARCH"),
    ("o", "OPSYS"),
    ("h", "HOMEPAGE"),
];

/// Appends `text` to `out` as a JSON string safe inside an HTML script
/// element, cut to at most `limit` bytes (at a character boundary).
pub fn push_string(out: &mut String, text: &str, limit: usize) {
    let mut end = text.len().min(limit);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.push('"');
    for c in text[..end].chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The JSON line of the package stored as `file` whose record is
/// `record`, with its signature verdict if a policy gives one; ends in a
/// newline. Keys: `f` file, `n` PKGNAME, `c` COMMENT, `s` FILE_SIZE, `d`
/// BUILD_DATE, `p` PKGPATH, `l` LICENSE, `a` MACHINE_ARCH, `o` OPSYS, `h`
/// HOMEPAGE, `x` DESCRIPTION (its lines joined), `D` DEPENDS, `v` verdict.
pub fn line(file: &str, record: &[u8], verdict: Option<&str>) -> String {
    let mut values: [Option<String>; FIELDS.len()] = Default::default();
    let mut description = String::new();
    let mut depends: Vec<String> = Vec::new();
    for raw in record.split(|&b| b == b'\n') {
        let Some(eq) = raw.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (name, value) = (&raw[..eq], String::from_utf8_lossy(&raw[eq + 1..]));
        if name == b"DESCRIPTION" {
            if description.len() < DESCRIPTION_BYTES {
                description.push_str(&value);
                description.push('\n');
            }
        } else if name == b"DEPENDS" {
            if depends.len() < MAX_DEPENDS {
                depends.push(value.into_owned());
            }
        } else if let Some(i) = FIELDS.iter().position(|(_, f)| f.as_bytes() == name) {
            values[i].get_or_insert_with(|| value.into_owned());
        }
    }
    let mut out = String::with_capacity(record.len() / 2 + 64);
    out.push_str("{\"f\":");
    push_string(&mut out, file, VALUE_BYTES);
    for ((key, _), value) in FIELDS.iter().zip(&values) {
        if let Some(value) = value {
            let _ = write!(out, ",\"{key}\":");
            push_string(&mut out, value, VALUE_BYTES);
        }
    }
    if !description.is_empty() {
        out.push_str(",\"x\":");
        push_string(&mut out, description.trim_end(), DESCRIPTION_BYTES);
    }
    if !depends.is_empty() {
        out.push_str(",\"D\":[");
        for (i, dep) in depends.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_string(&mut out, dep, VALUE_BYTES);
        }
        out.push(']');
    }
    if let Some(verdict) = verdict {
        out.push_str(",\"v\":");
        push_string(&mut out, verdict, VALUE_BYTES);
    }
    out.push_str("}\n");
    out
}

/// The lines of the records in `text` (a run of the summary, records as
/// `pkg_info -X` prints them), each under its file name: FILE_NAME, else
/// PKGNAME.tgz (a record with neither is left out); `verdict` gives a
/// file's signature verdict.
pub fn fragment(text: &[u8], verdict: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    for record in summary::records(text) {
        let field = |name| crate::record::field(record, name).map(String::from_utf8_lossy);
        let file = field("FILE_NAME")
            .map(|f| f.into_owned())
            .or_else(|| field("PKGNAME").map(|n| format!("{n}.tgz")));
        if let Some(file) = file {
            out.push_str(&line(&file, record, verdict(&file).as_deref()));
        }
    }
    out
}

/// The JSON lines of `ndjson` (one object a line) as the elements of a
/// JSON array's body: the lines joined by commas. Each line is an object
/// whose strings escape newlines, so a newline is only ever between two.
pub fn as_array_body(ndjson: &[u8]) -> Vec<u8> {
    let trimmed = ndjson.strip_suffix(b"\n").unwrap_or(ndjson);
    let mut out = Vec::with_capacity(ndjson.len() + ndjson.len() / 256);
    for (i, line) in trimmed.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(b",\n");
        }
        out.extend_from_slice(line);
    }
    out
}

/// The inverse of [`as_array_body`]: the JSON lines again.
pub fn from_array_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 1);
    if body.is_empty() {
        return out;
    }
    for line in body.split(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_suffix(b",").unwrap_or(line));
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &[u8] = b"PKGNAME=foo-1.0\nCOMMENT=<script>alert(1)</script>\n\
        FILE_SIZE=1234\nPKGPATH=misc/foo\nDEPENDS=bar>=1\nDEPENDS=baz-[0-9]*\n\
        HOMEPAGE=\"><img src=x onerror=alert(1)>\nDESCRIPTION=line one\n\
        DESCRIPTION=line \\two\xe2\x80\xa8end\nFILE_NAME=foo-1.0.tgz\n\n";

    #[test]
    fn a_line_is_json_that_cannot_close_a_script_element() {
        let line = line("foo-1.0.tgz", RECORD, Some("signed by \"x\""));
        assert!(!line.contains('<') && !line.contains('>') && !line.contains('&'));
        assert!(!line.contains('\u{2028}'));
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(
            line.contains(r#""c":"\u003cscript\u003ealert(1)\u003c/script\u003e""#),
            "{line}"
        );
        assert!(
            line.contains(r#""D":["bar\u003e=1","baz-[0-9]*"]"#),
            "{line}"
        );
        assert!(
            line.contains(r#""x":"line one\nline \\two\u2028end""#),
            "{line}"
        );
        assert!(line.contains(r#""v":"signed by \"x\"""#), "{line}");
        assert!(
            line.starts_with(r#"{"f":"foo-1.0.tgz","n":"foo-1.0","c":"#),
            "{line}"
        );
    }

    #[test]
    fn values_are_bounded_at_a_character_boundary() {
        let long = format!("COMMENT={}\n", "é".repeat(VALUE_BYTES));
        let line = line("x.tgz", long.as_bytes(), None);
        let comment = line.split("\"c\":\"").nth(1).unwrap();
        assert_eq!(comment.split('"').next().unwrap().len(), VALUE_BYTES);
        let many: String = (0..1000).map(|i| format!("DEPENDS=d{i}-1\n")).collect();
        let line = super::line("x.tgz", many.as_bytes(), None);
        assert_eq!(line.matches("\"d").count(), MAX_DEPENDS);
    }

    #[test]
    fn a_fragment_names_each_record_by_its_file_and_round_trips_as_an_array() {
        let text = [RECORD, b"PKGNAME=bar-2\nCOMMENT=x,\n\n".as_slice()].concat();
        let ndjson = fragment(&text, |f| (f == "bar-2.tgz").then(|| "unsigned".to_owned()));
        let lines: Vec<&str> = ndjson.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[1].starts_with(r#"{"f":"bar-2.tgz","n":"bar-2","c":"x,""#),
            "{}",
            lines[1]
        );
        let body = as_array_body(ndjson.as_bytes());
        let array = format!("[{}]", String::from_utf8(body.clone()).unwrap());
        assert_eq!(array.matches("},\n{").count(), 1);
        assert_eq!(from_array_body(&body), ndjson.as_bytes());
        assert_eq!(from_array_body(&as_array_body(b"")), b"");
    }
}
