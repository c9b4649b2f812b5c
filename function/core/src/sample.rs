//! Sample package metadata shaped like pkgsrc's, for benchmarks: the same
//! for the same index on every machine, and as varied as real records
//! (descriptions drawn from a vocabulary, several dependencies, shared
//! libraries provided and required), about 1.3 KiB per record where the
//! real third-party summary in the fixtures averages 1.4 KiB. Sizes and
//! compression ratios measured on it come out near real ones, which
//! records made by repeating one template do not (xz finds the template).

use crate::record::{self, FileInfo, Metadata};

/// Words pkgsrc descriptions are made of, most common first.
const WORDS: &[&str] = &[
    "the",
    "a",
    "and",
    "of",
    "to",
    "is",
    "for",
    "in",
    "it",
    "with",
    "that",
    "this",
    "library",
    "program",
    "can",
    "be",
    "as",
    "on",
    "are",
    "by",
    "files",
    "support",
    "from",
    "an",
    "which",
    "or",
    "data",
    "provides",
    "written",
    "it",
    "server",
    "tool",
    "used",
    "client",
    "package",
    "system",
    "also",
    "file",
    "you",
    "set",
    "based",
    "other",
    "functions",
    "version",
    "using",
    "interface",
    "network",
    "allows",
    "simple",
    "fast",
    "written",
    "Python",
    "module",
    "C",
    "implementation",
    "format",
    "source",
    "user",
    "applications",
    "X11",
    "GTK",
    "Perl",
    "command",
    "line",
    "text",
    "image",
    "graphics",
    "free",
    "open",
    "protocol",
    "tools",
    "includes",
    "web",
    "its",
    "all",
    "portable",
    "features",
    "access",
    "multiple",
    "under",
    "terminal",
    "editor",
    "manager",
    "display",
    "terms",
    "license",
    "GNU",
    "new",
    "small",
    "framework",
    "parser",
    "binding",
    "bindings",
    "Rust",
    "Go",
    "Lua",
    "Ruby",
    "Java",
    "compression",
    "encryption",
    "secure",
    "shell",
    "scripts",
    "generic",
    "standard",
    "compatible",
    "output",
    "input",
    "windows",
    "desktop",
    "audio",
    "video",
    "stream",
    "database",
    "SQL",
    "queries",
    "HTTP",
    "TLS",
    "XML",
    "JSON",
    "parsing",
    "fonts",
    "printing",
    "documents",
    "mail",
    "messages",
    "games",
    "mathematics",
    "numerical",
    "scientific",
    "statistics",
    "plotting",
    "build",
    "developers",
    "testing",
    "debugging",
    "performance",
    "memory",
    "thread",
    "threads",
    "process",
    "kernel",
    "devices",
    "hardware",
    "drivers",
    "Unix",
    "NetBSD",
    "Linux",
    "macOS",
    "platforms",
    "configuration",
    "options",
    "plugins",
    "extensible",
    "lightweight",
    "high",
    "level",
    "low",
    "API",
    "easy",
    "way",
];

const CATEGORIES: &[&str] = &[
    "devel",
    "net",
    "www",
    "textproc",
    "graphics",
    "x11",
    "lang",
    "databases",
    "security",
    "sysutils",
    "audio",
    "multimedia",
    "math",
    "misc",
    "archivers",
    "converters",
    "mail",
    "editors",
    "fonts",
    "games",
    "print",
    "shells",
    "time",
    "wm",
];

const LICENSES: &[&str] = &[
    "modified-bsd",
    "mit",
    "gnu-gpl-v2",
    "gnu-gpl-v3",
    "gnu-lgpl-v2.1",
    "apache-2.0",
    "2-clause-bsd",
    "isc",
    "artistic OR gnu-gpl-v1",
    "mpl-2.0",
    "zlib",
];

const LIBRARIES: &[&str] = &[
    "/usr/lib/libc.so.12",
    "/usr/lib/libm.so.0",
    "/usr/lib/libpthread.so.1",
    "/usr/lib/libz.so.1",
    "/usr/lib/libssl.so.15",
    "/usr/lib/libcrypto.so.15",
    "/usr/lib/libstdc++.so.9",
    "/usr/lib/libgcc_s.so.1",
    "/usr/lib/libutil.so.7",
    "/usr/pkg/lib/libintl.so.8",
    "/usr/pkg/lib/libiconv.so.2",
    "/usr/pkg/lib/libglib-2.0.so.0",
    "/usr/pkg/lib/libffi.so.8",
    "/usr/pkg/lib/libX11.so.6",
    "/usr/pkg/lib/libxml2.so.2",
    "/usr/pkg/lib/libpcre2-8.so.0",
    "/usr/pkg/lib/libpython3.12.so.1.0",
    "/usr/pkg/lib/libncursesw.so.6",
    "/usr/pkg/lib/libcurl.so.4",
    "/usr/pkg/lib/libpng16.so.16",
];

/// How many words in a hundred are rare ones.
const RARE_PERCENT: usize = 10;

