//! Issue 12 through the real binary: `history --buckets` (exact M4 lines, checked against `Store::sample`),
//! `runs --json --summary [--keys]` (checked against `Store::summary`), and `plot` (the SVG parsed as XML:
//! one line per run and key with the M4 point count, fork markers and labels, the legend; the PNG decoded
//! to the requested size).

mod cli_support;

use std::collections::BTreeMap;
use std::path::Path;

use cli_support::*;
use forklog::{Metrics, Store, Value};
use serde_json::json;

/// base (2,000 rows of loss and acc, a summary patch), f1 forked from it at 999 (+500 rows), f2 forked from
/// f1 at 1,200 (+300 rows), and an unrelated run.
fn build(dir: &Path) {
    let store = Store::open(dir).unwrap();
    let mut w = store.create_run("base").unwrap();
    let mut cfg = Metrics::new();
    cfg.insert("lr".into(), Value::Float(0.1));
    w.set_config(cfg).unwrap();
    for i in 0..2000u64 {
        let spike = if (1500..1510).contains(&i) { 50.0 } else { 0.0 };
        w.log_floats(&[("loss", 10.0 / (i as f64 + 1.0) + spike), ("acc", i as f64 / 2000.0)]).unwrap();
    }
    let mut s = Metrics::new();
    s.insert("best".into(), Value::Int(7));
    w.set_summary(s).unwrap();
    w.finish(0).unwrap();
    let mut f1 = store.fork("f1", &"base?_step=999".parse().unwrap()).unwrap();
    for i in 0..500u64 {
        f1.log_floats(&[("loss", 0.5 - i as f64 * 1e-4), ("acc", 0.6)]).unwrap();
    }
    drop(f1);
    let mut f2 = store.fork("f2", &"f1?_step=1200".parse().unwrap()).unwrap();
    for _ in 0..300u64 {
        f2.log_floats(&[("loss", 0.25)]).unwrap();
    }
    drop(f2);
    let mut other = store.create_run("other").unwrap();
    other.log_floats(&[("x", 1.0)]).unwrap();
}

/// Distinct steps among first, min, max and last of every bucket: the points a line through them draws.
fn m4_points(store: &Store, run: &str, key: &str, buckets: u32) -> usize {
    let s = store.sample(run, &[key], buckets, None, None).unwrap();
    s.series[0]
        .buckets
        .iter()
        .map(|b| {
            let mut steps = vec![b.first.step, b.min.step, b.max.step, b.last.step];
            steps.sort_unstable();
            steps.dedup();
            steps.len()
        })
        .sum()
}

#[test]
fn history_buckets_prints_the_exact_sample() {
    let (_tmp, s) = temp_store();
    build(&s);
    let out = ok(&s, &["history", "f1", "--buckets", "7", "--keys", "loss,acc"], "");
    let lines = json_lines(&out);
    let store = Store::open(&s).unwrap();
    let sample = store.sample("f1", &["loss", "acc"], 7, None, None).unwrap();
    let mut want = Vec::new();
    for series in &sample.series {
        for b in &series.buckets {
            want.push(json!({
                "key": &*series.key, "bucket": b.index, "start": b.start, "end": b.end, "count": b.count,
                "first_step": b.first.step, "first": b.first.value, "last_step": b.last.step, "last": b.last.value,
                "min_step": b.min.step, "min": b.min.value, "max_step": b.max.step, "max": b.max.value,
            }));
        }
    }
    assert_eq!(lines, want);
    assert_eq!(lines.len(), 14);
    // The spike at 1500..1510 is the maximum of its bucket.
    let b = lines
        .iter()
        .find(|l| l["key"] == "loss" && l["start"].as_u64().unwrap() <= 1500 && l["end"].as_u64().unwrap() >= 1500);
    assert!(b.is_none(), "f1 forked at 999: base's spike is not in its history");
    let out = ok(&s, &["history", "base", "--buckets", "4", "--keys", "loss", "--from-step", "1000"], "");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[1]["start"], 1250);
    assert_eq!(lines[2]["max_step"], 1500);
    // CSV: a header, then one row per key and bucket.
    let csv = ok(&s, &["history", "base", "--buckets", "2", "--format", "csv", "--keys", "acc"], "");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "key,bucket,start,end,count,first_step,first,last_step,last,min_step,min,max_step,max");
    assert_eq!(rows[1], "acc,0,0,999,1000,0,0.0,999,0.4995,0,0.0,999,0.4995");
    assert_eq!(rows.len(), 3);
    // Zero buckets and --own are usage errors.
    fails(&s, &["history", "base", "--buckets", "0"], "");
    fails(&s, &["history", "base", "--buckets", "3", "--own"], "");
}

