//! TFRecord framing (TensorBoard event files): each record is `u64` LE length, `u32` LE masked CRC32C of
//! the 8 length bytes, the data, `u32` LE masked CRC32C of the data. The mask is
//! `((c >> 15) | (c << 17)) + 0xa282ead8` (wrapping). Both checksums are checked; a truncated record or a
//! mismatch is an error naming the record's byte offset.

/// Masks a CRC32C the TFRecord way.
pub fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The masked CRC32C of `data`.
pub fn masked_crc(data: &[u8]) -> u32 {
    mask(crc32c::crc32c(data))
}

/// Iterates over the records of a TFRecord file: `Ok((offset, data))` per record, or one
/// `Err((offset, reason))` and then nothing.
pub struct Records<'a> {
    data: &'a [u8],
    pos: usize,
    failed: bool,
}

/// Reads the records of `data` (see [`Records`]).
pub fn records(data: &[u8]) -> Records<'_> {
    Records { data, pos: 0, failed: false }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(u64, &'a [u8]), (u64, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let start = self.pos;
        let rest = &self.data[start..];
        let fail = |this: &mut Self, why: String| {
            this.failed = true;
            Some(Err((start as u64, why)))
        };
        if rest.len() < 12 {
            return fail(self, format!("truncated record header ({} of 12 bytes)", rest.len()));
        }
        let len_bytes = &rest[..8];
        let stored = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let got = masked_crc(len_bytes);
        if stored != got {
            return fail(self, format!("length checksum mismatch: stored {stored:#010x}, computed {got:#010x}"));
        }
        let n = u64::from_le_bytes([
            len_bytes[0],
            len_bytes[1],
            len_bytes[2],
            len_bytes[3],
            len_bytes[4],
            len_bytes[5],
            len_bytes[6],
            len_bytes[7],
        ]);
        let avail = (rest.len() - 12) as u64;
        if n.saturating_add(4) > avail {
            return fail(self, format!("truncated record: length {n}, {avail} bytes left"));
        }
        let n = n as usize;
        let body = &rest[12..12 + n];
        let stored = u32::from_le_bytes([rest[12 + n], rest[13 + n], rest[14 + n], rest[15 + n]]);
        let got = masked_crc(body);
        if stored != got {
            return fail(self, format!("data checksum mismatch: stored {stored:#010x}, computed {got:#010x}"));
        }
        self.pos = start + 16 + n;
        Some(Ok((start as u64, body)))
    }
}

/// Frames `data` as one TFRecord record (what the TensorBoard exporter writes).
pub fn write_record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_mask_and_round_trip() {
        // CRC32C("123456789") = 0xE3069283 (the standard check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let mut buf = Vec::new();
        write_record(&mut buf, b"hello");
        write_record(&mut buf, b"");
        let got: Vec<_> = records(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(got, vec![(0, &b"hello"[..]), (21, &b""[..])]);
        for cut in 1..buf.len() {
            if cut == 21 {
                continue;
            }
            let last = records(&buf[..cut]).last().unwrap();
            assert!(last.is_err(), "cut at {cut}");
        }
        let mut bad = buf.clone();
        bad[14] ^= 0x20;
        let err = records(&bad).find_map(Result::err).unwrap();
        assert_eq!(err.0, 0);
    }
}
