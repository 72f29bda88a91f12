//! Run (version) header parsing: `VersionHeader::decode` over arbitrary bytes.
//!
//! Input: one flag byte, then the file. With flag bit 0 set the harness repairs the body length field and
//! the CRC, so mutations reach the bincode body decoder instead of stopping at the checksum. A header
//! that decodes must re-encode to the same body bytes and decode again to the same value.
#![no_main]

use std::path::Path;

use forklog::internals::VersionHeader;
use forklog_fuzz::crc;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    if flags & 1 != 0 && bytes.len() >= 20 {
        let body_len = (bytes.len() - 20) as u32;
        bytes[12..16].copy_from_slice(&body_len.to_le_bytes());
        let end = bytes.len() - 4;
        let c = crc(&[&bytes[..end]]);
        bytes[end..].copy_from_slice(&c.to_le_bytes());
    }
    let path = Path::new("v0.head");
    match VersionHeader::decode(path, &bytes) {
        Ok(h) => {
            let enc = h.encode();
            assert_eq!(enc.len(), bytes.len(), "re-encoded header has another length");
            // Magic and body are canonical; only the reserved field (and so the CRC) may differ, and the
            // format version: every readable version decodes, and encoding writes this build's.
            assert_eq!(enc[..8], bytes[..8]);
            assert_eq!(enc[12..enc.len() - 4], bytes[12..bytes.len() - 4], "body does not round-trip");
            let again = VersionHeader::decode(path, &enc).expect("a re-encoded header must decode");
            assert_eq!(again, h);
        }
        Err(e) => {
            assert!(e.is_corruption(), "unexpected error kind: {e:?}");
            let _ = e.to_string();
        }
    }
});
