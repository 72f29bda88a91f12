//! Byte layouts shared by every file: magics, the format version, fixed-size headers, file names and CRCs.
//!
//! `docs/FORMAT.md` is the specification; the offsets here are built from the previous field's size so
//! the code reads like the spec's tables. All integers are little-endian.

use std::path::Path;

use crate::error::{Error, Result};

/// The on-disk format version written by this build (in every file header it creates). See the "Format
/// versions" section of docs/FORMAT.md: files are never rewritten to upgrade them, so a store mixes versions.
pub(crate) const FORMAT_VERSION: u16 = 2;

/// The oldest on-disk format version this build reads.
pub(crate) const OLDEST_FORMAT_VERSION: u16 = 1;

/// Whether this build reads files of format version `version`.
pub(crate) fn is_readable_version(version: u16) -> bool {
    (OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version)
}

/// The format version stored at bytes 8..10 of a file that starts with a magic (every forklog file does).
pub(crate) fn stored_version(header: &[u8]) -> Option<u16> {
    Some(u16::from_le_bytes([*header.get(8)?, *header.get(9)?]))
}

/// Magic of the store file `forklog.store`.
pub(crate) const STORE_MAGIC: [u8; 8] = *b"FORKLOG\0";
/// Magic of a version header `vK.head`.
pub(crate) const HEAD_MAGIC: [u8; 8] = *b"FLKHEAD\0";
/// Magic of a segment `vK-SEQ.seg`.
pub(crate) const SEG_MAGIC: [u8; 8] = *b"FLKSEG\0\0";
/// Magic of a step index `vK-SEQ.idx`.
pub(crate) const IDX_MAGIC: [u8; 8] = *b"FLKIDX\0\0";
/// Magic of a key table `vK.keys`.
pub(crate) const KEYS_MAGIC: [u8; 8] = *b"FLKKEYS\0";
/// Magic of a deleted run's tombstone `deleted`.
pub(crate) const DELETED_MAGIC: [u8; 8] = *b"FLKDEL\0\0";

/// Name of the store file at the store's root.
pub(crate) const STORE_FILE: &str = "forklog.store";
/// Name of the directory that holds one directory per run.
pub(crate) const RUNS_DIR: &str = "runs";
/// Suffix (then random hex digits) of a run directory being created: `<id>~new<hex>`. `~` cannot appear in a
/// run id, so listings never take it for a run.
pub(crate) const NEW_SUFFIX: &str = "~new";
/// Suffix of a directory on its way out (a run gc removes, a leftover moved aside): `~` is not in run ids.
pub(crate) const TRASH_SUFFIX: &str = "~gc";
/// Name of a deleted run's tombstone file.
pub const DELETED_FILE: &str = "deleted";

/// Size of the store file.
pub(crate) const STORE_FILE_LEN: usize = 32;
/// Size of a segment header.
pub(crate) const SEG_HEADER_LEN: usize = 80;
/// Size of a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = 12;
/// Size of an index or key-table file header.
pub(crate) const SMALL_HEADER_LEN: usize = 32;
/// Size of one index entry.
pub(crate) const INDEX_ENTRY_LEN: usize = 64;
/// Size of a key record header.
pub(crate) const KEY_RECORD_HEADER_LEN: usize = 8;

/// Largest frame payload a reader accepts (and a writer produces): 64 MiB.
pub(crate) const MAX_FRAME_LEN: u32 = 64 << 20;
/// Largest key a key table accepts: 64 KiB.
pub(crate) const MAX_KEY_LEN: u32 = 64 << 10;
/// Largest version header body: 64 KiB.
pub(crate) const MAX_HEAD_BODY_LEN: u32 = 64 << 10;
/// The writer adds an index entry for a frame starting at least this many bytes after the last indexed frame.
pub(crate) const INDEX_INTERVAL: u64 = 4096;
/// Sentinel for "no step" in fixed-size fields.
pub(crate) const NO_STEP: u64 = u64::MAX;

/// File name of version `version`'s header.
pub(crate) fn head_name(version: u32) -> String {
    format!("v{version}.head")
}
/// File name of version `version`'s key table.
pub(crate) fn keys_name(version: u32) -> String {
    format!("v{version}.keys")
}
/// File name of segment `seq` of version `version`.
pub(crate) fn seg_name(version: u32, seq: u32) -> String {
    format!("v{version}-{seq}.seg")
}
/// File name of the step index of segment `seq` of version `version`.
pub(crate) fn idx_name(version: u32, seq: u32) -> String {
    format!("v{version}-{seq}.idx")
}

/// What a file name in a run directory is (re-exported by the hidden `vfs` module for file systems under the
/// engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunFile {
    /// `vK.head`
    Head(u32),
    /// `vK.keys`
    Keys(u32),
    /// `vK-SEQ.seg`
    Seg(u32, u32),
    /// `vK-SEQ.idx`
    Idx(u32, u32),
    /// `vK-SEQ.zmap`: the zone map of a segment (format version 2, derived data)
    Zone(u32, u32),
}

/// Parses a run-directory file name; `None` for anything else (lock, tombstone, temp files).
pub fn parse_run_file(name: &str) -> Option<RunFile> {
    let num = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
            return None;
        }
        s.parse().ok()
    };
    let rest = name.strip_prefix('v')?;
    let (stem, ext) = rest.rsplit_once('.')?;
    match ext {
        "head" => Some(RunFile::Head(num(stem)?)),
        "keys" => Some(RunFile::Keys(num(stem)?)),
        "seg" | "idx" | "zmap" => {
            let (v, s) = stem.split_once('-')?;
            let (v, s) = (num(v)?, num(s)?);
            Some(match ext {
                "seg" => RunFile::Seg(v, s),
                "idx" => RunFile::Idx(v, s),
                _ => RunFile::Zone(v, s),
            })
        }
        _ => None,
    }
}

