//! The codecs pkgsrc uses, told apart by magic bytes, never by file name:
//! pkgsrc names every package `.tgz` whatever its `PKG_COMPRESSION`.
//!
//! Decoders accept concatenated members/streams/frames, as libarchive does,
//! so a summary written in independently compressed chunks reads back whole.

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::error::{MemoryLimitExceeded, TooManyStreams};

/// Input buffer of every decoder.
const INPUT_BUFFER: usize = 8 * 1024;

/// Most memory one decoder may take: liblzma's memlimit and zstd's window
/// (2^27, zstd's own default). Real packages and summaries need a few
/// MiB; without a bound, a 24-byte xz header declaring a 4 GiB dictionary
/// makes liblzma try to allocate it.
pub const DECODER_MEMORY_LIMIT: u64 = 128 * 1024 * 1024;
const ZSTD_WINDOW_LOG_LIMIT: u32 = 27;
/// Bytes read ahead to find the declared size: an xz stream header and a
/// block header with a filter or two, a zstd frame header.
const HEADER_PEEK: u64 = 64;

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
    ///
    /// xz and zstd decoders may use at most [`DECODER_MEMORY_LIMIT`]: a
    /// stream whose header declares more is refused before anything is
    /// allocated, naming the size it declared.
    pub fn decoder<'a, R: Read + 'a>(self, mut input: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(BufReader::with_capacity(INPUT_BUFFER, input)),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(
                BufReader::with_capacity(INPUT_BUFFER, input),
            )),
            Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(
                BufReader::with_capacity(INPUT_BUFFER, input),
            )),
            Compression::Xz | Compression::Zstd => {
                let mut head = Vec::with_capacity(HEADER_PEEK as usize);
                input.by_ref().take(HEADER_PEEK).read_to_end(&mut head)?;
                check_declared(self, &head)?;
                let buffered =
                    BufReader::with_capacity(INPUT_BUFFER, io::Cursor::new(head).chain(input));
                if self == Compression::Xz {
                    let stream = liblzma::stream::Stream::new_stream_decoder(
                        DECODER_MEMORY_LIMIT,
                        liblzma::stream::CONCATENATED,
                    )?;
                    let decoder = liblzma::bufread::XzDecoder::new_stream(buffered, stream);
                    Box::new(MemoryBounded::new(decoder, self))
                } else {
                    let mut decoder = zstd::stream::read::Decoder::with_buffer(buffered)?;
                    decoder.window_log_max(ZSTD_WINDOW_LOG_LIMIT)?;
                    Box::new(MemoryBounded::new(decoder, self))
                }
            }
        })
    }

    /// Wraps `input` in a decoder of this format that reads at most
    /// `streams` concatenated streams (gzip members, bzip2 and xz streams,
    /// zstd frames) and fails past them, naming the limit. For package
    /// headers: each stream costs a decoder's set-up (bzip2's is tens of
    /// microseconds), so a few MiB of empty streams would cost a minute.
    /// Memory is bounded as [`Compression::decoder`] bounds it.
    pub fn decoder_bounded<'a, R: Read + 'a>(
        self,
        mut input: R,
        streams: u32,
    ) -> io::Result<Box<dyn Read + 'a>> {
        fn buffered<R: Read>(input: R) -> BufReader<R> {
            BufReader::with_capacity(INPUT_BUFFER, input)
        }
        Ok(match self {
            Compression::None => Box::new(buffered(input)),
            Compression::Gzip => Box::new(Streams::<_, GzOne<_>>::new(buffered(input), streams)?),
            Compression::Bzip2 => Box::new(Streams::<_, BzOne<_>>::new(buffered(input), streams)?),
            Compression::Xz | Compression::Zstd => {
                let mut head = Vec::with_capacity(HEADER_PEEK as usize);
                input.by_ref().take(HEADER_PEEK).read_to_end(&mut head)?;
                check_declared(self, &head)?;
                let input = buffered(io::Cursor::new(head).chain(input));
                if self == Compression::Xz {
                    let streams = Streams::<_, XzOne<_>>::new(input, streams)?;
                    Box::new(MemoryBounded::new(streams, self))
                } else {
                    let streams = Streams::<_, ZstdOne<_>>::new(input, streams)?;
                    Box::new(MemoryBounded::new(streams, self))
                }
            }
        })
    }

    /// Compresses `data` whole: gzip -9 and bzip2 -9 as pbulk writes its
    /// summaries, xz -6 tuned for text (lc=4, pb=0, nice_len=128), zstd
    /// -9. On a 13.6 MiB summary zstd -19 saves 15% of the bytes but takes
    /// 60 times as long (13 s against 0.2 s), too slow for a summary
    /// rewritten on every upload.
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
                let mut enc = liblzma::write::XzEncoder::new_stream(out, xz_encoder(data.len())?);
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

