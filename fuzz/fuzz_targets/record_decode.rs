//! Frame payload decoding: arbitrary bytes as the payload of a (CRC-valid) frame.
//!
//! Runs the engine's own decoding path (`frame_events`, as replay, recovery and verify use it) and the
//! streaming `PayloadDecoder`. Neither may panic or allocate from a garbage count; a payload that decodes
//! must re-encode (with the writer's encoder) to bytes that decode to the same events.
#![no_main]

use std::path::Path;

use forklog::internals::{encode_event, encode_prefix, frame_events, EncEvent, PayloadDecoder, RawEvent};
use forklog::Value;
use libfuzzer_sys::fuzz_target;

const FRAME_OFF: u64 = 80;

fn refs(kv: &[(u32, Value)]) -> Vec<(u32, &Value)> {
    kv.iter().map(|(k, v)| (*k, v)).collect()
}

/// Encodes events the way the writer does: base = the first event's step and time.
fn encode(events: &[RawEvent]) -> Vec<u8> {
    let base_step = events.first().map_or(0, RawEvent::step);
    let base_time = match events.first() {
        Some(RawEvent::Log { time_us, .. } | RawEvent::System { time_us, .. }) => *time_us,
        _ => 0,
    };
    let (mut ps, mut pt) = (base_step, base_time);
    let mut body = Vec::new();
    for ev in events {
        let (kv, step) = match ev {
            RawEvent::Log { step, metrics, .. } | RawEvent::System { step, metrics, .. } => (refs(metrics), *step),
            RawEvent::Config { step, patch } | RawEvent::Summary { step, patch } => (refs(patch), *step),
            RawEvent::Finish { step, .. } | RawEvent::Meta { step, .. } => (Vec::new(), *step),
        };
        let enc = match ev {
            RawEvent::Log { time_us, .. } => EncEvent::Log { step, time_us: *time_us, metrics: &kv },
            RawEvent::System { time_us, .. } => EncEvent::System { step, time_us: *time_us, metrics: &kv },
            RawEvent::Config { .. } => EncEvent::Config { step, patch: &kv },
            RawEvent::Summary { .. } => EncEvent::Summary { step, patch: &kv },
            RawEvent::Finish { exit_code, .. } => EncEvent::Finish { step, exit_code: *exit_code },
            RawEvent::Meta { patch, .. } => EncEvent::Meta { step, patch },
        };
        encode_event(&mut body, &enc, &mut ps, &mut pt);
    }
    let mut out = Vec::new();
    encode_prefix(&mut out, events.len() as u32, base_step, base_time, 0);
    out.extend_from_slice(&body);
    out
}

fuzz_target!(|data: &[u8]| {
    // The streaming decoder: offsets strictly increase and stay inside the payload; it terminates.
    if let Ok(mut d) = PayloadDecoder::new(data) {
        let announced = u64::from(d.remaining());
        let (mut last, mut calls) = (0usize, 0u64);
        while let Some(r) = d.next_event() {
            calls += 1;
            assert!(calls <= announced + 1, "decoder yields more items than the frame announces");
            if let Ok((_, end)) = r {
                assert!(end > last && end <= data.len(), "event end {end} after {last}, payload {}", data.len());
                last = end;
            }
        }
    }

    // The lean walk (columnar reads) agrees with the full decoder: same events, steps, ends and numbers, and
    // it fails exactly where the full decoder does.
    if let (Ok(mut full), Ok(mut lean)) = (PayloadDecoder::new(data), PayloadDecoder::new(data)) {
        let mut row = Vec::new();
        loop {
            match (full.next_event(), lean.next_lean(&mut row)) {
                (None, None) => break,
                (Some(Err(_)), Some(Err(_))) => break,
                (Some(Ok((ev, end))), Some(Ok(l))) => {
                    assert_eq!((ev.step(), ev.is_log(), end), (l.step, l.is_log, l.end), "lean walk differs");
                    if let RawEvent::Log { time_us, metrics, .. } = &ev {
                        assert_eq!(*time_us, l.time_us);
                        let nums: Vec<(u32, Option<u64>)> =
                            metrics.iter().map(|(k, v)| (*k, forklog::testing::numeric(v).map(f64::to_bits))).collect();
                        let got: Vec<(u32, Option<u64>)> = match l.dense {
                            Some(bytes) => lean
                                .template()
                                .0
                                .iter()
                                .zip(bytes.chunks_exact(8))
                                .map(|(k, b)| (*k, Some(u64::from_le_bytes(b.try_into().expect("8 bytes")))))
                                .collect(),
                            None => row.iter().map(|(k, v)| (*k, v.map(f64::to_bits))).collect(),
                        };
                        assert_eq!(nums, got, "lean values differ");
                    }
                }
                (a, b) => panic!("full decoder {:?} vs lean walk {:?}", a.map(|r| r.is_ok()), b.map(|r| r.is_ok())),
            }
        }
    }

    // The engine's path.
    let path = Path::new("fuzz.seg");
    let Ok(events) = frame_events(path, FRAME_OFF, data, 2) else { return };
    let ends: Vec<u64> = events.iter().map(|e| e.1).collect();
    assert!(ends.windows(2).all(|w| w[0] < w[1]), "event ends not increasing: {ends:?}");
    assert_eq!(ends.last().copied(), Some(FRAME_OFF + 12 + data.len() as u64), "payload not fully consumed");

    let raw: Vec<RawEvent> = events.into_iter().map(|e| e.0).collect();
    let again = encode(&raw);
    let back = frame_events(path, FRAME_OFF, &again, 2).expect("a re-encoded payload must decode");
    let back: Vec<RawEvent> = back.into_iter().map(|e| e.0).collect();
    assert_eq!(raw, back, "decode(encode(decode(x))) != decode(x)");
});
