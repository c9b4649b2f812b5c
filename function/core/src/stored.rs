//! Decoding what pkgsum keeps under `.pkgsum/` (the manifest and the
//! pieces) as the untrusted input it is: anyone with write access to the
//! bucket can put bytes there.
//!
//! The bytes are bounded before they are decoded ([`unpack`]), but
//! postcard spends as little as one byte on an element that takes 24 or
//! more in memory (an empty string in a list), so a few MiB could still
//! become gigabytes. Every collection is therefore decoded through
//! [`seq`] or [`map`], which spend one unit of a budget per element, set
//! for the whole decoding by [`decode`]: past it, decoding fails, and the
//! state is treated as lost.

use std::cell::Cell;
use std::fmt;
use std::io::Read;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{Error, Result};
use crate::limit::Limited;

thread_local! {
    /// Elements the decoding under way may still make; unbounded outside
    /// [`decode`].
    static LEFT: Cell<u64> = const { Cell::new(u64::MAX) };
}

/// Decodes a postcard body, allowing at most `elements` elements in all
/// its collections, and nothing after the value.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8], elements: u64) -> postcard::Result<T> {
    let before = LEFT.with(|left| left.replace(elements));
    let decoded = postcard::take_from_bytes(body);
    LEFT.with(|left| left.set(before));
    match decoded? {
        (value, []) => Ok(value),
        _ => Err(postcard::Error::DeserializeBadEncoding),
    }
}

fn spend<E: de::Error>() -> Result<(), E> {
    LEFT.with(|left| match left.get() {
        0 => Err(E::custom("more elements than pkgsum stores")),
        n => {
            left.set(n - 1);
            Ok(())
        }
    })
}

/// Deserializes a sequence into any collection, one budget unit per
/// element (`#[serde(deserialize_with = "stored::seq")]`).
pub(crate) fn seq<'de, D, C, T>(deserializer: D) -> Result<C, D::Error>
where
    D: Deserializer<'de>,
    C: Default + Extend<T>,
    T: de::Deserialize<'de>,
{
    struct Elements<C, T>(PhantomData<(C, T)>);
    impl<'de, C: Default + Extend<T>, T: de::Deserialize<'de>> Visitor<'de> for Elements<C, T> {
        type Value = C;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a sequence")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<C, A::Error> {
            let mut out = C::default();
            while let Some(element) = seq.next_element()? {
                spend::<A::Error>()?;
                out.extend([element]);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_seq(Elements(PhantomData))
}

/// Deserializes a map into any collection of pairs, one budget unit per
/// entry (`#[serde(deserialize_with = "stored::map")]`).
pub(crate) fn map<'de, D, C, K, V>(deserializer: D) -> Result<C, D::Error>
where
    D: Deserializer<'de>,
    C: Default + Extend<(K, V)>,
    K: de::Deserialize<'de>,
    V: de::Deserialize<'de>,
{
    struct Entries<C, K, V>(PhantomData<(C, K, V)>);
    impl<'de, C, K, V> Visitor<'de> for Entries<C, K, V>
    where
        C: Default + Extend<(K, V)>,
        K: de::Deserialize<'de>,
        V: de::Deserialize<'de>,
    {
        type Value = C;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<C, A::Error> {
            let mut out = C::default();
            while let Some(entry) = map.next_entry()? {
                spend::<A::Error>()?;
                out.extend([entry]);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Entries(PhantomData))
}

/// A list of strings whose elements are counted: what a map of warnings
/// holds as each value.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct Lines(#[serde(deserialize_with = "seq")] pub Vec<String>);

/// A map of names to lists of lines (warnings), every element counted.
pub(crate) fn map_of_lines<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, D::Error> {
    let counted: Vec<(String, Lines)> = map(deserializer)?;
    Ok(counted.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// Postcard, zstd-compressed: how the manifest and the pieces are stored.
pub(crate) fn pack<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let body = postcard::to_stdvec(value).map_err(|e| Error::State(e.to_string()))?;
    zstd::bulk::compress(&body, 3).map_err(Error::Io)
}

/// Decompresses what [`pack`] made, at most `limit` bytes of it; `what`
/// names it in errors.
pub(crate) fn unpack(packed: &[u8], limit: u64, what: &'static str) -> Result<Vec<u8>> {
    let decoder = crate::compression::Compression::Zstd
        .decoder(packed)
        .map_err(|e| crate::error::classify(e, what))?;
    let mut body = Vec::new();
    Limited::new(decoder, limit)
        .read_to_end(&mut body)
        .map_err(|e| crate::error::classify(e, what))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Shape {
        #[serde(deserialize_with = "seq")]
        list: Vec<String>,
        #[serde(deserialize_with = "map")]
        map: std::collections::BTreeMap<String, Lines>,
    }

    #[test]
    fn elements_past_the_budget_fail_and_the_budget_is_restored() {
        let shape = Shape {
            list: vec![String::new(); 10],
            map: [("a".to_owned(), Lines(vec![String::new(); 5]))].into(),
        };
        let body = postcard::to_stdvec(&shape).unwrap();
        assert_eq!(decode::<Shape>(&body, 16).unwrap(), shape);
        assert!(decode::<Shape>(&body, 15).is_err());
        // Outside `decode`, nothing is counted.
        assert_eq!(postcard::from_bytes::<Shape>(&body).unwrap(), shape);
    }

    #[test]
    fn a_few_mib_of_empty_strings_are_refused_early() {
        // 8 MiB of zero lengths: 8 M empty strings, 200 MiB of Vec.
        let mut body = vec![0x80, 0x80, 0x80, 0x04];
        body.resize(8 << 20, 0);
        body.push(0);
        let err = decode::<Shape>(&body, 100_000).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
    }
}
