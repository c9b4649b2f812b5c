//! `+PKG_HASH` text: parsed exactly, refused otherwise, never quoted long.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match pkgsum::signed::parse_pkg_hash(data) {
        Ok(hash) => {
            let blocks = hash.file_size.div_ceil(hash.block_size);
            assert_eq!(hash.blocks.len() as u64, blocks);
        }
        Err(error) => assert!(error.to_string().len() < 1024),
    }
});