/// xz -6 with its dictionary cut to the input (a power of two, 4 KiB to
/// the preset's 8 MiB): a larger one finds nothing more, but costs the
/// encoder ~90 MiB and its tables' setup (7 ms per 256 KiB run, measured),
/// and makes every reader allocate it too. Tuned for text: lc=4 and pb=0
/// (bytes, not 4-byte machine words) and longer matches sought
/// (nice_len=128, xz -6 has 64): on 256 KiB runs of 20,000 records, 16.9%
/// larger than `xz -6` of the whole file instead of 18.4%, for 4 ms more
/// a run (`cargo bench -p pkgsum-core --bench chunks`).
fn xz_encoder(len: usize) -> io::Result<liblzma::stream::Stream> {
    use liblzma::stream::{Check, Filters, LzmaOptions, Stream};
    let mut options = LzmaOptions::new_preset(6).map_err(io::Error::other)?;
    let dictionary = u32::try_from(len)
        .unwrap_or(u32::MAX)
        .clamp(4 << 10, 8 << 20)
        .next_power_of_two();
    options.dict_size(dictionary);
    options
        .literal_context_bits(4)
        .position_bits(0)
        .nice_len(128);
    let mut filters = Filters::new();
    filters.lzma2(&options);
    Stream::new_stream_encoder(&filters, Check::Crc64).map_err(io::Error::other)
}

/// Refuses a stream whose first header declares a dictionary (xz) or
/// window (zstd) over the limit, naming its size.
fn check_declared(format: Compression, head: &[u8]) -> io::Result<()> {
    let declared = match format {
        Compression::Xz => xz_dictionary(head),
        Compression::Zstd => zstd_window(head),
        _ => None,
    };
    match declared {
        Some(size) if size > DECODER_MEMORY_LIMIT => Err(io::Error::other(MemoryLimitExceeded {
            codec: format.name(),
            declared: Some(size),
            limit: DECODER_MEMORY_LIMIT,
        })),
        _ => Ok(()),
    }
}

/// The LZMA2 dictionary size the first block of an xz stream declares, if
/// `head` holds its header (xz file format 1.1.0, sections 2.1.1, 3.1 and
/// 5.3.1).
fn xz_dictionary(head: &[u8]) -> Option<u64> {
    const STREAM_HEADER: usize = 12;
    const LZMA2: u64 = 0x21;
    let block = head.get(STREAM_HEADER..)?;
    let size = (usize::from(*block.first()?) + 1) * 4;
    let header = block.get(..size)?;
    // Only a header that checks out is believed.
    let mut crc = flate2::Crc::new();
    crc.update(&header[..size - 4]);
    if crc.sum().to_le_bytes() != header[size - 4..] {
        return None;
    }
    let flags = *header.get(1)?;
    let mut at = 2;
    for present in [flags & 0x40 != 0, flags & 0x80 != 0] {
        if present {
            varint(header, &mut at)?; // compressed / uncompressed size
        }
    }
    let mut dictionary = None;
    for _ in 0..=(flags & 0x03) {
        let id = varint(header, &mut at)?;
        let props_len = usize::try_from(varint(header, &mut at)?).ok()?;
        let props = header.get(at..at + props_len)?;
        at += props_len;
        if id == LZMA2 {
            let bits = u32::from(*props.first()? & 0x3f);
            dictionary = Some(match bits {
                40.. => u64::from(u32::MAX),
                _ => (2 | u64::from(bits & 1)) << (bits / 2 + 11),
            });
        }
    }
    dictionary
}

