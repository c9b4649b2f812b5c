//! What pkgsum reads back from `.pkgsum/`: a manifest, a piece (given the
//! digest its manifest would name, so decoding is reached), a layout
//! against a published file, and the splice planned from it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkgsum::chunk::{self, Layout};
use pkgsum::compression::Compression;
use pkgsum::piece::{self, PieceRef};
use pkgsum::splice;
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
                // Half the runs wanted again, and a new one: whatever the
                // layout says, a splice keeps each wanted run at most once.
                let wanted: Vec<[u8; 32]> = digests
                    .iter()
                    .step_by(2)
                    .copied()
                    .chain([[7; 32]])
                    .collect();
                let items: Vec<(&str, usize)> = wanted.iter().map(|_| ("a", 1)).collect();
                let plan = chunk::Plan::with_digests(&items, &wanted, 1);
                let min = u64::from(which) << 4;
                if let Some(splice) = splice::splice(&plan, Compression::Gzip, &layout, min) {
                    let made: Vec<Vec<u8>> = splice.fresh.iter().map(|_| vec![1]).collect();
                    let new = splice.layout(&plan, Compression::Gzip, &made);
                    assert!(new.runs.len() <= plan.digests.len());
                    let grouped: u64 = splice.groups.iter().map(|g| g.len()).sum();
                    assert_eq!(new.file_len(), grouped.checked_add(made.len() as u64));
                }
            }
        }
    }
});
