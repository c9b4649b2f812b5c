//! Bad input: every malformed package gives a clear error (or, where the
//! metadata is intact, the same record as the whole package), and none
//! panics or reads without bound.

use crate::common;

use std::fs;
use std::io::Read;

use pkgsum::Error;
use pkgsum::compression::Compression;
use pkgsum::create::{PackageBuilder, Signature, ar_archive, noise, pkg_hash, sign};
use pkgsum::header::{Header, read_header};
use pkgsum::limit::Limits;
use pkgsum::record;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Bzip2,
    Compression::Xz,
    Compression::Zstd,
];

fn read(bytes: &[u8]) -> Result<Header, Error> {
    read_header(bytes, &Limits::default())
}

fn read_err(bytes: &[u8]) -> String {
    match read(bytes) {
        Ok(header) => panic!("expected an error, got {:?}", header.metadata),
        Err(err) => err.to_string(),
    }
}

/// A plain ustar archive of the members, in order, with no pkgsrc extras.
fn raw_tar(members: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, name, data.as_bytes())
            .unwrap();
    }
    builder.into_inner().unwrap()
}

fn package(compression: Compression) -> Vec<u8> {
    PackageBuilder::new("victim-1.0")
        .member("+DESC", "x".repeat(3000))
        .file("share/victim/data", noise(7, 20_000))
        .compression(compression)
        .build()
        .unwrap()
}

fn truncation_anywhere_is_an_error_or_the_full_record() {
    for codec in CODECS {
        let whole = package(codec);
        let full = record::render(&read(&whole).unwrap().metadata, None);
        let mut errors = 0;
        let mut cuts: Vec<usize> = vec![1, 2, 5, 10, 100, 511, 512, 513, 1024, 2000, 4000];
        cuts.extend((1..20).map(|i| whole.len() * i / 20));
        for cut in cuts.into_iter().filter(|&c| c < whole.len()) {
            match read(&whole[..cut]) {
                Ok(header) => assert!(
                    record::render(&header.metadata, None) == full,
                    "{codec:?} cut at {cut} of {} gave another record",
                    whole.len()
                ),
                Err(err) => {
                    errors += 1;
                    let msg = err.to_string();
                    assert!(
                        ["truncated", "corrupt", "missing", "not a pkgsrc package"]
                            .iter()
                            .any(|w| msg.contains(w)),
                        "{codec:?} cut at {cut}: unclear error {msg:?}"
                    );
                }
            }
        }
        assert!(errors >= 5, "{codec:?}: only {errors} cuts failed");
    }
}

fn truncated_compressed_streams_name_their_codec() {
    for codec in [
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ] {
        let whole = package(codec);
        let msg = read_err(&whole[..40]);
        assert!(msg.contains(codec.name()), "{codec:?}: {msg}");
    }
}

fn corrupt_streams_are_reported_as_such() {
    for codec in [
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ] {
        let mut bytes = package(codec);
        let magic = match codec {
            Compression::Gzip => 2,
            Compression::Bzip2 => 3,
            Compression::Zstd => 4,
            _ => 6,
        };
        // Damage the bytes right after the magic: stream flags and headers.
        for b in &mut bytes[magic..magic + 20] {
            *b ^= 0xa5;
        }
        // A damaged zstd frame header may declare a huge window, and is
        // refused for that, by name.
        let msg = read_err(&bytes);
        assert!(
            msg.contains(codec.name()) && (msg.contains("corrupt") || msg.contains("memory limit")),
            "{codec:?}: {msg}"
        );
    }
}

fn empty_random_and_text_files() {
    assert!(matches!(read(b""), Err(Error::Empty)));
    let msg = read_err(&noise(99, 4096));
    assert!(msg.contains("not a pkgsrc package"), "{msg}");
    let msg = read_err(b"PKGNAME=not-a-package\n");
    assert!(msg.contains("not a pkgsrc package"), "{msg}");
    // Gzip magic, garbage after it.
    let mut fake = vec![0x1f, 0x8b];
    fake.extend(noise(3, 1000));
    let msg = read_err(&fake);
    assert!(msg.contains("gzip"), "{msg}");
    // A valid gzip stream of text that is not an archive.
    let text = Compression::Gzip.compress(&b"hello\n".repeat(200)).unwrap();
    let msg = read_err(&text);
    assert!(msg.contains("neither a tar nor an ar archive"), "{msg}");
}