/// A multibyte integer of the xz format.
fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..63).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The window size the first frame of a zstd stream declares, if `head`
/// holds its header (RFC 8878, section 3.1.1.1).
fn zstd_window(head: &[u8]) -> Option<u64> {
    let descriptor = *head.get(4)?;
    if descriptor & 0x20 != 0 {
        // Single segment: the window is the content size that follows.
        let field = [0usize, 2, 4, 8][usize::from(descriptor >> 6)];
        let dict_id = [0usize, 1, 2, 4][usize::from(descriptor & 0x03)];
        let start = 5 + dict_id;
        let bytes = head.get(start..start + field.max(1))?;
        let mut value = bytes
            .iter()
            .rev()
            .fold(0u64, |v, &b| (v << 8) | u64::from(b));
        if field == 2 {
            value += 256;
        }
        return Some(value);
    }
    let window = *head.get(5)?;
    let log = 10 + u32::from(window >> 3);
    let base = 1u64 << log;
    Some(base + (base / 8) * u64::from(window & 0x07))
}

/// A decoder of one compressed stream over a `BufRead`, handing the input
/// back where the stream ended.
trait OneStream<R: BufRead>: Read + Sized {
    const CODEC: &'static str;
    /// Bytes that may pad between streams, skipped (xz's stream padding).
    const PADDING: Option<u8> = None;
    fn open(input: R) -> io::Result<Self>;
    fn close(self) -> R;
}

struct GzOne<R>(flate2::bufread::GzDecoder<R>);
struct BzOne<R>(bzip2::bufread::BzDecoder<R>);
struct XzOne<R>(liblzma::bufread::XzDecoder<R>);
struct ZstdOne<R: BufRead>(zstd::stream::read::Decoder<'static, R>);

impl<R: BufRead> OneStream<R> for GzOne<R> {
    const CODEC: &'static str = "gzip";
    fn open(input: R) -> io::Result<Self> {
        Ok(GzOne(flate2::bufread::GzDecoder::new(input)))
    }
    fn close(self) -> R {
        self.0.into_inner()
    }
}

impl<R: BufRead> OneStream<R> for BzOne<R> {
    const CODEC: &'static str = "bzip2";
    fn open(input: R) -> io::Result<Self> {
        Ok(BzOne(bzip2::bufread::BzDecoder::new(input)))
    }
    fn close(self) -> R {
        self.0.into_inner()
    }
}

impl<R: BufRead> OneStream<R> for XzOne<R> {
    const CODEC: &'static str = "xz";
    const PADDING: Option<u8> = Some(0);
    fn open(input: R) -> io::Result<Self> {
        let stream = liblzma::stream::Stream::new_stream_decoder(DECODER_MEMORY_LIMIT, 0)?;
        Ok(XzOne(liblzma::bufread::XzDecoder::new_stream(
            input, stream,
        )))
    }
    fn close(self) -> R {
        self.0.into_inner()
    }
}

impl<R: BufRead> OneStream<R> for ZstdOne<R> {
    const CODEC: &'static str = "zstd";
    fn open(input: R) -> io::Result<Self> {
        let mut decoder = zstd::stream::read::Decoder::with_buffer(input)?.single_frame();
        decoder.window_log_max(ZSTD_WINDOW_LOG_LIMIT)?;
        Ok(ZstdOne(decoder))
    }
    fn close(self) -> R {
        self.0.finish()
    }
}

macro_rules! read_through {
    ($($one:ident),*) => {$(
        impl<R: BufRead> Read for $one<R> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0.read(buf)
            }
        }
    )*};
}
read_through!(GzOne, BzOne, XzOne, ZstdOne);

/// Concatenated streams of one codec, decoded one after the other, at
/// most `limit` of them.
struct Streams<R: BufRead, D: OneStream<R>> {
    state: Between<R, D>,
    opened: u32,
    limit: u32,
}

enum Between<R, D> {
    Decoding(D),
    Idle(R),
    /// Only while a stream is being opened: an error there ends reading.
    Gone,
}

impl<R: BufRead, D: OneStream<R>> Streams<R, D> {
    /// Opens the first stream at once, so an empty input is the codec's
    /// own "unexpected end" rather than nothing.
    fn new(input: R, limit: u32) -> io::Result<Self> {
        let mut streams = Streams {
            state: Between::Idle(input),
            opened: 0,
            limit: limit.max(1),
        };
        streams.open_next()?;
        Ok(streams)
    }

    fn open_next(&mut self) -> io::Result<()> {
        if self.opened >= self.limit {
            return Err(io::Error::other(TooManyStreams {
                codec: D::CODEC,
                limit: self.limit,
            }));
        }
        if let Between::Idle(input) = std::mem::replace(&mut self.state, Between::Gone) {
            self.state = Between::Decoding(D::open(input)?);
            self.opened += 1;
        }
        Ok(())
    }

