//! Shared pieces of forklog's fuzz targets: an in-memory file system, real template stores built through
//! the public API, and helpers that turn fuzz bytes into CRC-valid frames and index entries (so mutations
//! reach the decoders behind the checksums instead of stopping at them).

pub mod memfs;
pub mod ops;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use forklog::internals::{frame_header, IndexEntry, SegmentHeader, Stats, VersionHeader};
use forklog::{metrics, Options, Store, SyncPolicy, Value};

use crate::memfs::{MemFs, Snapshot};

/// Where template stores live inside a [`MemFs`].
pub const ROOT: &str = "/s";

/// Sizes from docs/FORMAT.md.
pub const SEG_HEADER_LEN: usize = 80;
/// Frame header: `len u32 | header_crc u32 | payload_crc u32`.
pub const FRAME_HEADER_LEN: usize = 12;
/// Index and key-table file header.
pub const SMALL_HEADER_LEN: usize = 32;
/// One index entry.
pub const INDEX_ENTRY_LEN: usize = 64;

/// CRC-32 (IEEE) over the concatenation of `parts`, as the format uses it.
pub fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// Rewrites the trailing CRC of a fixed-size header (`len` bytes at the start of `bytes`), if long enough.
pub fn reseal_fixed_header(bytes: &mut [u8], len: usize) {
    if bytes.len() >= len {
        let c = crc(&[&bytes[..len - 4]]);
        bytes[len - 4..len].copy_from_slice(&c.to_le_bytes());
    }
}

/// Options used for fuzzing: the given file system, no fsync, small segments and buffers.
pub fn fuzz_options(fs: &MemFs, segment_size: u64, buffer_size: usize) -> Options {
    Options::default()
        .vfs(Arc::new(fs.clone()))
        .sync(SyncPolicy::Never)
        .segment_size(segment_size)
        .buffer_size(buffer_size)
}

/// A real store, built through the public API, and the files of run `r`'s current version.
#[derive(Debug, Clone)]
pub struct Template {
    /// Short name, used for corpus file names.
    pub name: &'static str,
    /// Every file of the store.
    pub snap: Snapshot,
    /// Options the store was written with.
    pub segment_size: u64,
    /// Current version of run `r`.
    pub version: u32,
    /// Its nonce (from `vK.head`).
    pub nonce: u64,
    /// Sequence number of its active (last) segment.
    pub seq: u32,
    /// Salt of that segment.
    pub salt: u64,
    /// `vK-SEQ.seg`
    pub seg: PathBuf,
    /// `vK-SEQ.idx`
    pub idx: PathBuf,
    /// `vK.keys`
    pub keys: PathBuf,
    /// `vK.head`
    pub head: PathBuf,
    /// `v0-0.seg` of run `r`: sealed in `rolled` (an older segment) and `rewound` (an archived version),
    /// the active segment otherwise.
    pub first_seg: PathBuf,
    /// `v0-0.idx` of run `r`.
    pub first_idx: PathBuf,
    /// Salt of `v0-0.seg`.
    pub first_salt: u64,
}

impl Template {
    /// The bytes of one of the template's files.
    pub fn file(&self, path: &Path) -> Vec<u8> {
        self.snap.files.get(path).cloned().unwrap_or_default()
    }
}

fn row(i: u64) -> forklog::Metrics {
    let mut m = metrics! { "loss" => 1.0 / (i as f64 + 1.0), "epoch" => (i / 5) as i64 };
    if i.is_multiple_of(4) {
        m.insert("note".into(), Value::Str(format!("row {i}")));
    }
    if i % 7 == 3 {
        m.insert(
            "hist".into(),
            Value::List(vec![Value::Int(i as i64), Value::Null, Value::Bytes(vec![1, 2, 3]), Value::Bool(true)]),
        );
    }
    m
}

fn log_rows(w: &mut forklog::RunWriter, n: u64, blob: usize) {
    for _ in 0..n {
        let s = w.next_step();
        let mut m = row(s);
        if blob > 0 {
            // Bulk that fills segments and index intervals with few events (cheap to replay per input).
            m.insert("blob".into(), Value::Bytes(vec![s as u8; blob]));
        }
        w.log(m).expect("template log");
    }
}

