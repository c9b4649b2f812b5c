//! The pieces a state is stored in: runs of consecutive packages (sorted
//! by file name), each an immutable object named by its generation and
//! the SHA-256 of its bytes, so an update reads and writes only the pieces
//! it touches and the manifest that names them stays small.
//!
//! A piece holds about [`TARGET`] bytes of records, cut where
//! [`crate::chunk::split`] cuts (by the records' names, so the cuts stay put). A
//! piece that grows past twice that is cut again; one that shrinks below
//! [`MIN`] is merged with the next. The summary's runs are made of whole
//! pieces, named by the SHA-256 of each piece's records
//! ([`PieceRef::records`]): planning them needs the manifest alone.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::stored;

/// An indexed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Its `pkg_info -X` record, blank line included.
    #[serde(with = "serde_bytes")]
    pub record: Vec<u8>,
    /// Its size in bytes.
    pub size: u64,
    /// What identifies this version of the file: an ETag, or mtime and
    /// inode for a local file.
    pub token: String,
    /// What pkg_info would warn about it ("build information missing").
    #[serde(deserialize_with = "crate::stored::seq")]
    pub warnings: Vec<String>,
}

/// The bytes of records a piece is cut for.
pub const TARGET: usize = 128 << 10;

/// A piece holding fewer bytes of records is merged with the next one
/// when an update touches it.
pub const MIN: usize = 32 << 10;

/// Most elements (packages and their warnings) a piece may decode to: a
/// piece holds about 128 KiB of records, a few hundred packages.
pub const ELEMENTS: u64 = 256 << 10;

/// A piece's packages, as stored: each counted as it is decoded.
#[derive(Deserialize)]
#[serde(transparent)]
struct Packages(#[serde(deserialize_with = "crate::stored::seq")] Vec<(String, Package)>);

/// First bytes of a stored piece; the byte after them is the version.
const MAGIC: &[u8] = b"pkgsum-piece\n";
const VERSION: u8 = 1;

/// A piece as the manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceRef {
    /// The file name of its first package: the piece holds every package
    /// from this name up to the next piece's first (the first piece, every
    /// name before the second's).
    pub first: String,
    /// How many packages it holds.
    pub count: u32,
    /// The total length of their records.
    pub bytes: u64,
    /// SHA-256 of their records, concatenated: what the summary's run
    /// digests are made of.
    pub records: [u8; 32],
    /// The generation of the commit that wrote it.
    pub generation: u64,
    /// SHA-256 of the stored object, checked when it is read.
    pub digest: [u8; 32],
}

impl PieceRef {
    /// Its object's name: generation, then digest. A name is never reused
    /// for other bytes, and a piece a commit dropped is never named again
    /// by a later one, so it can be deleted at once.
    pub fn name(&self) -> String {
        format!("{}-{}", self.generation, crate::hex(&self.digest))
    }
}

/// The generation a piece's object name starts with.
pub fn generation_of_name(name: &str) -> Option<u64> {
    name.split_once('-')?.0.parse().ok()
}

/// Stores `packages` (sorted, non-empty) as a piece of `generation`:
/// its reference and its bytes.
pub fn encode(packages: &[(&String, &Package)], generation: u64) -> Result<(PieceRef, Vec<u8>)> {
    let (first, _) = packages
        .first()
        .ok_or_else(|| Error::State("an empty piece".to_owned()))?;
    let mut records = Sha256::new();
    let mut bytes = 0u64;
    for (_, package) in packages {
        records.update(&package.record);
        bytes += package.record.len() as u64;
    }
    let stored = [MAGIC, &[VERSION], &stored::pack(packages)?].concat();
    let piece = PieceRef {
        first: (*first).clone(),
        count: u32::try_from(packages.len()).map_err(|e| Error::State(e.to_string()))?,
        bytes,
        records: records.finalize().into(),
        generation,
        digest: Sha256::digest(&stored).into(),
    };
    Ok((piece, stored))
}

/// Reads the piece `piece` names from its stored bytes, decoding at most
/// `limit` bytes: refused unless the bytes have its digest and hold its
/// count of packages, sorted.
pub fn decode(bytes: &[u8], piece: &PieceRef, limit: u64) -> Result<Vec<(String, Package)>> {
    let damaged = |why: &str| Error::State(format!("piece {}: {why}", piece.name()));
    if <[u8; 32]>::from(Sha256::digest(bytes)) != piece.digest {
        return Err(damaged("its bytes do not have its digest"));
    }
    let packed = bytes
        .strip_prefix(MAGIC)
        .and_then(|rest| rest.strip_prefix(&[VERSION]))
        .ok_or_else(|| damaged("not a version-1 pkgsum piece"))?;
    let body = stored::unpack(packed, limit, "piece")?;
    let Packages(packages) =
        crate::stored::decode(&body, ELEMENTS).map_err(|e| damaged(&e.to_string()))?;
    let sorted = packages.windows(2).all(|w| w[0].0 < w[1].0);
    if packages.len() != piece.count as usize || !sorted {
        return Err(damaged("its packages are not the ones its manifest names"));
    }
    Ok(packages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(record: &str) -> Package {
        Package {
            record: record.as_bytes().to_vec(),
            size: 1,
            token: "t".to_owned(),
            warnings: vec!["w".to_owned()],
        }
    }

    #[test]
    fn pieces_round_trip_and_refuse_other_bytes() {
        let (a, b) = ("a-1.tgz".to_owned(), "b-1.tgz".to_owned());
        let (pa, pb) = (package("PKGNAME=a-1\n\n"), package("PKGNAME=b-1\n\n"));
        let (piece, bytes) = encode(&[(&a, &pa), (&b, &pb)], 7).unwrap();
        assert_eq!(
            (piece.first.as_str(), piece.count, piece.bytes),
            ("a-1.tgz", 2, 26)
        );
        assert_eq!(generation_of_name(&piece.name()), Some(7));
        let back = decode(&bytes, &piece, 1 << 20).unwrap();
        assert_eq!(back, vec![(a.clone(), pa.clone()), (b, pb)]);

        let mut altered = bytes.clone();
        *altered.last_mut().unwrap() ^= 1;
        let err = decode(&altered, &piece, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("do not have its digest"), "{err}");
        let other = PieceRef {
            count: 3,
            ..piece.clone()
        };
        let err = decode(&bytes, &other, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("not the ones its manifest names"), "{err}");
        assert!(matches!(
            decode(&bytes, &piece, 4),
            Err(Error::TooLarge { .. })
        ));
        assert!(encode(&[], 1).is_err());
    }
}
