//! What the browsable site says of each package, made from its
//! `pkg_info -X` record, and the files a run of the site is made of (runs
//! cut as the summaries are, so an update renders only the runs whose
//! records changed). A run is three files:
//!
//! - the table's script, `pkgsumTable([...]);`: per package what the list
//!   shows and filters on (name, COMMENT, size, BUILD_DATE, PKGPATH,
//!   LICENSE, MACHINE_ARCH, verdict), loaded by the page at once;
//! - the details' script, `pkgsumDetails([...]);`: the same packages'
//!   DESCRIPTION, HOMEPAGE, OPSYS and DEPENDS, loaded only when one of
//!   them is opened (they are most of the bytes);
//! - the JSON for tools: one array of every value.
//!
//! Scripts, not JSON, because a page opened from `file://` can load a
//! script beside it but cannot fetch a file.
//!
//! Every value comes from a package, so from outside: each is bounded
//! (cut at a character boundary) and written as a JSON string that is also
//! safe inside an HTML `<script>` element: `<`, `>` and `&` are escaped as
//! `\u003c`, `\u003e` and `\u0026`, as are U+2028 and U+2029, so no value
//! can end its string, close an element or start markup, whatever it
//! holds. The page renders values as text, never as markup.

use std::fmt::Write as _;

use crate::summary;

/// Most bytes kept of a DESCRIPTION; of any other value.
pub const DESCRIPTION_BYTES: usize = 16 << 10;
pub const VALUE_BYTES: usize = 1 << 10;

/// Most DEPENDS kept of one package.
pub const MAX_DEPENDS: usize = 256;

/// The functions the run's scripts call (defined by the page).
pub const TABLE_CALL: &str = "pkgsumTable";
pub const DETAILS_CALL: &str = "pkgsumDetails";

/// The fields of a record the site shows, by their key in the JSON.
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

/// Which of [`FIELDS`] the table holds; the rest are the details'.
const IN_TABLE: usize = 7;

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

/// The values of one record the site shows, read once.
#[derive(Default)]
struct Shown {
    values: [Option<String>; FIELDS.len()],
    description: String,
    depends: Vec<String>,
}

impl Shown {
    fn of(record: &[u8]) -> Shown {
        let mut shown = Shown::default();
        for raw in record.split(|&b| b == b'\n') {
            let Some(eq) = raw.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (name, value) = (&raw[..eq], String::from_utf8_lossy(&raw[eq + 1..]));
            if name == b"DESCRIPTION" {
                if shown.description.len() < DESCRIPTION_BYTES {
                    shown.description.push_str(&value);
                    shown.description.push('\n');
                }
            } else if name == b"DEPENDS" {
                if shown.depends.len() < MAX_DEPENDS {
                    shown.depends.push(value.into_owned());
                }
            } else if let Some(i) = FIELDS.iter().position(|(_, f)| f.as_bytes() == name) {
                shown.values[i].get_or_insert_with(|| value.into_owned());
            }
        }
        shown
    }

    /// Appends `,"key":value` for the fields `range` of [`FIELDS`].
    fn push_fields(&self, out: &mut String, range: std::ops::Range<usize>) {
        for i in range {
            if let Some(value) = &self.values[i] {
                let _ = write!(out, ",\"{}\":", FIELDS[i].0);
                push_string(out, value, VALUE_BYTES);
            }
        }
    }

    /// Appends the DESCRIPTION (`x`) and DEPENDS (`D`), if any.
    fn push_long(&self, out: &mut String) {
        if !self.description.is_empty() {
            out.push_str(",\"x\":");
            push_string(out, self.description.trim_end(), DESCRIPTION_BYTES);
        }
        if !self.depends.is_empty() {
            out.push_str(",\"D\":[");
            for (i, dep) in self.depends.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_string(out, dep, VALUE_BYTES);
            }
            out.push(']');
        }
    }
}

/// Appends `,"v":verdict` if there is one.
fn push_verdict(out: &mut String, verdict: Option<&str>) {
    if let Some(verdict) = verdict {
        out.push_str(",\"v\":");
        push_string(out, verdict, VALUE_BYTES);
    }
}

/// The JSON object of the package stored as `file` whose record is
/// `record`, with its signature verdict if a policy gives one; one line,
/// without its newline. Keys: `f` file, `n` PKGNAME, `c` COMMENT, `s`
/// FILE_SIZE, `d` BUILD_DATE, `p` PKGPATH, `l` LICENSE, `a` MACHINE_ARCH,
/// `o` OPSYS, `h` HOMEPAGE, `x` DESCRIPTION (its lines joined), `D`
/// DEPENDS, `v` verdict.
pub fn line(file: &str, record: &[u8], verdict: Option<&str>) -> String {
    let mut out = String::with_capacity(record.len() / 2 + 64);
    push_line(&mut out, file, &Shown::of(record), verdict);
    out
}

/// Appends [`line`]'s object, from the values already read.
fn push_line(out: &mut String, file: &str, shown: &Shown, verdict: Option<&str>) {
    out.push_str("{\"f\":");
    push_string(out, file, VALUE_BYTES);
    shown.push_fields(out, 0..FIELDS.len());
    shown.push_long(out);
    push_verdict(out, verdict);
    out.push('}');
}