/// Builds the template stores once: `single` (one run, one segment), `forked` (plus a fork pinning the
/// run's active segment), `rolled` (several segments with step-index entries), `rewound` (a second version
/// inheriting from the first).
pub fn templates() -> &'static [Template] {
    static T: OnceLock<Vec<Template>> = OnceLock::new();
    T.get_or_init(|| {
        let mut out = Vec::new();
        for name in ["single", "forked", "rolled", "rewound"] {
            let fs = MemFs::new();
            let (seg_size, buf) = if name == "rolled" { (16384, 256) } else { (1 << 20, 96) };
            let store = Store::open_with(ROOT, fuzz_options(&fs, seg_size, buf)).expect("template store");
            let mut w = store.create_run("r").expect("create");
            w.set_config(metrics! { "lr" => 0.1, "model" => "mlp" }).expect("config");
            // `rolled`: 40 rows of ~700 bytes in 16 KiB segments: 2 segments, several index entries each.
            let (n, blob) = if name == "rolled" { (40, 640) } else { (24, 0) };
            log_rows(&mut w, n, blob);
            w.log_system(metrics! { "gpu" => 0.5 }).expect("system");
            w.set_summary(metrics! { "best" => 0.01 }).expect("summary");
            drop(w);
            match name {
                "forked" => {
                    let mut f = store.fork("f", &"r?_step=9".parse().expect("spec")).expect("fork");
                    log_rows(&mut f, 3, 0);
                    f.finish(0).expect("finish");
                }
                "rewound" => {
                    let mut w = store.rewind("r", 7).expect("rewind");
                    log_rows(&mut w, 5, 0);
                    w.set_config(metrics! { "lr" => 0.05 }).expect("config");
                    drop(w);
                }
                _ => {}
            }
            drop(store);
            out.push(describe(name, &fs, seg_size));
        }
        out
    })
}

fn describe(name: &'static str, fs: &MemFs, segment_size: u64) -> Template {
    let dir = Path::new(ROOT).join("runs").join("r");
    let names: Vec<String> = fs
        .files()
        .into_iter()
        .filter(|p| p.parent() == Some(&dir))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let version = names
        .iter()
        .filter_map(|n| n.strip_prefix('v')?.strip_suffix(".head")?.parse::<u32>().ok())
        .max()
        .expect("a header");
    let seq = names
        .iter()
        .filter_map(|n| {
            let (v, s) = n.strip_prefix('v')?.strip_suffix(".seg")?.split_once('-')?;
            (v.parse::<u32>().ok()? == version).then(|| s.parse::<u32>().ok()).flatten()
        })
        .max()
        .expect("a segment");
    let head = dir.join(format!("v{version}.head"));
    let h = VersionHeader::decode(&head, &fs.read(&head).expect("head")).expect("valid head");
    let seg = dir.join(format!("v{version}-{seq}.seg"));
    let sh = SegmentHeader::decode(&seg, &fs.read(&seg).expect("seg")[..SEG_HEADER_LEN], version, seq, h.nonce)
        .expect("valid segment header");
    let first_seg = dir.join("v0-0.seg");
    let first = fs.read(&first_seg).expect("v0-0.seg");
    let first_salt = u64::from_le_bytes(first[24..32].try_into().expect("8 bytes"));
    Template {
        name,
        first_idx: dir.join("v0-0.idx"),
        first_seg,
        first_salt,
        snap: fs.snapshot(),
        segment_size,
        version,
        nonce: h.nonce,
        seq,
        salt: sh.salt,
        idx: dir.join(format!("v{version}-{seq}.idx")),
        keys: dir.join(format!("v{version}.keys")),
        seg,
        head,
    }
}

/// Appends a genuine frame (valid header and payload CRCs for its offset) holding `payload` to `seg`.
pub fn push_frame(seg: &mut Vec<u8>, salt: u64, payload: &[u8]) {
    let h = frame_header(salt, seg.len() as u64, payload);
    seg.extend_from_slice(&h);
    seg.extend_from_slice(payload);
}

/// Appends to `seg` what `data` describes, as a sequence of chunks: a control byte `c`; if `c >= 0x80`,
/// `c & 0x7f` raw bytes follow (garbage, no CRC); otherwise a `u16` length `n` and `n` payload bytes that
/// become a genuine frame. Ends at the end of `data` (a short last chunk takes what is left).
pub fn push_crafted(seg: &mut Vec<u8>, salt: u64, data: &[u8]) {
    let mut i = 0;
    while i < data.len() {
        let c = data[i];
        i += 1;
        if c >= 0x80 {
            let n = usize::from(c & 0x7f).min(data.len() - i);
            seg.extend_from_slice(&data[i..i + n]);
            i += n;
        } else {
            let lo = data.get(i).copied().unwrap_or(0);
            let hi = data.get(i + 1).copied().unwrap_or(0);
            i = (i + 2).min(data.len());
            let n = usize::from(u16::from_le_bytes([lo, hi])).min(data.len() - i);
            if n > 0 {
                push_frame(seg, salt, &data[i..i + n]);
            }
            i += n;
        }
    }
}

