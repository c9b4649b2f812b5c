//! What pkgsum reads back from `.pkgsum/`: a manifest, a piece (given the
//! digest its manifest would name, so decoding is reached), a layout
//! against a published file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkgsum::chunk::{self, Layout};
use pkgsum::compression::Compression;
use pkgsum::piece::{self, PieceRef};
use pkgsum::state::State;
use sha2::{Digest, Sha256};

const LIMIT: u64 = 4 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(state) = State::from_bytes(rest, LIMIT) {
                let _ = state.cut();
            }
        }
        1 => {
            let piece = PieceRef {
                first: String::new(),
                count: u32::from(which),
                bytes: 0,
                records: [0; 32],
                generation: 1,
                digest: Sha256::digest(rest).into(),
            };
            let _ = piece::decode(rest, &piece, LIMIT);
        }
        _ => {
            let (json, file) = rest.split_at(rest.len() / 2);
            if let Ok(layout) = serde_json::from_slice::<Layout>(json) {
                let digests: Vec<[u8; 32]> = layout.runs.iter().map(|r| r.digest).collect();
                let items: Vec<(&str, usize)> = digests.iter().map(|_| ("a", 1)).collect();
                let plan = chunk::Plan::with_digests(&items, &digests, 1 << 20);
                let _ = chunk::reusable(&plan, Compression::Gzip, Some((&layout, file)), false);
                let _ = chunk::reusable(&plan, Compression::Gzip, Some((&layout, file)), true);
            }
        }
    }
});