fn a_tarball_without_required_members_is_invalid() {
    for member in ["+CONTENTS", "+COMMENT", "+DESC"] {
        let bytes = PackageBuilder::new("x-1").without(member).build().unwrap();
        let msg = read_err(&bytes);
        assert_eq!(
            msg,
            format!("invalid package: required member {member} is missing")
        );
    }
    // A plain tarball of ordinary files.
    let tarball = raw_tar(&[("README", "hello")]);
    assert!(matches!(
        read(&tarball),
        Err(Error::MissingMember("+CONTENTS"))
    ));
}

fn duplicate_member_is_fatal_and_misorder_a_warning() {
    let msg = read_err(&raw_tar(&[
        ("+CONTENTS", "@name d-1\n"),
        ("+COMMENT", "c\n"),
        ("+COMMENT", "again\n"),
    ]));
    assert_eq!(msg, "invalid package: duplicate member +COMMENT");

    let misordered = PackageBuilder::new("m-1")
        .without("+COMMENT")
        .member("+COMMENT", "late\n")
        .build()
        .unwrap();
    let header = read(&misordered).unwrap();
    assert_eq!(header.warnings, vec!["misordered package".to_owned()]);
    assert_eq!(header.metadata.comment, b"late\n");
}

fn metadata_after_the_payload_is_never_seen() {
    // pkg_info stops at the first non-metadata member; so does pkgsum.
    let tar = raw_tar(&[
        ("+CONTENTS", "@name p-1\n"),
        ("+COMMENT", "c\n"),
        ("bin/p", "x"),
        ("+DESC", "d\n"),
    ]);
    assert!(matches!(read(&tar), Err(Error::MissingMember("+DESC"))));
}

fn decompression_bombs_stop_at_the_limit() {
    // 80 MiB of zeros in +CONTENTS compresses to well under 1 MiB.
    let zeros = vec![0u8; 80 << 20];
    for codec in [
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ] {
        let bomb = PackageBuilder::new("bomb-1")
            .member("+BUILD_INFO", zeros.clone())
            .compression(codec)
            .build()
            .unwrap();
        assert!(
            bomb.len() < 1 << 20,
            "{codec:?} bomb is {} bytes",
            bomb.len()
        );
        let err = read(&bomb).unwrap_err();
        assert!(
            matches!(err, Error::TooLarge { limit } if limit == 64 << 20),
            "{codec:?}: {err}"
        );
        assert!(err.to_string().contains("67108864"), "{err}");
    }
    // Skipped members that are each under the limit still add up to it.
    let mut many = PackageBuilder::new("many-1");
    for name in [
        "+INSTALL",
        "+DEINSTALL",
        "+DISPLAY",
        "+MTREE_DIRS",
        "+BUILD_VERSION",
        "+SIZE_ALL",
        "+PRESERVE",
    ] {
        many = many.member(name, vec![b'#'; 10 << 20]);
    }
    let err = read(&many.build().unwrap()).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
}

fn the_limit_is_configurable_and_counts_skipped_members() {
    let bytes = PackageBuilder::new("big-1")
        .member("+INSTALL", vec![b'#'; 2 << 20])
        .build()
        .unwrap();
    assert!(read(&bytes).is_ok());
    let small = Limits {
        metadata: 1 << 20,
        ..Limits::default()
    };
    let err = read_header(&bytes[..], &small).unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { limit } if limit == 1 << 20),
        "{err}"
    );
}

fn a_forged_member_size_is_refused_before_allocating() {
    let mut tar = PackageBuilder::new("forged-1")
        .compression(Compression::None)
        .build()
        .unwrap();
    // Find the +CONTENTS header (after the pax header) and claim 1 TiB.
    let pos = tar.windows(9).position(|w| w == b"+CONTENTS").unwrap();
    let block = pos - pos % 512;
    let mut header = tar::Header::new_old();
    header
        .as_mut_bytes()
        .copy_from_slice(&tar[block..block + 512]);
    header.set_size(1 << 40);
    header.set_cksum();
    tar[block..block + 512].copy_from_slice(header.as_bytes());
    let err = read(&tar).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
}

