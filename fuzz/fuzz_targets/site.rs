//! The site's line of a package made from any record: JSON with one
//! newline, at its end, and no character that could close the script
//! element it is embedded in or start markup.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkgsum::site::{fragment, line};

fuzz_target!(|data: &[u8]| {
    let made = line("x.tgz", data, Some("signed by <x>"));
    assert!(made.ends_with('\n') && made.matches('\n').count() == 1);
    assert!(!made.contains(['<', '>', '&', '\u{2028}', '\u{2029}']));
    let value: serde_json::Value = serde_json::from_str(&made).unwrap();
    assert_eq!(value["f"], "x.tgz");
    let lines = fragment(data, |_| None);
    assert!(!lines.contains(['<', '>', '&']));
});
