//! Writes the seed corpus of every fuzz target from real stores.
//!
//! `cargo run --release --example gen_corpus [-- OUT_DIR]` (in `fuzz/`; OUT_DIR defaults to `fuzz/corpus`).
//! The template stores (`forklog_fuzz::templates`) are built through the public API; their headers,
//! segments, frame payloads, step indexes and key tables become seeds in the input layout of each target.
//! Seeds are named `seed-*` and rewritten on every run; files libFuzzer adds are left alone.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use forklog::Store;
use forklog_fuzz::memfs::MemFs;
use forklog_fuzz::ops::{run, Input};
use forklog_fuzz::{
    crafted_from_keys, crafted_from_segment, fuzz_options, index_fields, payloads, templates, ROOT, SMALL_HEADER_LEN,
};

struct Out {
    dir: PathBuf,
    total: usize,
    count: usize,
}

impl Out {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.dir.join(target);
        fs::create_dir_all(&dir).expect("creating corpus directory");
        fs::write(dir.join(format!("seed-{name}")), bytes).expect("writing seed");
        self.total += bytes.len();
        self.count += 1;
    }
}

/// `vV-S.seg` -> (V, S).
fn seg_numbers(p: &Path) -> Option<(u32, u32)> {
    let n = p.file_name()?.to_str()?;
    let (v, s) = n.strip_prefix('v')?.strip_suffix(".seg")?.split_once('-')?;
    Some((v.parse().ok()?, s.parse().ok()?))
}

/// A few spread-out items: first, last and some in between.
fn spread<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    if items.len() <= n {
        return items.to_vec();
    }
    (0..n).map(|i| items[i * (items.len() - 1) / (n - 1)].clone()).collect()
}

