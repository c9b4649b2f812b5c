//! The site's files made from any record text: the JSON line of one
//! package, and a run's three files, which must parse as the page and
//! tools read them and hold no character that could close a script
//! element or start markup.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkgsum::site::{DETAILS_CALL, TABLE_CALL, line, run_files};

/// The array a run script passes to `call`.
fn array_of(text: &str, call: &str) -> Vec<serde_json::Value> {
    let json = text
        .strip_prefix(&format!("{call}("))
        .and_then(|t| t.strip_suffix(");\n"))
        .expect("a call of one array");
    serde_json::from_str(json).expect("JSON")
}

fuzz_target!(|data: &[u8]| {
    let made = line("x.tgz", data, Some("signed by <x>"));
    assert!(!made.contains(['\n', '<', '>', '&', '\u{2028}', '\u{2029}']));
    let value: serde_json::Value = serde_json::from_str(&made).unwrap();
    assert_eq!(value["f"], "x.tgz");
    let files = run_files(data, |_| Some("<v>".to_owned()));
    for text in [&files.table, &files.details, &files.json] {
        assert!(!text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']));
    }
    let table = array_of(&files.table, TABLE_CALL);
    let details = array_of(&files.details, DETAILS_CALL);
    let json: Vec<serde_json::Value> = serde_json::from_str(&files.json).unwrap();
    assert!(table.len() == files.count && details.len() == files.count);
    assert_eq!(json.len(), files.count);
});