fn signed_packages_read_through_the_ar_wrapper() {
    let inner = PackageBuilder::new("s-1.0")
        .compression(Compression::Xz)
        .build()
        .unwrap();
    for kind in [Signature::Gpg, Signature::X509] {
        let signed = sign(&inner, "s-1.0.tgz", "s-1.0", kind).unwrap();
        let header = read(&signed).unwrap();
        assert_eq!(header.compression, Compression::Xz);
        assert_eq!(header.signature.unwrap().hash.file_size, inner.len() as u64);
        assert_eq!(header.metadata, read(&inner).unwrap().metadata);
    }
    // A long inner name uses the BSD "#1/len" form.
    let long = sign(
        &inner,
        "a-rather-long-package-name-1.0.tgz",
        "s-1.0",
        Signature::Gpg,
    )
    .unwrap();
    assert!(read(&long).is_ok());
}

fn ar_archives_missing_members_are_refused() {
    let inner = PackageBuilder::new("s-1.0").build().unwrap();
    let hash = pkg_hash("s-1.0", &inner);
    let sig: &[u8] = b"sig";
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"!<arch>\n".to_vec(), "ends before +PKG_HASH"),
        (
            ar_archive(&[("+PKG_HASH", &hash)]).unwrap(),
            "ends before a signature",
        ),
        (
            ar_archive(&[("+PKG_HASH", &hash), ("+PKG_GPG_SIGNATURE", sig)]).unwrap(),
            "ends before the inner package",
        ),
        (
            ar_archive(&[("s-1.0.tgz", &inner)]).unwrap(),
            "expected member +PKG_HASH, found \"s-1.0.tgz\"",
        ),
        (
            ar_archive(&[("+PKG_HASH", &hash), ("s-1.0.tgz", &inner)]).unwrap(),
            "expected member +PKG_SIGNATURE or +PKG_GPG_SIGNATURE",
        ),
        (
            ar_archive(&[
                ("+PKG_HASH", b"pkgsrc signature\n\nversion: 2\n"),
                ("+PKG_SIGNATURE", sig),
                ("s-1.0.tgz", &inner),
            ])
            .unwrap(),
            "malformed +PKG_HASH",
        ),
        (
            ar_archive(&[
                ("+PKG_HASH", &pkg_hash("s-1.0", b"12345")),
                ("+PKG_SIGNATURE", sig),
                ("s-1.0.tgz", &inner),
            ])
            .unwrap(),
            "+PKG_HASH gives file size 5",
        ),
    ];
    for (bytes, want) in cases {
        let msg = read_err(&bytes);
        assert!(
            msg.starts_with("invalid signed package") && msg.contains(want),
            "want {want:?}, got {msg:?}"
        );
    }
    // Cut inside the inner package.
    let signed = sign(&inner, "s-1.0.tgz", "s-1.0", Signature::X509).unwrap();
    let msg = read_err(&signed[..signed.len() - inner.len() + 30]);
    assert!(
        msg.contains("truncated") || msg.contains("corrupt"),
        "{msg}"
    );
    // An ar inside the ar is not a package.
    let nested = sign(&signed, "n.tgz", "s-1.0", Signature::Gpg).unwrap();
    assert!(read_err(&nested).contains("itself an ar archive"));
}

fn non_utf8_metadata_passes_through_byte_for_byte() {
    // pkg_info copies bytes: a Latin-1 comment stays Latin-1.
    let bytes = PackageBuilder::new("latin-1.0")
        .member("+COMMENT", b"caf\xe9 cr\xe8me\n".to_vec())
        .member("+DESC", b"\xff\xfe binary \x80\n".to_vec())
        .build()
        .unwrap();
    let header = read(&bytes).unwrap();
    let rec = record::render(
        &header.metadata,
        Some(record::FileInfo {
            name: b"latin-1.0.tgz",
            size: 1,
        }),
    );
    let line = b"COMMENT=caf\xe9 cr\xe8me\n";
    assert!(rec.windows(line.len()).any(|w| w == line));
    assert!(
        rec.ends_with(
            b"FILE_NAME=latin-1.0.tgz\nFILE_SIZE=1\nDESCRIPTION=\xff\xfe binary \x80\n\n"
        )
    );
}