/// A small deterministic generator (an LCG): the same numbers everywhere.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// An index skewed towards the start, as word frequencies are.
    fn skewed(&mut self, n: usize) -> usize {
        self.below(n).min(self.below(n)).min(self.below(n))
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// The package name of sample `i`: a word, the index and a version.
pub fn pkgname(i: usize) -> String {
    let mut n = Numbers(i as u64 * 7919 + 1);
    let word = WORDS[n.below(WORDS.len())].to_lowercase();
    format!("{word}{i}-{}.{}.{}", n.below(5), n.below(30), n.below(12))
}

/// The metadata of sample package `i`.
pub fn metadata(i: usize) -> Metadata {
    let mut n = Numbers(i as u64 * 104_729 + 17);
    let name = pkgname(i);
    let base = name.rsplit_once('-').map_or(name.as_str(), |(b, _)| b);
    let mut contents = format!("@name {name}\n");
    for _ in 0..n.below(7) {
        let dep = pkgname(n.below(100_000));
        let dep = dep
            .rsplit_once('-')
            .map_or(dep.as_str(), |(b, _)| b)
            .to_owned();
        contents.push_str(&format!("@pkgdep {dep}>={}.{}\n", n.below(4), n.below(20)));
    }
    let words = 3 + n.below(6);
    let comment = sentence(&mut n, words);
    let mut desc = String::new();
    for _ in 0..3 + n.below(10) {
        let words = 6 + n.below(7);
        desc.push_str(&sentence(&mut n, words));
        desc.push('\n');
    }
    let category = n.pick(CATEGORIES);
    let mut build_info = format!(
        "BUILD_DATE=2026-11-{:02} {:02}:{:02}:{:02} +0000\nCATEGORIES={category}\n\
         HOMEPAGE=https://www.example.org/{base}/\nLICENSE={}\nMACHINE_ARCH=x86_64\n\
         OPSYS=NetBSD\nOS_VERSION=10.1\nPKGPATH={category}/{base}\nPKGTOOLS_VERSION=20250417\n",
        1 + n.below(28),
        n.below(24),
        n.below(60),
        n.below(60),
        n.pick(LICENSES),
    );
    for k in 0..n.below(4) {
        build_info.push_str(&format!("PROVIDES=/usr/pkg/lib/lib{base}.so.{k}\n"));
    }
    for _ in 0..1 + n.below(6) {
        build_info.push_str(&format!("REQUIRES={}\n", n.pick(LIBRARIES)));
    }
    desc.push_str(&format!("\nHomepage:\nhttps://www.example.org/{base}/\n"));
    Metadata {
        contents: contents.into_bytes(),
        comment: format!("{comment}\n").into_bytes(),
        desc: desc.into_bytes(),
        build_info: Some(build_info.into_bytes()),
        size_pkg: Some(format!("{}\n", 10_000 + n.below(50_000_000)).into_bytes()),
    }
}

/// Sample `i`'s file name and record, as `pkg_info -X` prints it.
pub fn record(i: usize) -> (String, Vec<u8>) {
    let file = format!("{}.tgz", pkgname(i));
    let size = 5_000 + (i as u64 * 7_919) % 5_000_000;
    let info = FileInfo {
        name: file.as_bytes(),
        size,
    };
    let record = record::render(&metadata(i), Some(info));
    (file, record)
}

/// Syllables rarer words are made of: real descriptions draw on
/// thousands of words, not on the common ones alone.
const SYLLABLES: &[&str] = &[
    "al", "be", "con", "de", "en", "fi", "gra", "ho", "in", "ja", "ki", "lo", "ma", "ne", "or",
    "pa", "qui", "re", "sa", "ti", "u", "ve", "wa", "xe", "yo", "ze", "tion", "ment", "er", "ing",
    "ly", "ize", "ous", "ble", "ter", "com", "pro", "trans", "port", "form",
];

/// Rare word number `k` (of about 50,000): made of syllables.
fn rare_word(k: usize) -> String {
    let mut n = Numbers(k as u64 + 99);
    (0..2 + n.below(3)).map(|_| n.pick(SYLLABLES)).collect()
}

fn sentence(n: &mut Numbers, words: usize) -> String {
    let mut out = String::new();
    for k in 0..words {
        if k > 0 {
            out.push(' ');
        }
        if n.below(100) < RARE_PERCENT {
            out.push_str(&rare_word(n.skewed(50_000)));
        } else {
            out.push_str(WORDS[n.skewed(WORDS.len())]);
        }
    }
    let mut chars = out.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_fixed_distinct_and_sized_like_real_records() {
        assert_eq!(record(42), record(42));
        let records: Vec<(String, Vec<u8>)> = (0..2000).map(record).collect();
        let names: std::collections::BTreeSet<&String> = records.iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), records.len());
        let mean = records.iter().map(|(_, r)| r.len()).sum::<usize>() / records.len();
        assert!((1000..1700).contains(&mean), "{mean} bytes per record");
        let text = String::from_utf8(records[7].1.clone()).unwrap();
        for field in [
            "PKGNAME=",
            "COMMENT=",
            "DESCRIPTION=",
            "REQUIRES=",
            "FILE_NAME=",
        ] {
            assert!(text.contains(field), "{field} in {text}");
        }
    }
}
