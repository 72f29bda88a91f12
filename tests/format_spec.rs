//! docs/FORMAT.md is the normative spec: this test builds a store byte by byte from the spec alone (its own
//! encoder, no forklog code, no bincode) and checks that forklog reads it exactly and `verify` finds it clean.
//! If the code and the spec drift apart, this test fails.

use std::fs;
use std::path::Path;

use forklog::{Event, Store, Value};

fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fixed header: magic, version 1, body at 10, zero padding, CRC in the last 4 bytes.
fn fixed(len: usize, magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[..8].copy_from_slice(magic);
    b[8..10].copy_from_slice(&1u16.to_le_bytes());
    b[10..10 + body.len()].copy_from_slice(body);
    let c = crc(&[&b[..len - 4]]);
    b[len - 4..].copy_from_slice(&c.to_le_bytes());
    b
}

fn varint(out: &mut Vec<u8>, v: u64) {
    if v < 251 {
        out.push(v as u8);
    } else if v <= u16::MAX as u64 {
        out.push(251);
        out.extend_from_slice(&(v as u16).to_le_bytes());
    } else if v <= u32::MAX as u64 {
        out.push(252);
        out.extend_from_slice(&(v as u32).to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn zigzag(out: &mut Vec<u8>, v: i64) {
    varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

#[test]
fn a_store_written_from_the_spec_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let run = root.join("runs").join("spec");
    fs::create_dir_all(&run).unwrap();
    let t0: i64 = 1_700_000_000_000_000;
    let mut body = vec![0u8; 6];
    body.extend_from_slice(&t0.to_le_bytes());
    fs::write(root.join("forklog.store"), fixed(32, b"FORKLOG\0", &body)).unwrap();

    // v0.head: root version, no base, no fork parent, no rewind.
    let nonce: u64 = 0x1234_5678_9abc_def0;
    let mut hb = Vec::new();
    string(&mut hb, "spec");
    hb.extend_from_slice(&0u32.to_le_bytes());
    hb.extend_from_slice(&nonce.to_le_bytes());
    hb.extend_from_slice(&t0.to_le_bytes());
    hb.extend_from_slice(&[0, 0, 0]); // base: none, fork_parent: none, rewind_step: none
    let mut head = b"FLKHEAD\0".to_vec();
    head.extend_from_slice(&1u16.to_le_bytes());
    head.extend_from_slice(&0u16.to_le_bytes());
    head.extend_from_slice(&(hb.len() as u32).to_le_bytes());
    head.extend_from_slice(&hb);
    let c = crc(&[&head]);
    head.extend_from_slice(&c.to_le_bytes());
    fs::write(run.join("v0.head"), head).unwrap();

    // v0.keys: "loss" = 0, "opt" = 1.
    let mut kb = vec![0u8; 2];
    kb.extend_from_slice(&0u32.to_le_bytes());
    kb.extend_from_slice(&0u32.to_le_bytes());
    kb.extend_from_slice(&nonce.to_le_bytes());
    let mut keys = fixed(32, b"FLKKEYS\0", &kb);
    for (i, k) in ["loss", "opt"].iter().enumerate() {
        keys.extend_from_slice(&(k.len() as u32).to_le_bytes());
        let c = crc(&[&nonce.to_le_bytes(), &(i as u32).to_le_bytes(), &(k.len() as u32).to_le_bytes(), k.as_bytes()]);
        keys.extend_from_slice(&c.to_le_bytes());
        keys.extend_from_slice(k.as_bytes());
    }
    fs::write(run.join("v0.keys"), keys).unwrap();

    // v0-0.seg: header, then one frame: Log@5 {loss: 0.5}, Config@5 {opt: "sgd"}, Log@300 {loss: NaN(bits)}.
    let salt = mix(nonce ^ mix(1));
    let none = u64::MAX;
    let mut sb = vec![0u8; 2];
    for v in [0u32, 0, 0] {
        sb.extend_from_slice(&v.to_le_bytes()); // seq, version, flags
    }
    sb.extend_from_slice(&salt.to_le_bytes());
    for v in [0u64, 0, none, none, none] {
        sb.extend_from_slice(&v.to_le_bytes());
    }
    let mut seg = fixed(80, b"FLKSEG\0\0", &sb);
    let nan_bits = 0x7ff8_0000_0000_00abu64;
    let mut p = Vec::new();
    varint(&mut p, 3);
    varint(&mut p, 5);
    zigzag(&mut p, t0);
    varint(&mut p, 80); // synced_len: only the header was durable when this frame was written
                        // Log: tag 0, dstep 0, dtime 0, 1 metric: key 0, Float(0.5)
    p.extend_from_slice(&[0, 0, 0, 1, 0, 3]);
    p.extend_from_slice(&0.5f64.to_bits().to_le_bytes());
    // Config: tag 1, dstep 0, 1 entry: key 1, Str("sgd")
    p.extend_from_slice(&[1, 0, 1, 1, 4, 3]);
    p.extend_from_slice(b"sgd");
    // Log: tag 0, dstep 295, dtime +1_500_000, key 0 Float(nan)
    p.push(0);
    varint(&mut p, 295);
    zigzag(&mut p, 1_500_000);
    p.extend_from_slice(&[1, 0, 3]);
    p.extend_from_slice(&nan_bits.to_le_bytes());
    let off = 80u64;
    let len = p.len() as u32;
    seg.extend_from_slice(&len.to_le_bytes());
    seg.extend_from_slice(&crc(&[&salt.to_le_bytes(), &off.to_le_bytes(), &len.to_le_bytes()]).to_le_bytes());
    seg.extend_from_slice(&crc(&[&salt.to_le_bytes(), &off.to_le_bytes(), &p]).to_le_bytes());
    seg.extend_from_slice(&p);
    fs::write(run.join("v0-0.seg"), seg).unwrap();

    // v0-0.idx: one entry for the first frame.
    let mut ib = vec![0u8; 2];
    ib.extend_from_slice(&0u32.to_le_bytes());
    ib.extend_from_slice(&0u32.to_le_bytes());
    ib.extend_from_slice(&salt.to_le_bytes());
    let mut idx = fixed(32, b"FLKIDX\0\0", &ib);
    let mut e = Vec::new();
    for v in [5u64, 80, 0, 0, none, none, none] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(&0u32.to_le_bytes());
    let c = crc(&[&salt.to_le_bytes(), &e]);
    e.extend_from_slice(&c.to_le_bytes());
    idx.extend_from_slice(&e);
    fs::write(run.join("v0-0.idx"), idx).unwrap();

    check(root, nan_bits, t0);
}

fn check(root: &Path, nan_bits: u64, t0: i64) {
    let store = Store::open(root).unwrap();
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let rows: Vec<_> = store.history("spec").unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.iter().map(|r| r.step).collect::<Vec<_>>(), [5, 300]);
    assert_eq!(rows[0].metrics["loss"], Value::Float(0.5));
    assert_eq!(rows[0].time, t0 as f64 / 1e6);
    assert_eq!(rows[1].time, (t0 + 1_500_000) as f64 / 1e6);
    match rows[1].metrics["loss"] {
        Value::Float(x) => assert_eq!(x.to_bits(), nan_bits),
        ref other => panic!("{other:?}"),
    }
    assert_eq!(store.config("spec").unwrap()["opt"], Value::Str("sgd".into()));
    let kinds: Vec<&str> = store.events("spec").unwrap().map(|e| e.unwrap().event.kind()).collect::<Vec<_>>();
    assert_eq!(kinds, ["log", "config", "log"]);
    let info = store.info("spec").unwrap();
    assert_eq!((info.rows, info.events, info.first_step, info.last_step), (2, 3, Some(5), Some(300)));
    // And forklog can append to it: the next step follows the spec-written history.
    let mut w = store.resume("spec").unwrap();
    assert_eq!(w.log(forklog::metrics! { "loss" => 0.25 }).unwrap(), 301);
    drop(w);
    assert!(matches!(store.events("spec").unwrap().last().unwrap().unwrap().event, Event::Log { step: 301, .. }));
    assert!(store.verify().unwrap().problems.is_empty());
}
