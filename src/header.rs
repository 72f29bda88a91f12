//! Version headers (`vK.head`): what a run version is and where its inherited history lives.
//!
//! A root run's v0 has no base. A fork's v0 and every rewind's vK+1 have a *base pointer*
//! `(run, version, segment, offset)`: the end of the last inherited event in the parent's own data, plus
//! the fork step and the statistics of the inherited prefix. Nothing else is copied. A header is written
//! once, atomically (temp file, fsync, rename, directory fsync), and never changed.
//!
//! Layout: `magic[8] | format u16 | reserved u16 | body_len u32 | body | crc u32` where the CRC covers every
//! byte before it and the body is the fixed-int little-endian encoding given in docs/FORMAT.md.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::{crc, is_readable_version, Le, FORMAT_VERSION, HEAD_MAGIC, MAX_HEAD_BODY_LEN};
use crate::stats::Stats;

/// Where a version's inherited events end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub struct BasePointer {
    /// The run the events are inherited from (the same run for a rewind).
    pub run_id: String,
    /// Its version.
    pub version: u32,
    /// Segment of the end of the last inherited event.
    pub segment: u32,
    /// Byte offset, in that segment, just past the last inherited event.
    pub offset: u64,
    /// The fork or rewind step: every inherited event has step <= this.
    pub step: u64,
    /// Statistics of the whole inherited prefix (ancestors included).
    pub inherited: Stats,
}

/// The logical fork parent shown by lineage (kept across rewinds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub struct ForkParent {
    /// Parent run id.
    pub run_id: String,
    /// Parent version forked from.
    pub version: u32,
    /// Fork step.
    pub step: u64,
}

/// The contents of `vK.head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
pub struct VersionHeader {
    /// Run id.
    pub run_id: String,
    /// Version number K.
    pub version: u32,
    /// Random per-version number seeding segment salts and key-table CRCs.
    pub nonce: u64,
    /// Creation time, microseconds since the Unix epoch.
    pub created_us: i64,
    /// Where inherited events come from (`None` for a root run's v0).
    pub base: Option<BasePointer>,
    /// The fork parent (`None` for a root run, kept by rewinds).
    pub fork_parent: Option<ForkParent>,
    /// The step this version was rewound to (`None` unless made by a rewind).
    pub rewind_step: Option<u64>,
}

fn body_config() -> impl bincode::config::Config {
    bincode::config::legacy()
}

impl VersionHeader {
    /// Encodes the whole file.
    #[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
    pub fn encode(&self) -> Vec<u8> {
        let body = bincode::serde::encode_to_vec(self, body_config()).unwrap_or_default();
        let mut out = Vec::with_capacity(20 + body.len());
        out.extend_from_slice(&HEAD_MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        let c = crc(&[&out]);
        out.extend_from_slice(&c.to_le_bytes());
        out
    }

    /// Decodes and checks a whole file.
    #[cfg_attr(not(feature = "fuzz"), allow(unreachable_pub))] // in `internals`
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<VersionHeader> {
        let mut r = Le::new(bytes);
        let short = || Error::corrupt(path, 0, "version header is truncated");
        if r.bytes8().ok_or_else(short)? != HEAD_MAGIC {
            return Err(Error::corrupt(path, 0, "bad magic: not a forklog version header"));
        }
        let format = r.u16().ok_or_else(short)?;
        let _reserved = r.u16().ok_or_else(short)?;
        let body_len = r.u32().ok_or_else(short)?;
        if body_len > MAX_HEAD_BODY_LEN {
            return Err(Error::corrupt(path, 12, "version header body length is implausible"));
        }
        let end = 16 + body_len as usize;
        if bytes.len() != end + 4 {
            return Err(Error::corrupt(path, 12, "version header length does not match its body length"));
        }
        let stored = u32::from_le_bytes([bytes[end], bytes[end + 1], bytes[end + 2], bytes[end + 3]]);
        if crc(&[&bytes[..end]]) != stored {
            return Err(Error::corrupt(path, 0, "version header checksum mismatch"));
        }
        if !is_readable_version(format) {
            return Err(Error::UnsupportedFormat {
                file: path.to_path_buf(),
                found: format,
                supported: FORMAT_VERSION,
            });
        }
        let (h, used): (VersionHeader, usize) = bincode::serde::decode_from_slice(
            &bytes[16..end],
            bincode::config::legacy().with_limit::<{ MAX_HEAD_BODY_LEN as usize }>(),
        )
        .map_err(|e| Error::corrupt(path, 16, format!("version header body: {e}")))?;
        if used != body_len as usize {
            return Err(Error::corrupt(path, 16, "trailing bytes in version header body"));
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_flips() {
        let h = VersionHeader {
            run_id: "child".into(),
            version: 2,
            nonce: 42,
            created_us: 1_700_000_000_000_000,
            base: Some(BasePointer {
                run_id: "child".into(),
                version: 1,
                segment: 3,
                offset: 4096,
                step: 77,
                inherited: Stats {
                    rows: 70,
                    events: 75,
                    first_log: Some(0),
                    last_log: Some(77),
                    last_event: Some(77),
                    last_is_finish: false,
                },
            }),
            fork_parent: Some(ForkParent { run_id: "base".into(), version: 0, step: 10 }),
            rewind_step: Some(77),
        };
        let bytes = h.encode();
        let p = Path::new("v2.head");
        assert_eq!(VersionHeader::decode(p, &bytes).unwrap(), h);
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(VersionHeader::decode(p, &b).is_err(), "bit {bit}");
        }
        for cut in 0..bytes.len() {
            assert!(VersionHeader::decode(p, &bytes[..cut]).is_err());
        }
    }
}
