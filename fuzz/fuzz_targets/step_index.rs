//! Step-index parsing: `parse_index` over arbitrary bytes.
//!
//! Input: `flags u8 | version u32 | seq u32 | salt u64 | data`. Flag bit 0: parse as sealed. Flag bit 1:
//! the harness builds a valid index header for (version, seq, salt) and turns `data` into entries with
//! valid CRCs (60 bytes of fields each; a short tail stays raw, like a torn entry), so mutations reach the
//! ordering and torn-tail logic. Otherwise `data` is the whole file. A sealed index must be complete; an
//! active one yields its valid prefix.
#![no_main]

use std::path::Path;

use forklog::internals::{close_record, parse_index, IndexEntry};
use forklog_fuzz::{crafted_index_entries, reseal_fixed_header, INDEX_ENTRY_LEN, SMALL_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fn index_header(version: u32, seq: u32, salt: u64) -> Vec<u8> {
    let mut h = vec![0u8; SMALL_HEADER_LEN];
    h[..8].copy_from_slice(b"FLKIDX\0\0");
    h[8..10].copy_from_slice(&1u16.to_le_bytes());
    h[12..16].copy_from_slice(&seq.to_le_bytes());
    h[16..20].copy_from_slice(&version.to_le_bytes());
    h[20..28].copy_from_slice(&salt.to_le_bytes());
    reseal_fixed_header(&mut h, SMALL_HEADER_LEN);
    h
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let flags = data[0];
    let version = u32::from_le_bytes(data[1..5].try_into().unwrap());
    let seq = u32::from_le_bytes(data[5..9].try_into().unwrap());
    let salt = u64::from_le_bytes(data[9..17].try_into().unwrap());
    let rest = &data[17..];
    let sealed = flags & 1 != 0;
    let bytes = if flags & 2 != 0 {
        let mut b = index_header(version, seq, salt);
        b.extend_from_slice(&crafted_index_entries(salt, rest));
        b
    } else {
        rest.to_vec()
    };
    let path = Path::new("v0-0.idx");
    match parse_index(path, &bytes, version, seq, salt, sealed) {
        Ok(entries) => {
            // A valid close record after the last entry is not an entry (docs/FORMAT.md, Step index).
            let closed = usize::from(close_record(salt, &bytes).is_some());
            let body = bytes.len() - SMALL_HEADER_LEN - closed * INDEX_ENTRY_LEN;
            assert!(entries.len() <= body / INDEX_ENTRY_LEN);
            if sealed {
                assert_eq!(body % INDEX_ENTRY_LEN, 0, "sealed index with a partial entry accepted");
                assert_eq!(entries.len(), body / INDEX_ENTRY_LEN, "sealed index lost entries");
            } else if entries.len() < body / INDEX_ENTRY_LEN {
                // An active index keeps its valid prefix: it stops at the first entry that fails its CRC.
                let at = SMALL_HEADER_LEN + entries.len() * INDEX_ENTRY_LEN;
                assert_eq!(IndexEntry::decode(salt, &bytes[at..at + INDEX_ENTRY_LEN]), None, "a valid entry was cut");
            }
            for (i, e) in entries.iter().enumerate() {
                // The seven u64 fields are stored as is; the flags word may gain presence bits (entries written
                // before those bits existed read as before), so compare it through a decode.
                let at = SMALL_HEADER_LEN + i * INDEX_ENTRY_LEN;
                let enc = e.encode(salt);
                assert_eq!(enc[..56], bytes[at..at + 56], "entry {i} does not round-trip");
                assert_eq!(IndexEntry::decode(salt, &enc), Some(*e), "entry {i} does not round-trip");
            }
            for w in entries.windows(2) {
                assert!(w[0].offset < w[1].offset && w[0].first_step <= w[1].first_step, "entries out of order");
            }
        }
        Err(e) => {
            assert!(e.is_corruption(), "unexpected error kind: {e:?}");
            let _ = e.to_string();
        }
    }
});