    /// Whether more input follows the stream that ended (after padding).
    fn more(input: &mut R) -> io::Result<bool> {
        loop {
            let buf = input.fill_buf()?;
            let Some(pad) = D::PADDING else {
                return Ok(!buf.is_empty());
            };
            let (zeros, len) = (buf.iter().take_while(|&&b| b == pad).count(), buf.len());
            input.consume(zeros);
            if zeros < len || len == 0 {
                return Ok(zeros < len);
            }
        }
    }
}

impl<R: BufRead, D: OneStream<R>> Read for Streams<R, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.state {
                Between::Decoding(decoder) => {
                    let n = decoder.read(buf)?;
                    if n > 0 {
                        return Ok(n);
                    }
                    if let Between::Decoding(decoder) =
                        std::mem::replace(&mut self.state, Between::Gone)
                    {
                        self.state = Between::Idle(decoder.close());
                    }
                }
                Between::Idle(input) => {
                    if !Self::more(input)? {
                        return Ok(0);
                    }
                    self.open_next()?;
                }
                Between::Gone => return Ok(0),
            }
        }
    }
}

/// Names a decoder's "out of memory budget" error (liblzma's memlimit,
/// zstd's window limit) as the limit it is, for later frames or streams
/// whose size the first header did not tell.
struct MemoryBounded<R> {
    inner: R,
    format: Compression,
}

impl<R> MemoryBounded<R> {
    fn new(inner: R, format: Compression) -> Self {
        MemoryBounded { inner, format }
    }
}

impl<R: Read> Read for MemoryBounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|err| {
            // liblzma's error is typed; zstd's only has its text.
            let xz_over = err
                .get_ref()
                .and_then(|e| e.downcast_ref::<liblzma::stream::Error>())
                .is_some_and(|e| matches!(e, liblzma::stream::Error::MemLimit));
            let zstd_over = err.to_string().contains("too much memory");
            if xz_over || zstd_over {
                io::Error::other(MemoryLimitExceeded {
                    codec: self.format.name(),
                    declared: None,
                    limit: DECODER_MEMORY_LIMIT,
                })
            } else {
                err
            }
        })
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
    fn declared_sizes_are_read_from_the_first_header() {
        let data = b"PKGNAME=a-1\n\n".repeat(10);
        // xz's dictionary is cut to the data (4 KiB at least, 8 MiB at
        // most: xz -6's); zstd -9 a window of a few KiB for data this
        // small (single segment: the content size).
        assert_eq!(
            xz_dictionary(&Compression::Xz.compress(&data).unwrap()),
            Some(4 << 10)
        );
        let more = vec![b'x'; 300 << 10];
        assert_eq!(
            xz_dictionary(&Compression::Xz.compress(&more).unwrap()),
            Some(512 << 10)
        );
        assert_eq!(
            zstd_window(&Compression::Zstd.compress(&data).unwrap()),
            Some(data.len() as u64)
        );
        assert_eq!(xz_dictionary(b"\xfd7zXZ\0"), None);
    }

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ];

    #[test]
    fn a_bounded_decoder_reads_up_to_its_streams_and_refuses_more() {
        for c in CODECS {
            let one = c.compress(b"x").unwrap();
            let empty = c.compress(b"").unwrap();
            let mut four = one.repeat(3);
            four.extend_from_slice(&empty);
            let mut out = Vec::new();
            c.decoder_bounded(&four[..], 4)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, b"xxx", "{c:?}");
            // 100,000 empty streams stop at the 64th, long before their end.
            let many = empty.repeat(100_000);
            let err = c
                .decoder_bounded(&many[..], 64)
                .unwrap()
                .read_to_end(&mut Vec::new())
                .unwrap_err();
            let over = crate::error::find_in_chain::<TooManyStreams>(&err);
            assert!(over.is_some_and(|o| o.limit == 64), "{c:?}: {err}");
        }
    }

    #[test]
    fn xz_stream_padding_is_skipped() {
        let mut padded = Compression::Xz.compress(b"ab").unwrap();
        padded.extend_from_slice(&[0; 8]);
        padded.extend(Compression::Xz.compress(b"cd").unwrap());
        padded.extend_from_slice(&[0; 4]);
        let mut out = Vec::new();
        Compression::Xz
            .decoder_bounded(&padded[..], 64)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"abcd");
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
