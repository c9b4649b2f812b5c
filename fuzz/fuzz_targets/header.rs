//! The header reader on any bytes: every codec, the signed wrapper, the
//! tar reader, then the record; and the whole-payload block check. Small
//! limits, so a run explores their edges instead of spending them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkgsum::limit::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        metadata: 1 << 20,
        pkg_hash: 64 << 10,
        record: 256 << 10,
        streams: 8,
    };
    if let Ok(header) = pkgsum::header::read_header(data, &limits) {
        let record = pkgsum::record::render_limited(&header.metadata, None, limits.record);
        if let Ok(record) = record {
            assert!(record.len() as u64 <= limits.record);
        }
    }
    let _ = pkgsum::signed::check_blocks(data, limits.pkg_hash);
});
