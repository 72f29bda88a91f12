//! The engine's module graph has no cycles (docs/DESIGN.md, "Modules of the engine"): each module of src/ may
//! use only modules below it. Read from the sources (`crate::<module>` paths outside `#[cfg(test)] mod tests`).

use std::collections::{BTreeMap, BTreeSet};

/// Cycles known and tracked elsewhere (issue 12's zone maps and sampling share decoding helpers both ways).
const KNOWN: &[&[&str]] = &[&["sample", "zonemap"]];

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let mut text = std::fs::read_to_string(&p).unwrap();
            if let Some(i) = text.find("#[cfg(test)]\nmod tests") {
                text.truncate(i);
            }
            files.insert(name, text);
        }
    }
    let names: BTreeSet<String> = files.keys().cloned().collect();
    let mut g = BTreeMap::new();
    for (name, text) in &files {
        let mut deps = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + 7..];
            let m: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if names.contains(&m) && &m != name && name != "lib" {
                deps.insert(m);
            }
        }
        g.insert(name.clone(), deps);
    }
    g
}

/// Strongly connected components with more than one module.
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for d in &g[&m] {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    let all: BTreeMap<&String, BTreeSet<String>> = g.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for m in g.keys() {
        let mut c: Vec<String> =
            g.keys().filter(|n| *n == m || (all[m].contains(*n) && all[*n].contains(m))).cloned().collect();
        c.sort();
        if c.len() > 1 && !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

#[test]
fn the_module_graph_is_acyclic() {
    let g = graph();
    assert!(g.contains_key("store") && g["store"].contains("writer"), "the graph was read: {g:?}");
    let found: Vec<Vec<String>> = cycles(&g)
        .into_iter()
        .filter(|c| !KNOWN.iter().any(|k| k.iter().map(|s| s.to_string()).collect::<Vec<_>>() == *c))
        .collect();
    assert!(found.is_empty(), "module cycles: {found:?}");
    // The layers DESIGN.md names: nothing below the facade knows the store, the registry sits below the writer,
    // recovery/gc/verify take the catalog.
    for m in g.keys().filter(|m| *m != "store") {
        assert!(!g[m].contains("store"), "{m} uses the store facade");
    }
    for m in ["registry", "recovery", "gc", "verify", "replay", "catalog", "codec"] {
        assert!(!g[m].contains("writer"), "{m} uses the writer");
    }
}