/// True for a name a run directory may hold: version headers, key tables, segments, indexes (and, derived,
/// anything `parse_run_file` knows), the tombstone, the old `lock` file and temp files of atomic writes.
/// `gc` removes a directory only when every entry is one of these: never a file that is not forklog's.
pub(crate) fn is_run_layout_name(name: &str) -> bool {
    parse_run_file(name).is_some()
        || name == DELETED_FILE
        || name == "lock"
        || name.strip_suffix(".tmp").is_some_and(|n| parse_run_file(n).is_some() || n == DELETED_FILE)
}

/// CRC-32 (IEEE, as computed by `crc32fast`) over the concatenation of `parts`.
pub(crate) fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// Mixes a 64-bit value (SplitMix64 finalizer); used to derive segment salts.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The salt of segment `seq` of a version with nonce `nonce`: ties every frame CRC to its segment.
pub(crate) fn segment_salt(nonce: u64, seq: u32) -> u64 {
    mix64(nonce ^ mix64(u64::from(seq) + 1))
}

/// Little-endian field reader over a byte slice; every read is bounds-checked.
pub(crate) struct Le<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Le<'a> {
    /// Reads from the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Le<'a> {
        Le { bytes, pos: 0 }
    }
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.pos.checked_add(N)?;
        let out: [u8; N] = self.bytes.get(self.pos..end)?.try_into().ok()?;
        self.pos = end;
        Some(out)
    }
    /// Next 8 raw bytes.
    pub(crate) fn bytes8(&mut self) -> Option<[u8; 8]> {
        self.take::<8>()
    }
    /// Next `u16`.
    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take::<2>().map(u16::from_le_bytes)
    }
    /// Next `u32`.
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
    /// Next `u64`.
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }
}

/// Checks the common prefix of a fixed-size header: length, magic, format version and the trailing CRC
/// (over every byte before it, seeded with nothing). Returns the header bytes.
pub(crate) fn check_fixed_header<'a>(file: &Path, bytes: &'a [u8], len: usize, magic: &[u8; 8]) -> Result<&'a [u8]> {
    let header = bytes
        .get(..len)
        .ok_or_else(|| Error::corrupt(file, 0, format!("file is shorter than its {len}-byte header")))?;
    if &header[..8] != magic {
        return Err(Error::corrupt(file, 0, "bad magic: not a forklog file of this kind"));
    }
    let stored = u32::from_le_bytes([header[len - 4], header[len - 3], header[len - 2], header[len - 1]]);
    if crc(&[&header[..len - 4]]) != stored {
        return Err(Error::corrupt(file, 0, "header checksum mismatch"));
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if !is_readable_version(version) {
        return Err(Error::UnsupportedFormat { file: file.to_path_buf(), found: version, supported: FORMAT_VERSION });
    }
    Ok(header)
}

/// Builds a fixed-size header: magic, this build's format version, `body` (placed at offset 10), zero
/// padding, CRC.
pub(crate) fn build_fixed_header(len: usize, magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    build_fixed_header_version(len, magic, FORMAT_VERSION, body)
}

/// Builds a fixed-size header with an explicit format `version` (tests write older versions with it).
pub(crate) fn build_fixed_header_version(len: usize, magic: &[u8; 8], version: u16, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; len];
    out[..8].copy_from_slice(magic);
    out[8..10].copy_from_slice(&version.to_le_bytes());
    out[10..10 + body.len()].copy_from_slice(body);
    let c = crc(&[&out[..len - 4]]);
    out[len - 4..].copy_from_slice(&c.to_le_bytes());
    out
}

/// Current wall-clock time in microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Seconds (float) to microseconds, saturating; non-finite values become 0.
pub(crate) fn secs_to_micros(secs: f64) -> i64 {
    if secs.is_finite() {
        (secs * 1e6).round() as i64
    } else {
        0
    }
}

/// Microseconds to seconds.
pub(crate) fn micros_to_secs(us: i64) -> f64 {
    us as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        assert_eq!(parse_run_file(&head_name(3)), Some(RunFile::Head(3)));
        assert_eq!(parse_run_file(&keys_name(0)), Some(RunFile::Keys(0)));
        assert_eq!(parse_run_file(&seg_name(2, 17)), Some(RunFile::Seg(2, 17)));
        assert_eq!(parse_run_file(&idx_name(0, 0)), Some(RunFile::Idx(0, 0)));
        for junk in ["lock", "deleted", "v1.head.tmp", "v01.head", "v-1.seg", "v1-.seg", "x1.head"] {
            assert_eq!(parse_run_file(junk), None, "{junk}");
        }
    }

    #[test]
    fn fixed_header_detects_flips() {
        let h = build_fixed_header(32, &IDX_MAGIC, &[1, 2, 3]);
        let p = Path::new("x");
        assert!(check_fixed_header(p, &h, 32, &IDX_MAGIC).is_ok());
        for bit in 0..(32 * 8) {
            let mut bad = h.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(check_fixed_header(p, &bad, 32, &IDX_MAGIC).is_err(), "bit {bit}");
        }
    }
}
