//! The key table of a run version (`vK.keys`): metric and config names, stored once and referred to by id
//! from every event, so a name is not repeated in millions of rows.
//!
//! A record is `len u32 | crc u32 | utf8 bytes`, its CRC seeded with the version's nonce and the record's
//! index (= the key id), so stale or misplaced records never validate. The writer makes new records
//! durable before it writes any frame that uses them.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{
    build_fixed_header, check_fixed_header, crc, Le, KEYS_MAGIC, KEY_RECORD_HEADER_LEN, MAX_KEY_LEN, SMALL_HEADER_LEN,
};
use crate::value::Key;

/// Encodes a key table header (32 bytes).
pub(crate) fn encode_keys_header(version: u32, nonce: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(18);
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&version.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(&nonce.to_le_bytes());
    build_fixed_header(SMALL_HEADER_LEN, &KEYS_MAGIC, &body)
}

fn record_crc(nonce: u64, index: u32, key: &[u8]) -> u32 {
    let len = key.len() as u32;
    crc(&[&nonce.to_le_bytes(), &index.to_le_bytes(), &len.to_le_bytes(), key])
}

/// Appends the record for key number `index` to `out`.
pub(crate) fn encode_key_record(out: &mut Vec<u8>, nonce: u64, index: u32, key: &str) {
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&record_crc(nonce, index, key.as_bytes()).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
}

/// The record at `pos` if it is a genuine record for key number `index`: `(key bytes, record length)`.
fn record_at(bytes: &[u8], pos: usize, nonce: u64, index: u32) -> Option<(&[u8], usize)> {
    let mut r = Le::new(bytes.get(pos..)?);
    let len = r.u32()?;
    let stored = r.u32()?;
    if len > MAX_KEY_LEN {
        return None;
    }
    let start = pos + KEY_RECORD_HEADER_LEN;
    let key = bytes.get(start..start.checked_add(len as usize)?)?;
    (record_crc(nonce, index, key) == stored).then_some((key, KEY_RECORD_HEADER_LEN + len as usize))
}

/// A parsed key table.
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub struct KeyTable {
    /// Keys by id.
    pub keys: Vec<Key>,
    /// Length of the valid prefix of the file.
    pub valid_len: u64,
    /// Whether invalid bytes follow the valid prefix (a torn tail).
    pub torn: bool,
}

/// Parses a key table file. With `allow_torn` an invalid tail with no valid record after it is a torn tail;
/// otherwise, and whenever a valid record follows, it is corruption.
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub fn parse_keys(path: &Path, bytes: &[u8], version: u32, nonce: u64, allow_torn: bool) -> Result<KeyTable> {
    // The table's creation (header write) may have been cut short by a crash: with nothing after the header,
    // it is an empty table with a torn tail.
    if allow_torn && bytes.len() < SMALL_HEADER_LEN {
        return Ok(KeyTable { keys: Vec::new(), valid_len: 0, torn: true });
    }
    let h = check_fixed_header(path, bytes, SMALL_HEADER_LEN, &KEYS_MAGIC)?;
    if h[10..28] != encode_keys_header(version, nonce)[10..28] {
        return Err(Error::corrupt(path, 0, "key table header names another run version"));
    }
    let mut keys: Vec<Key> = Vec::new();
    let mut seen: std::collections::HashSet<Key> = std::collections::HashSet::new();
    let mut pos = SMALL_HEADER_LEN;
    while pos < bytes.len() {
        let index = keys.len() as u32;
        match record_at(bytes, pos, nonce, index) {
            Some((key, n)) => {
                let s =
                    std::str::from_utf8(key).map_err(|_| Error::corrupt(path, pos as u64, "key is not valid UTF-8"))?;
                let key: Key = Arc::from(s);
                // The writer gives each name one id: a name defined twice would make rows ambiguous.
                if !seen.insert(key.clone()) {
                    return Err(Error::corrupt(path, pos as u64, format!("key #{index} repeats the name {s:?}")));
                }
                keys.push(key);
                pos += n;
            }
            None => {
                let later = (pos + 1..bytes.len()).any(|p| {
                    record_at(bytes, p, nonce, index).is_some() || record_at(bytes, p, nonce, index + 1).is_some()
                });
                if !allow_torn || later {
                    return Err(Error::corrupt(path, pos as u64, format!("bad record for key #{index}")));
                }
                return Ok(KeyTable { keys, valid_len: pos as u64, torn: true });
            }
        }
    }
    Ok(KeyTable { keys, valid_len: pos as u64, torn: false })
}

/// Reads and parses a key table; a missing file is an empty table.
pub(crate) fn read_keys(
    vfs: &dyn crate::vfs::Vfs,
    path: &Path,
    version: u32,
    nonce: u64,
    allow_torn: bool,
) -> Result<KeyTable> {
    let file = match vfs.open(path, crate::vfs::OpenMode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeyTable::default()),
        Err(e) => return Err(Error::io("opening key table", path, e)),
    };
    let len = file.len().map_err(|e| Error::io("reading key table length", path, e))?;
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0).map_err(|e| Error::io("reading key table", path, e))?;
    parse_keys(path, &bytes, version, nonce, allow_torn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_defined_twice_is_corruption() {
        // Found by fuzz/ (segment_recovery, crafted key records with genuine CRCs): two ids with one name made
        // history keep one value and columns the other.
        let mut bytes = encode_keys_header(0, 7);
        encode_key_record(&mut bytes, 7, 0, "loss");
        encode_key_record(&mut bytes, 7, 1, "acc");
        let ok = parse_keys(Path::new("v0.keys"), &bytes, 0, 7, false).unwrap();
        assert_eq!(ok.keys.len(), 2);
        encode_key_record(&mut bytes, 7, 2, "loss");
        for allow_torn in [false, true] {
            let err = parse_keys(Path::new("v0.keys"), &bytes, 0, 7, allow_torn).unwrap_err();
            assert!(err.is_corruption(), "{err:?}");
        }
    }
}
