//! Byte sources of the readers of segments and step indexes: a memory map, chunked positioned reads, or bytes in
//! memory. Below both readers in the module graph (`segment` uses `index` to find where its durable data ends).

use std::path::Path;

use crate::error::{Error, Result};
use crate::vfs::{MappedBytes, VfsFile};

/// Where a file's bytes come from: a memory map (sealed segments), positioned reads (the active one), or
/// memory (a writer's buffered frame).
pub(crate) enum Source {
    /// The whole file, mapped.
    Mapped(MappedBytes),
    /// Bytes held in memory, standing at offset `base` of the segment (nothing below it is readable).
    Memory {
        /// Offset of `bytes[0]`.
        base: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// An open file read in chunks; `len` is the length seen when it was opened.
    File {
        /// The file.
        file: Box<dyn VfsFile>,
        /// Its length when opened (the reader's snapshot).
        len: u64,
        /// A window of the file.
        chunk: Vec<u8>,
        /// File offset of `chunk[0]`.
        chunk_start: u64,
        /// How much to read at once.
        chunk_size: usize,
    },
}

/// Read size of the chunked source for segments.
pub(crate) const SEGMENT_CHUNK: usize = 256 << 10;

impl Source {
    /// A chunked source over `file` reading `chunk_size` bytes at a time.
    pub(crate) fn file(file: Box<dyn VfsFile>, path: &Path, chunk_size: usize) -> Result<Source> {
        let len = file.len().map_err(|e| Error::io("reading length of", path, e))?;
        Ok(Source::File { file, len, chunk: Vec::new(), chunk_start: 0, chunk_size })
    }

    /// Length of the bytes visible through this source.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Source::Mapped(m) => (**m).as_ref().len() as u64,
            Source::Memory { base, bytes } => base + bytes.len() as u64,
            Source::File { len, .. } => *len,
        }
    }

    /// `n` bytes at `off`, or `None` if they extend past the end.
    pub(crate) fn get(&mut self, path: &Path, off: u64, n: usize) -> Result<Option<&[u8]>> {
        let end = match off.checked_add(n as u64) {
            Some(e) if e <= self.len() => e,
            _ => return Ok(None),
        };
        match self {
            Source::Mapped(m) => Ok((**m).as_ref().get(off as usize..end as usize)),
            Source::Memory { base, bytes } => {
                Ok(off.checked_sub(*base).and_then(|s| bytes.get(s as usize..(end - *base) as usize)))
            }
            Source::File { file, len, chunk, chunk_start, chunk_size } => {
                let have = off >= *chunk_start && end <= *chunk_start + chunk.len() as u64;
                if !have {
                    // Start small (a lookup reads a header and a frame or two) and grow while a scan goes on.
                    let grow = if chunk.is_empty() { 4096 } else { (chunk.len() * 2).min(*chunk_size) };
                    let want = (n.max(grow) as u64).min(*len - off) as usize;
                    chunk.resize(want, 0);
                    match file.read_exact_at(chunk, off) {
                        Ok(()) => {}
                        // The file shrank since it was opened: a writer's recovery cut what it no longer holds
                        // (a torn tail, an index's close record). Those bytes are not there to read.
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            chunk.clear();
                            return Ok(None);
                        }
                        Err(e) => return Err(Error::io("reading segment", path, e)),
                    }
                    *chunk_start = off;
                }
                let s = (off - *chunk_start) as usize;
                Ok(chunk.get(s..s + n))
            }
        }
    }
}