#[test]
fn runs_json_summary_lists_every_run_with_its_summary() {
    let (_tmp, s) = temp_store();
    build(&s);
    let store = Store::open(&s).unwrap();
    let out = ok(&s, &["runs", "--json", "--summary"], "");
    let lines = json_lines(&out);
    assert_eq!(lines.iter().map(|l| l["id"].as_str().unwrap()).collect::<Vec<_>>(), ["base", "f1", "f2", "other"]);
    for l in &lines {
        let id = l["id"].as_str().unwrap();
        let want: BTreeMap<String, serde_json::Value> = store
            .summary(id)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::to_value(forklog_interop::json::Json(&v)).unwrap()))
            .collect();
        assert_eq!(l["summary"], json!(want), "{id}");
        assert!(l["rows"].as_u64().is_some());
    }
    assert_eq!(lines[0]["summary"]["best"], 7);
    assert_eq!(lines[2]["summary"]["loss"], 0.25);
    assert_eq!(lines[2]["summary"]["acc"], 0.6, "inherited from f1 at 1200");
    let out = ok(&s, &["runs", "--json", "--summary", "--keys", "loss,best"], "");
    let lines = json_lines(&out);
    assert_eq!(lines[0]["summary"], json!({"best": 7, "loss": 10.0 / 2000.0}));
    assert_eq!(lines[3]["summary"], json!({}));
    // Without --summary the lines have no summary; --summary needs --json.
    assert!(json_lines(&ok(&s, &["runs", "--json"], "")).iter().all(|l| l.get("summary").is_none()));
    fails(&s, &["runs", "--summary"], "");
}

#[test]
fn plot_svg_holds_one_line_per_run_and_key_and_the_fork_markers() {
    let (tmp, s) = temp_store();
    build(&s);
    let out = tmp.path().join("tree.svg");
    ok(&s, &["plot", "base", "--tree", "--keys", "loss,acc", "--buckets", "40", "--out", out.to_str().unwrap()], "");
    let text = std::fs::read_to_string(&out).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    let store = Store::open(&s).unwrap();
    // Lines are polylines drawn 2 px wide; each has the M4 point count of its run and key.
    let mut lines: Vec<usize> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
        .map(|n| n.attribute("points").unwrap().split_whitespace().count())
        .collect();
    lines.sort_unstable();
    let mut want = Vec::new();
    for run in ["base", "f1", "f2"] {
        // (f2 logs no acc, but inherits it from f1 and base: it has an acc line too.)
        for key in ["loss", "acc"] {
            want.push(m4_points(&store, run, key, 40));
        }
    }
    want.sort_unstable();
    assert_eq!(lines, want, "one line per run and key");
    // Fork markers: a circle on the parent's curve per fork and panel, labelled with the child's id.
    let circles = doc.descendants().filter(|n| n.has_tag_name("circle")).count();
    assert_eq!(circles, 4, "f1 on base, f2 on f1, in both panels");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect();
    assert_eq!(texts.iter().filter(|t| t.as_str() == "f1").count(), 2, "{texts:?}");
    assert_eq!(texts.iter().filter(|t| t.as_str() == "f2").count(), 2, "{texts:?}");
    for legend in ["base@v0", "f1@v0", "f2@v0"] {
        assert_eq!(texts.iter().filter(|t| t.as_str() == legend).count(), 2, "legend {legend} in each panel");
    }
    // The band: one polygon per run and key where buckets hold many rows.
    let polygons = doc.descendants().filter(|n| n.has_tag_name("polygon")).count();
    assert_eq!(polygons, 6);
}

#[test]
fn plot_png_decodes_to_the_requested_size_and_bad_outputs_fail() {
    let (tmp, s) = temp_store();
    build(&s);
    let out = tmp.path().join("p.png");
    ok(&s, &["plot", "f2", "base", "--out", out.to_str().unwrap(), "--width", "640", "--height", "480"], "");
    let decoder = png::Decoder::new(std::fs::File::open(&out).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (640, 480));
    // Not all white: something was drawn.
    assert!(buf.iter().any(|b| *b < 200));
    fails(&s, &["plot", "base", "--out", tmp.path().join("p.jpg").to_str().unwrap()], "");
    fails(&s, &["plot", "nope", "--out", tmp.path().join("q.svg").to_str().unwrap()], "");
}

#[test]
fn plot_text_needs_no_system_font() {
    // FORKLOG_FONT naming a missing file: a note, then the compiled-in DejaVu Sans sets the labels.
    let (tmp, s) = temp_store();
    build(&s);
    let out = tmp.path().join("t.svg");
    let o = forklog(&s)
        .env("FORKLOG_FONT", tmp.path().join("no-such-font.ttf"))
        .args(["plot", "base", "--tree", "--keys", "loss", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("using DejaVu Sans"), "{o:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    let texts: Vec<&str> =
        doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::trim).collect();
    assert!(texts.contains(&"f1") && texts.contains(&"f2"), "fork labels drawn: {texts:?}");
    assert!(texts.iter().any(|t| t.starts_with("base@v")), "legend drawn: {texts:?}");
}