fn the_zstd_fixture_reads_although_pkg_info_cannot() {
    let path = common::oracle().join("negative/compress-zstd-recompressed-1.0.tgz");
    let header = read_header(fs::File::open(path).unwrap(), &Limits::default()).unwrap();
    assert_eq!(header.compression, Compression::Zstd);
}

/// An xz stream whose first block claims `dict_bits` (the LZMA2
/// dictionary property byte), with a valid block header checksum: what a
/// 24-byte upload can carry.
fn xz_with_dictionary(data: &[u8], dict_bits: u8) -> Vec<u8> {
    let mut xz = Compression::Xz.compress(data).unwrap();
    // Stream header (12 bytes), then the block header: its size byte,
    // flags, and (no optional sizes here) filter id 0x21, props size 1,
    // the dictionary byte; then padding and a CRC32 of it all.
    let size = (usize::from(xz[12]) + 1) * 4;
    let header = &mut xz[12..12 + size];
    assert_eq!((header[1], header[2], header[3]), (0, 0x21, 1));
    header[4] = dict_bits;
    let mut crc = flate2::Crc::new();
    crc.update(&header[..size - 4]);
    header[size - 4..].copy_from_slice(&crc.sum().to_le_bytes());
    xz
}

fn a_huge_xz_dictionary_is_refused_before_allocating() {
    // 40 is the largest dictionary xz can name: 4 GiB.
    let bytes = xz_with_dictionary(b"x", 40);
    let err = read_err(&bytes[..24]);
    assert_eq!(
        err,
        "xz dictionary of 4 GiB exceeds the 128 MiB memory limit"
    );
    // The whole package: the same, whatever follows the header.
    let package = PackageBuilder::new("huge-1")
        .compression(Compression::Xz)
        .build()
        .unwrap();
    let mut huge = xz_with_dictionary(b"x", 40);
    huge.extend_from_slice(&package[24.min(package.len())..]);
    assert!(read_err(&huge).contains("exceeds the 128 MiB memory limit"));
    // 64 MiB (property 28) is within the limit and decodes.
    let ok = xz_with_dictionary(b"PKGNAME=a-1\n\n", 28);
    let mut out = Vec::new();
    Compression::Xz
        .decoder(&ok[..])
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, b"PKGNAME=a-1\n\n");
}

fn a_later_stream_over_the_memory_limit_fails_by_name() {
    // The first stream is fine; the concatenated second one asks for
    // 4 GiB, which only liblzma's own memlimit sees.
    let mut joined = Compression::Xz.compress(b"first\n").unwrap();
    joined.extend(xz_with_dictionary(b"second\n", 40));
    let mut out = Vec::new();
    let err = Compression::Xz
        .decoder(&joined[..])
        .unwrap()
        .read_to_end(&mut out)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("xz stream needs more than the 128 MiB memory limit"),
        "{err}"
    );
}

fn a_huge_zstd_window_is_refused() {
    // Frame header with no single segment and a window of 2^31 (2 GiB),
    // then one empty raw last block.
    let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 21 << 3, 0x01, 0x00, 0x00];
    assert_eq!(
        read_err(&frame),
        "zstd window of 2 GiB exceeds the 128 MiB memory limit"
    );
}

crate::harness::trials![
    test truncation_anywhere_is_an_error_or_the_full_record,
    test truncated_compressed_streams_name_their_codec,
    test corrupt_streams_are_reported_as_such,
    test empty_random_and_text_files,
    test a_tarball_without_required_members_is_invalid,
    test duplicate_member_is_fatal_and_misorder_a_warning,
    test metadata_after_the_payload_is_never_seen,
    test decompression_bombs_stop_at_the_limit,
    test the_limit_is_configurable_and_counts_skipped_members,
    test a_forged_member_size_is_refused_before_allocating,
    test signed_packages_read_through_the_ar_wrapper,
    test ar_archives_missing_members_are_refused,
    test non_utf8_metadata_passes_through_byte_for_byte,
    test the_zstd_fixture_reads_although_pkg_info_cannot,
    test a_huge_xz_dictionary_is_refused_before_allocating,
    test a_later_stream_over_the_memory_limit_fails_by_name,
    test a_huge_zstd_window_is_refused,
];