/// The inverse of [`push_crafted`] for genuine segments: the chunk encoding of every frame payload after
/// the segment header (for seeding the corpus).
pub fn crafted_from_segment(seg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads(seg) {
        let n = p.len().min(usize::from(u16::MAX));
        out.push(0);
        out.extend_from_slice(&(n as u16).to_le_bytes());
        out.extend_from_slice(&p[..n]);
    }
    out
}

/// Frame payloads of a genuine segment, by trusting the length fields (corpus generation only).
pub fn payloads(seg: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = SEG_HEADER_LEN;
    while pos + FRAME_HEADER_LEN <= seg.len() {
        let len = u32::from_le_bytes([seg[pos], seg[pos + 1], seg[pos + 2], seg[pos + 3]]) as usize;
        let start = pos + FRAME_HEADER_LEN;
        let Some(p) = seg.get(start..start + len) else { break };
        out.push(p);
        pos = start + len;
    }
    out
}

/// Appends key-table records described by `data` to `out` (the records after the 32-byte header): a control
/// byte `c`; if `c >= 0x80`, `c & 0x7f` raw bytes follow (garbage); otherwise the next `c` bytes are a key,
/// written as a genuine record (CRC seeded with `nonce` and the key's index) for the next key id.
pub fn push_crafted_keys(out: &mut Vec<u8>, nonce: u64, data: &[u8]) {
    let (mut i, mut index) = (0usize, 0u32);
    while i < data.len() {
        let c = data[i];
        i += 1;
        let n = usize::from(c & 0x7f).min(data.len() - i);
        let bytes = &data[i..i + n];
        i += n;
        if c >= 0x80 {
            out.extend_from_slice(bytes);
        } else {
            let len = (n as u32).to_le_bytes();
            out.extend_from_slice(&len);
            out.extend_from_slice(&crc(&[&nonce.to_le_bytes(), &index.to_le_bytes(), &len, bytes]).to_le_bytes());
            out.extend_from_slice(bytes);
            index += 1;
        }
    }
}

/// The inverse of [`push_crafted_keys`] for a genuine key table (corpus generation only).
pub fn crafted_from_keys(keys: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = SMALL_HEADER_LEN;
    while pos + 8 <= keys.len() {
        let len = u32::from_le_bytes([keys[pos], keys[pos + 1], keys[pos + 2], keys[pos + 3]]) as usize;
        let Some(k) = keys.get(pos + 8..pos + 8 + len) else { break };
        if len < 0x80 {
            out.push(len as u8);
            out.extend_from_slice(k);
        }
        pos += 8 + len;
    }
    out
}

/// Builds index entries from `data`: every 60 bytes are an entry's fields (7 little-endian `u64` and a
/// `u32` of flags), sealed with a valid CRC for `salt`; a short tail is appended raw (a torn entry).
pub fn crafted_index_entries(salt: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunks = data.chunks_exact(60);
    for c in &mut chunks {
        let f = |i: usize| u64::from_le_bytes(c[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let opt = |x: u64| (x != u64::MAX).then_some(x);
        let flags = u32::from_le_bytes([c[56], c[57], c[58], c[59]]);
        let e = IndexEntry {
            first_step: f(0),
            offset: f(1),
            before: Stats {
                rows: f(2),
                events: f(3),
                first_log: opt(f(4)),
                last_log: opt(f(5)),
                last_event: opt(f(6)),
                last_is_finish: flags & 1 != 0,
            },
        };
        out.extend_from_slice(&e.encode(salt));
    }
    out.extend_from_slice(chunks.remainder());
    out
}

/// The raw 60-byte field form of every entry of a genuine index file (corpus generation only).
pub fn index_fields(idx: &[u8]) -> Vec<u8> {
    idx.get(SMALL_HEADER_LEN..)
        .unwrap_or(&[])
        .chunks_exact(INDEX_ENTRY_LEN)
        .flat_map(|e| e[..60].iter().copied())
        .collect()
}