/// SplitMix64, for reproducible random candidates.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// What kinds of outcome a trace line shows (operation name plus ok/error kind).
fn outcomes(trace: &[String]) -> BTreeSet<String> {
    trace
        .iter()
        .map(|l| {
            let op = l.split(['(', ' ']).next().unwrap_or("").to_string();
            let res = l.rsplit("-> ").next().unwrap_or("");
            let kind = if res.contains("Err(") {
                res.split("Err(").nth(1).and_then(|r| r.split([' ', '{', '(']).next()).unwrap_or("err").to_string()
            } else if res.starts_with("no open writer") {
                "noop".to_string()
            } else {
                "ok".to_string()
            };
            format!("{op}:{kind}")
        })
        .collect()
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let mut out = Out { dir, total: 0, count: 0 };
    let ts = templates();

    for (ti, t) in ts.iter().enumerate() {
        let name = t.name;
        let seg = t.file(&t.seg);
        let idx = t.file(&t.idx);
        let keys = t.file(&t.keys);
        let segs = t
            .snap
            .files
            .keys()
            .filter(|p| p.parent() == t.seg.parent() && seg_numbers(p).is_some_and(|(v, _)| v == t.version))
            .count();
        println!(
            "template {name}: r@v{} has {segs} segment(s); active v{}-{}: {} bytes, {} frames, {} index entries",
            t.version,
            t.version,
            t.seq,
            seg.len(),
            payloads(&seg).len(),
            idx.len().saturating_sub(SMALL_HEADER_LEN) / 64
        );

        // record_decode: frame payloads of every segment of the store.
        let mut all: Vec<Vec<u8>> = Vec::new();
        for (p, bytes) in &t.snap.files {
            if seg_numbers(p).is_some() {
                all.extend(payloads(bytes).into_iter().map(<[u8]>::to_vec));
            }
        }
        for (i, p) in spread(&all, 4).iter().enumerate() {
            out.put("record_decode", &format!("{name}-{i}"), p);
        }

        // run_header: every version header, as is (flag 0) and with repairs on (flag 1).
        for (p, bytes) in &t.snap.files {
            if p.extension().is_some_and(|e| e == "head") {
                let run = p.parent().and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or("x");
                let stem = p.file_stem().and_then(|n| n.to_str()).unwrap_or("v");
                for flag in [0u8, 1] {
                    out.put("run_header", &format!("{name}-{run}-{stem}-{flag}"), &[&[flag][..], bytes].concat());
                }
            }
        }

        // step_index: every index, raw (flags 0/1) and as crafted entries (flags 2/3).
        for (p, bytes) in &t.snap.files {
            if p.extension().is_none_or(|e| e != "idx") {
                continue;
            }
            let segp = p.with_extension("seg");
            let (Some((v, s)), Some(sb)) = (seg_numbers(&segp), t.snap.files.get(&segp)) else { continue };
            let salt = &sb[24..32];
            let run = p.parent().and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or("x");
            let head = |flags: u8| [&[flags][..], &v.to_le_bytes(), &s.to_le_bytes(), salt].concat();
            out.put("step_index", &format!("{name}-{run}-v{v}-{s}-raw"), &[head(1), bytes.clone()].concat());
            out.put("step_index", &format!("{name}-{run}-v{v}-{s}-crafted"), &[head(2), index_fields(bytes)].concat());
        }

        // segment_recovery: every mode, starting from the real files.
        let t8 = ti as u8;
        let seed = |mode: u8, data: &[u8]| [&[t8, mode][..], data].concat();
        out.put("segment_recovery", &format!("{name}-0-raw"), &seed(0, &seg));
        out.put("segment_recovery", &format!("{name}-1-body"), &seed(1, &seg[80..]));
        out.put("segment_recovery", &format!("{name}-2-frames"), &seed(2, &crafted_from_segment(&seg)));
        let cut = (seg.len() as u16).saturating_sub(5).to_le_bytes();
        out.put("segment_recovery", &format!("{name}-3-torn"), &seed(3, &[&cut[..], &[100, 0, 0x10]].concat()));
        let first = payloads(&seg).first().map(|p| p.to_vec()).unwrap_or_default();
        let one = [&[0u8][..], &(first.len() as u16).to_le_bytes(), &first, &[0x85, 1, 2, 3, 4, 5]].concat();
        out.put("segment_recovery", &format!("{name}-4-tail"), &seed(4, &one));
        out.put("segment_recovery", &format!("{name}-5-index"), &seed(5, &index_fields(&idx)));
        out.put("segment_recovery", &format!("{name}-6-keys"), &seed(6, &crafted_from_keys(&keys)));
        out.put("segment_recovery", &format!("{name}-7-rawindex"), &seed(7, &idx));
        if t.first_seg != t.seg {
            // Mode bit 3: r's first segment, sealed in these templates.
            let first = t.file(&t.first_seg);
            out.put("segment_recovery", &format!("{name}-10-sealed-frames"), &seed(10, &crafted_from_segment(&first)));
            let fidx = t.file(&t.first_idx);
            out.put("segment_recovery", &format!("{name}-13-sealed-index"), &seed(13, &index_fields(&fidx)));
        }
    }

    // fork_point: the run refs of the template stores, as ids, ID@vK and fork specs, plus edge cases.
    let mut specs: BTreeSet<String> = BTreeSet::new();
    for t in ts {
        let fs = MemFs::from_snapshot(&t.snap);
        let store = Store::open_with(ROOT, fuzz_options(&fs, t.segment_size, 96)).expect("template store");
        for info in store.runs_all().expect("runs_all") {
            specs.insert(info.id.clone());
            specs.insert(format!("{}?_step={}", info.run_ref(), info.last_step.unwrap_or(0)));
            if let Some(p) = &info.parent {
                specs.insert(format!("{p}?_step={}", info.fork_step.unwrap_or(0)));
            }
        }
    }
    specs.extend(
        ["a.b_c-9@v12?_step=18446744073709551615", "r?_step=007", "r@v0", "r@v01?_step=1", "r?_step=1&x=2", ".."]
            .map(String::from),
    );
    for (i, s) in specs.iter().enumerate() {
        out.put("fork_point", &format!("{i}"), s.as_bytes());
    }

    // ops: random inputs; keep a few that together cover the most kinds of outcome (greedy set cover).
    let mut rng = Rng(0x5eed);
    let mut candidates: Vec<(Vec<u8>, BTreeSet<String>, usize)> = Vec::new();
    for _ in 0..4000 {
        let len = 256 + (rng.next() % 1536) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(&bytes)) else { continue };
        let trace = match run(&input) {
            Ok(t) => t,
            Err(e) => panic!("a corpus candidate already fails the ops target:\n{e}"),
        };
        let o = outcomes(&trace);
        candidates.push((bytes, o, trace.len()));
    }
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for kept in 0..10 {
        let best = candidates
            .iter()
            .enumerate()
            .max_by_key(|(_, (_, o, n))| (o.difference(&seen).count(), *n))
            .map(|(i, _)| i);
        let Some(i) = best else { break };
        let (bytes, o, n) = candidates.swap_remove(i);
        let new: BTreeSet<String> = o.difference(&seen).cloned().collect();
        if new.is_empty() {
            break;
        }
        println!("ops seed {kept}: {n} operations, new outcomes {new:?}");
        seen.extend(new);
        out.put("ops", &format!("{kept}"), &bytes);
    }
    println!("ops seeds cover {} kinds of outcome", seen.len());

    println!("wrote {} seeds, {} bytes, to {}", out.count, out.total, out.dir.display());
    assert!(out.total < 1 << 20, "the corpus must stay under 1 MB");
}
