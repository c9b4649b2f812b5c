//! Crafted hostile uploads, made on the spot (never stored): each a small
//! file that once stopped, slowed or fooled a repository (issue 20), for
//! the regression tests and the `hostile` benchmark that measures what
//! each costs a pass.

use crate::compression::Compression;
use crate::create::{PackageBuilder, Signature, pkg_hash, wrap};

/// What makes one upload.
pub type Make = fn() -> Vec<u8>;

/// The file name of every hostile upload, and what makes it.
pub const UPLOADS: [(&str, Make); 11] = [
    ("braces-1.0.tgz", brace_bomb),
    ("hashlines-1.0.tgz", pkg_hash_lines),
    ("badhash-1.0.tgz", bad_first_hash_line),
    ("longname-1.0.tgz", long_name),
    ("longopsys-1.0.tgz", long_opsys),
    ("manydeps-1.0.tgz", many_depends),
    ("deps50k-1.0.tgz", depends_within_limit),
    ("emptybz-1.0.tgz", empty_bzip2_streams),
    ("swapped-1.0.tgz", swapped_inner),
    ("newlines-1.0.tgz", desc_of_newlines),
    ("globs-1.0.tgz", backtracking_globs),
];

/// `(file name, bytes)` of every hostile upload.
pub fn uploads() -> Vec<(String, Vec<u8>)> {
    UPLOADS
        .iter()
        .map(|(name, make)| ((*name).to_owned(), make()))
        .collect()
}

/// The bytes of the upload named `name`.
pub fn upload(name: &str) -> Option<Vec<u8>> {
    UPLOADS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, make)| make())
}

fn with_contents(pkgname: &str, contents: Vec<u8>) -> Vec<u8> {
    PackageBuilder::new(pkgname)
        .member("+CONTENTS", contents)
        .build()
        .expect("a package")
}

/// H1: `@pkgdep {a,b}{a,b}…x-[0-9]*`: 2^30 alternatives in 160 bytes.
pub fn brace_bomb() -> Vec<u8> {
    let pattern = format!("{}x-[0-9]*", "{a,b}".repeat(30));
    with_contents(
        "braces-1.0",
        format!("@name braces-1.0\n@pkgdep {pattern}\n").into(),
    )
}

/// H2: a signed package whose `+PKG_HASH` is 31 M one-byte lines (62 MB,
/// about 60 KB gzip'd).
pub fn pkg_hash_lines() -> Vec<u8> {
    let inner = PackageBuilder::new("hashlines-1.0").build().expect("inner");
    let mut hash = pkg_hash("hashlines-1.0", &inner);
    hash.truncate(hash.len() - "end pkgsrc signature\n".len());
    hash.extend(b"a\n".repeat(31_000_000));
    hash.extend_from_slice(b"end pkgsrc signature\n");
    let signed = wrap(&hash, Signature::Gpg, b"sig", "hashlines-1.0.tgz", &inner).expect("ar");
    Compression::Gzip.compress(&signed).expect("gzip")
}

/// H3: a signed package whose first `+PKG_HASH` hash line is 7 MiB long
/// (under the `+PKG_HASH` bound): its error once quoted it whole.
pub fn bad_first_hash_line() -> Vec<u8> {
    let inner = PackageBuilder::new("badhash-1.0").build().expect("inner");
    let hash = pkg_hash("badhash-1.0", &inner);
    let text = String::from_utf8_lossy(&hash);
    let at = text.find("file size: ").expect("a file size line");
    let end = at + text[at..].find('\n').expect("its end") + 1;
    let bad = format!(
        "{}\n{}\nend pkgsrc signature\n",
        &text[..end],
        "Z".repeat(7 << 20)
    );
    let signed = wrap(
        bad.as_bytes(),
        Signature::Gpg,
        b"sig",
        "badhash-1.0.tgz",
        &inner,
    )
    .expect("ar");
    Compression::Gzip.compress(&signed).expect("gzip")
}

/// H3: a 60 MiB `@name`.
pub fn long_name() -> Vec<u8> {
    let mut contents = b"@name ".to_vec();
    contents.extend(std::iter::repeat_n(b'n', 60 << 20));
    contents.extend_from_slice(b"-1.0\n");
    with_contents("longname-1.0", contents)
}

/// H3: a 60 MiB OPSYS in `+BUILD_INFO`.
pub fn long_opsys() -> Vec<u8> {
    let mut info = b"OPSYS=".to_vec();
    info.extend(std::iter::repeat_n(b'o', 60 << 20));
    info.push(b'\n');
    PackageBuilder::new("longopsys-1.0")
        .member("+BUILD_INFO", info)
        .build()
        .expect("a package")
}

/// H3: 2.6 M distinct unresolvable DEPENDS (a few MB gzip'd).
pub fn many_depends() -> Vec<u8> {
    let mut contents = b"@name manydeps-1.0\n".to_vec();
    for i in 0..2_600_000u32 {
        contents.extend_from_slice(format!("@pkgdep d{i}-[0-9]*\n").as_bytes());
    }
    with_contents("manydeps-1.0", contents)
}

/// 50,000 distinct unresolvable DEPENDS: a record under the limit, whose
/// every pattern the repository-wide check matches.
pub fn depends_within_limit() -> Vec<u8> {
    let mut contents = b"@name deps50k-1.0\n".to_vec();
    for i in 0..50_000u32 {
        contents.extend_from_slice(format!("@pkgdep e{i}>=1\n").as_bytes());
    }
    with_contents("deps50k-1.0", contents)
}

/// M1: 16 MiB of empty bzip2 streams.
pub fn empty_bzip2_streams() -> Vec<u8> {
    let empty = Compression::Bzip2.compress(b"").expect("bzip2");
    empty.repeat((16 << 20) / empty.len())
}

/// M2: a package signed as `swapped-1.0` whose inner package is another
/// of the same size, with other metadata.
pub fn swapped_inner() -> Vec<u8> {
    let build = |comment: &str| {
        PackageBuilder::new("swapped-1.0")
            .compression(Compression::None)
            .member("+COMMENT", comment)
            .build()
            .expect("inner")
    };
    let inner = build("a good package\n");
    let evil = build("a BAD! package\n");
    let hash = pkg_hash("swapped-1.0", &inner);
    wrap(&hash, Signature::X509, b"sig", "swapped-1.0.tgz", &evil).expect("ar")
}

/// 64 MiB of empty lines in `+DESC`: each costs 12 bytes more in a record
/// (`DESCRIPTION=`), 832 MiB in all.
pub fn desc_of_newlines() -> Vec<u8> {
    PackageBuilder::new("newlines-1.0")
        .member("+DESC", vec![b'\n'; 64 << 20])
        .build()
        .expect("a package")
}

/// DEPENDS globs that no base narrows and that backtrack on every name.
pub fn backtracking_globs() -> Vec<u8> {
    let mut contents = b"@name globs-1.0\n".to_vec();
    for i in 0..200 {
        let glob = format!("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*{i}b");
        contents.extend_from_slice(format!("@pkgdep {glob}\n").as_bytes());
    }
    with_contents("globs-1.0", contents)
}
