//! The active segment a writer appends to: recovery builds it from what is on disk, the writer extends it.

use std::sync::Arc;

use crate::format;
use crate::stats::Stats;
use crate::vfs::VfsFile;

/// The segment being appended to.
pub(crate) struct ActiveSeg {
    pub seq: u32,
    /// Shared so a sync can fsync it without holding the writer's lock.
    pub file: Arc<dyn VfsFile>,
    pub len: u64,
    pub salt: u64,
    pub idx: Box<dyn VfsFile>,
    pub idx_len: u64,
    pub last_indexed: Option<u64>,
    /// How much of the segment is known durable (fsynced); recorded in every frame's prefix.
    pub synced: u64,
    /// Statistics of the segment's own events written so far.
    pub inseg: Stats,
    /// Step-index entries of frames not yet fsynced: an entry is written only once its frame is durable, so
    /// every entry in an index vouches for the bytes before it (docs/FORMAT.md, Step index).
    pub pending_idx: Vec<u8>,
    /// The frame offset of each entry in `pending_idx`.
    pub pending_offs: Vec<u64>,
    /// The segment's zone map (issue 12; `None` when it could not be kept: readers then use the frames).
    pub zone: Option<crate::zonemap::ZoneLog>,
    /// The segment's format version: a segment an older build created (resumed here) takes no event kind a
    /// later version added; the writer starts a new segment before writing one.
    pub format: u16,
}

impl ActiveSeg {
    /// Writes the pending index entries: call only after the segment's data was fsynced.
    pub(crate) fn write_pending_index(&mut self) -> std::io::Result<()> {
        self.write_pending_index_below(u64::MAX)
    }

    /// Writes the pending index entries of frames below `synced`, which was fsynced.
    pub(crate) fn write_pending_index_below(&mut self, synced: u64) -> std::io::Result<()> {
        let n = self.pending_offs.iter().take_while(|o| **o < synced).count();
        if n == 0 {
            return Ok(());
        }
        let bytes = n * format::INDEX_ENTRY_LEN;
        self.idx.write_all_at(&self.pending_idx[..bytes], self.idx_len)?;
        self.idx_len += bytes as u64;
        self.pending_idx.drain(..bytes);
        self.pending_offs.drain(..n);
        Ok(())
    }

    /// Writes the pending zone-map records (same rule as the index: only after the segment's fsync); `seal`
    /// adds the final snapshot and fsyncs the zone map.
    pub(crate) fn write_pending_zone(&mut self, seal: bool) -> std::io::Result<()> {
        match &mut self.zone {
            Some(z) if seal => z.seal(),
            Some(z) => z.write_pending(false),
            None => Ok(()),
        }
    }
}