/// The three files of one run of the site.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFiles {
    /// `pkgsumTable([...]);`: `f` (only where the file is not
    /// PKGNAME.tgz), `n`, `c`, `s`, `d`, `p`, `l`, `a`, `v`.
    pub table: String,
    /// `pkgsumDetails([...]);`: `o`, `h`, `x`, `D`, in the table's order.
    pub details: String,
    /// A JSON array of every value ([`line`]), for tools.
    pub json: String,
    /// How many packages the run holds.
    pub count: usize,
}

/// Appends `sep` and the object whose members are `members` (each
/// written with a leading comma).
fn push_object(out: &mut String, sep: &str, members: &str) {
    out.push_str(sep);
    out.push('{');
    out.push_str(members.strip_prefix(',').unwrap_or(members));
    out.push('}');
}

/// The files of the run whose records are `text` (as `pkg_info -X` prints
/// them), each package under its file name: FILE_NAME, else PKGNAME.tgz
/// (a record with neither is left out); `verdict` gives a file's
/// signature verdict.
pub fn run_files(text: &[u8], verdict: impl Fn(&str) -> Option<String>) -> RunFiles {
    let mut files = RunFiles {
        table: format!("{TABLE_CALL}(["),
        details: format!("{DETAILS_CALL}(["),
        json: String::from("["),
        count: 0,
    };
    for record in summary::records(text) {
        let field = |name| crate::record::field(record, name).map(String::from_utf8_lossy);
        let pkgname = field("PKGNAME");
        let Some(file) = field("FILE_NAME")
            .map(|f| f.into_owned())
            .or_else(|| pkgname.as_ref().map(|n| format!("{n}.tgz")))
        else {
            continue;
        };
        let verdict = verdict(&file);
        let shown = Shown::of(record);
        let sep = if files.count == 0 { "\n" } else { ",\n" };
        let mut table = String::new();
        if pkgname.is_none_or(|n| format!("{n}.tgz") != file) {
            table.push_str(",\"f\":");
            push_string(&mut table, &file, VALUE_BYTES);
        }
        shown.push_fields(&mut table, 0..IN_TABLE);
        push_verdict(&mut table, verdict.as_deref());
        push_object(&mut files.table, sep, &table);
        let mut details = String::new();
        shown.push_fields(&mut details, IN_TABLE..FIELDS.len());
        shown.push_long(&mut details);
        push_object(&mut files.details, sep, &details);
        files.json.push_str(sep);
        push_line(&mut files.json, &file, &shown, verdict.as_deref());
        files.count += 1;
    }
    files.table.push_str("\n]);\n");
    files.details.push_str("\n]);\n");
    files.json.push_str("\n]\n");
    files
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
        assert!(!line.contains('\n'), "{line}");
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

    /// The call's array: the script `text` is `call(` JSON `);`.
    fn array_of(text: &str, call: &str) -> Vec<serde_json::Value> {
        let json = text
            .strip_prefix(&format!("{call}("))
            .and_then(|t| t.strip_suffix(");\n"))
            .unwrap();
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_run_is_a_table_its_details_and_json_in_one_order() {
        let text = [
            RECORD,
            b"PKGNAME=bar-2\nCOMMENT=x,\nFILE_NAME=bar-2-other.tgz\n\n".as_slice(),
            b"COMMENT=no name\n\n",
            b"PKGNAME=baz-3\nHOMEPAGE=https://example.org/\n\n",
        ]
        .concat();
        let files = run_files(&text, |f| (f == "baz-3.tgz").then(|| "unsigned".to_owned()));
        assert_eq!(files.count, 3);
        for text in [&files.table, &files.details, &files.json] {
            assert!(!text.contains(['<', '>', '&', '\u{2028}']), "{text}");
        }
        let table = array_of(&files.table, TABLE_CALL);
        let details = array_of(&files.details, DETAILS_CALL);
        let json: Vec<serde_json::Value> = serde_json::from_str(&files.json).unwrap();
        assert_eq!((table.len(), details.len(), json.len()), (3, 3, 3));
        // The table names the file only where it is not PKGNAME.tgz.
        assert_eq!(table[0].get("f"), None);
        assert_eq!(table[0]["n"], "foo-1.0");
        assert_eq!(table[1]["f"], "bar-2-other.tgz");
        assert_eq!(table[2]["v"], "unsigned");
        assert_eq!(table[0].get("x"), None);
        assert_eq!(details[0]["x"], "line one\nline \\two\u{2028}end");
        assert_eq!(details[0]["D"][0], "bar>=1");
        assert_eq!(details[1], serde_json::json!({}));
        assert_eq!(details[2]["h"], "https://example.org/");
        // The JSON has every value, and the file always.
        assert_eq!(json[1]["f"], "bar-2-other.tgz");
        assert_eq!(json[0]["x"], details[0]["x"]);
        assert_eq!(json[2]["v"], "unsigned");
        let empty = run_files(b"", |_| None);
        assert_eq!(empty.count, 0);
        assert!(array_of(&empty.table, TABLE_CALL).is_empty());
        assert_eq!(empty.json, "[\n]\n");
    }
}
