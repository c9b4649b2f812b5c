//! The gateway's Range header and request path: a range lies within the
//! object, a path names a file directly under the prefix or nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkgsum::gateway::{byte_range, served_name};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (range, path) = text.split_once('\n').unwrap_or((text, ""));
    for size in [0u64, 1, 100, u64::MAX] {
        if let Ok(Some((start, end))) = byte_range(range, size) {
            assert!(
                start < end && end <= size,
                "{range:?} of {size}: {start}..{end}"
            );
        }
    }
    let suffixes = [".tgz".to_owned()];
    if let Some(name) = served_name("pkgs/All/", &suffixes, path) {
        assert!(
            !name.contains('/') && !name.starts_with('.'),
            "{path:?} -> {name:?}"
        );
    }
});
