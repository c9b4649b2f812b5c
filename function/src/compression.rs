//! The codecs pkgsrc uses, told apart by magic bytes, never by file name:
//! pkgsrc names every package `.tgz` whatever its `PKG_COMPRESSION`.
//!
//! Decoders accept concatenated members/streams/frames, as libarchive does,
//! so a summary written in independently compressed chunks reads back whole.

use std::io::{self, BufReader, Read, Write};

/// Input buffer of every decoder.
const INPUT_BUFFER: usize = 8 * 1024;

/// A compression format of a package or of a `pkg_summary` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// Bytes needed by [`Compression::detect`] to decide.
pub const MAGIC_LEN: usize = 6;

impl Compression {
    /// Recognises a compressed stream by its first bytes; anything else is
    /// [`Compression::None`] and left to the container reader to judge.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The codec's name as used in error messages and logs.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }

    /// The noun for error messages: "the gzip stream ended early".
    pub(crate) fn stream_name(self) -> &'static str {
        match self {
            Compression::None => "input",
            Compression::Gzip => "gzip stream",
            Compression::Bzip2 => "bzip2 stream",
            Compression::Xz => "xz stream",
            Compression::Zstd => "zstd stream",
        }
    }

    /// File suffix of a `pkg_summary` in this format.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Bzip2 => ".bz2",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
        }
    }

    /// The HTTP Content-Type pkgin's fetcher sees for the summary file.
    pub fn content_type(self) -> &'static str {
        match self {
            Compression::None => "text/plain",
            Compression::Gzip => "application/gzip",
            Compression::Bzip2 => "application/x-bzip2",
            Compression::Xz => "application/x-xz",
            Compression::Zstd => "application/zstd",
        }
    }

    /// Wraps `input` in a decoder of this format.
    ///
    /// Each decoder reads its input through an 8 KiB buffer rather than
    /// the crates' defaults (32 KiB for gzip, 128 KiB for zstd), so a
    /// header read takes few bytes beyond the metadata: that is what a
    /// ranged S3 read pays for.
    pub fn decoder<'a, R: Read + 'a>(self, input: R) -> io::Result<Box<dyn Read + 'a>> {
        let buffered = BufReader::with_capacity(INPUT_BUFFER, input);
        Ok(match self {
            Compression::None => Box::new(buffered),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
            Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(buffered)),
            Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(buffered)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
        })
    }

    /// Compresses `data` whole: gzip -9 and bzip2 -9 as pbulk writes its
    /// summaries, xz -6 (the xz default), zstd -9. On a 13.6 MiB summary
    /// zstd -19 saves 15% of the bytes but takes 60 times as long (13 s
    /// against 0.2 s), too slow for a summary rewritten on every upload.
    pub fn compress(self, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len() / 4);
        match self {
            Compression::None => out.extend_from_slice(data),
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::best());
                enc.write_all(data)?;
                out = enc.finish()?;
            }
            Compression::Bzip2 => {
                let mut enc = bzip2::write::BzEncoder::new(out, bzip2::Compression::best());
                enc.write_all(data)?;
                out = enc.finish()?;
            }
            Compression::Xz => {
                let mut enc = liblzma::write::XzEncoder::new(out, 6);
                enc.write_all(data)?;
                out = enc.finish()?;
            }
            Compression::Zstd => {
                out = zstd::bulk::compress(data, 9)?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_magic() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::detect(b"BZh91AY"), Compression::Bzip2);
        assert_eq!(
            Compression::detect(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0]),
            Compression::Xz
        );
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"+CONTENTS"), Compression::None);
        assert_eq!(Compression::detect(b""), Compression::None);
    }

    #[test]
    fn every_codec_round_trips_concatenated_members() {
        let a = b"PKGNAME=a-1\n\n".repeat(50);
        let b = b"PKGNAME=b-2\n\n".repeat(70);
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Bzip2,
            Compression::Xz,
            Compression::Zstd,
        ] {
            let mut joined = c.compress(&a).unwrap();
            joined.extend(c.compress(&b).unwrap());
            let mut out = Vec::new();
            c.decoder(&joined[..])
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, [a.clone(), b.clone()].concat(), "{c:?}");
        }
    }
}
