//! SIGKILL at random moments of every writing command (`fork`, `rewind`, `delete`, `gc`, `import`, `log`):
//! after each kill the killed operation happened whole or not at all (`log`/`import`: a prefix of their rows,
//! each row whole), every other run and version is unchanged, the store verifies clean (torn tails allowed),
//! and later commands work on it. 200 kills by default; `FORKLOG_KILLS=N` for a long run,
//! `FORKLOG_KILL_SEED=S` to replay one.

mod cli_support;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cli_support::*;
use forklog::{Store, Value};

/// `id@vK` of every live run's versions (current and archived) to its `(step, x)` rows.
type State = BTreeMap<String, Vec<(u64, f64)>>;

fn rows_of(store: &Store, run: &str) -> Vec<(u64, f64)> {
    store
        .history(run)
        .unwrap_or_else(|e| panic!("history of {run}: {e}"))
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("history of {run}: {e}"));
            let x = match r.metrics.get("x") {
                Some(Value::Float(x)) => *x,
                other => panic!("{run} step {}: x is {other:?}", r.step),
            };
            (r.step, x)
        })
        .collect()
}

/// Live run id -> current version, and the state.
fn state(dir: &Path) -> (BTreeMap<String, u32>, State) {
    let store = Store::open(dir).expect("open");
    let mut live = BTreeMap::new();
    let mut st = State::new();
    for info in store.runs_all().expect("runs_all") {
        if info.deleted {
            continue;
        }
        if !info.archived {
            live.insert(info.id.clone(), info.version);
        }
        let key = format!("{}@v{}", info.id, info.version);
        st.insert(key.clone(), rows_of(&store, &key));
    }
    (live, st)
}

/// JSON lines of `n` rows with x = base + k + 0.5.
fn lines(base: u64, n: u64) -> String {
    (0..n).map(|k| format!("{{\"x\": {}}}\n", (base + k) as f64 + 0.5)).collect()
}

fn is_prefix_of_rows(got: &[(u64, f64)], base: u64) -> bool {
    got.iter().enumerate().all(|(k, (_, x))| *x == (base + k as u64) as f64 + 0.5)
        && got.windows(2).all(|w| w[0].0 < w[1].0)
}

#[test]
fn every_writing_command_is_whole_or_absent_after_sigkill() {
    let kills: u64 = std::env::var("FORKLOG_KILLS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let seed = std::env::var("FORKLOG_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos() as u64 | 1);
    eprintln!("kill test seed: {seed} ({kills} kills)");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = tmp.path().join("store");
    let import_file = tmp.path().join("rows.jsonl");
    std::fs::write(&import_file, lines(1_000_000, 3000)).expect("write import file");
    let log_file = tmp.path().join("log.jsonl");
    std::fs::write(&log_file, lines(2_000_000, 3000)).expect("write log file");
    log(&s, "a", &lines(0, 300));
    log(&s, "b", &lines(10_000, 100));
    ok(&s, &["fork", "c", "a?_step=150"], "");
    log(&s, "c", &lines(20_000, 50));
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for i in 0..kills {
        let (live, before) = state(&s);
        let ids: Vec<&String> = live.keys().collect();
        let pick = |rng: &mut Rng| ids[rng.below(ids.len() as u64) as usize].clone();
        let last = |id: &str| before[&format!("{id}@v{}", live[id])].last().map_or(0, |r| r.0);
        let mut op = ["fork", "rewind", "delete", "gc", "import", "log"][rng.below(6) as usize];
        if op == "delete" && live.len() <= 3 {
            op = "fork";
        }
        let target = pick(&mut rng);
        let new = format!("n{i}");
        let k = rng.below(last(&target) + 3);
        let spec = format!("{target}?_step={k}");
        let args: Vec<String> = match op {
            "fork" => vec!["fork".into(), new.clone(), spec.clone()],
            "rewind" => vec!["rewind".into(), spec.clone()],
            "delete" => vec!["delete".into(), target.clone()],
            "gc" => vec!["gc".into()],
            "import" => vec!["import".into(), new.clone(), import_file.display().to_string()],
            _ => vec!["log".into(), target.clone()],
        };
        *counts.entry(op).or_default() += 1;
        let stdin = if op == "log" { Stdio::from(File::open(&log_file).expect("log file")) } else { Stdio::null() };
        let mut child = Command::new(bin())
            .env_remove("FORKLOG_STORE")
            .arg("--store")
            .arg(&s)
            .args(&args)
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn forklog");
        let delay = if rng.below(4) == 0 { rng.below(60_000) } else { rng.below(15_000) };
        std::thread::sleep(Duration::from_micros(delay));
        let _ = child.kill();
        let status = child.wait().expect("wait");
        let ctx = format!("seed {seed} kill #{i}: {args:?} killed after {delay} us ({status:?})");
        eprintln!("{ctx}");

        let (live_after, after) = state(&s);
        let tv = |id: &str, v: u32| format!("{id}@v{v}");
        let mut touched: Vec<String> = Vec::new();
        match op {
            "fork" => {
                touched.push(tv(&new, 0));
                if let Some(rows) = after.get(&tv(&new, 0)) {
                    let parent = &before[&tv(&target, live[&target])];
                    let want: Vec<_> = parent.iter().copied().filter(|r| r.0 <= k).collect();
                    assert_eq!(rows, &want, "{ctx}: a fork with other rows than its parent's prefix");
                }
            }
            "rewind" => {
                let v = live[&target];
                let old = &before[&tv(&target, v)];
                if live_after[&target] == v {
                    assert_eq!(&after[&tv(&target, v)], old, "{ctx}: a rewind that did not happen changed the run");
                } else {
                    assert_eq!(live_after[&target], v + 1, "{ctx}");
                    assert_eq!(&after[&tv(&target, v)], old, "{ctx}: the archived version changed");
                    let want: Vec<_> = old.iter().copied().filter(|r| r.0 <= k).collect();
                    assert_eq!(after[&tv(&target, v + 1)], want, "{ctx}: the rewound version is not the prefix");
                    touched.push(tv(&target, v + 1));
                }
            }
            "delete" => {
                let key = tv(&target, live[&target]);
                if live_after.contains_key(&target) {
                    assert_eq!(after[&key], before[&key], "{ctx}: an undone delete changed the run");
                } else {
                    // Deleted whole: every version of it is gone from the listing.
                    for key in before.keys().filter(|key| key.starts_with(&format!("{target}@v"))) {
                        assert!(!after.contains_key(key), "{ctx}: {key} left after delete");
                        touched.push(key.clone());
                    }
                }
            }
            "import" => {
                touched.push(tv(&new, 0));
                if let Some(rows) = after.get(&tv(&new, 0)) {
                    assert!(is_prefix_of_rows(rows, 1_000_000), "{ctx}: import left {} rows out of order", rows.len());
                }
            }
            "log" => {
                let key = tv(&target, live[&target]);
                let old = &before[&key];
                let got = &after[&key];
                assert!(got.len() >= old.len() && got[..old.len()] == old[..], "{ctx}: log changed earlier rows");
                assert!(is_prefix_of_rows(&got[old.len()..], 2_000_000), "{ctx}: log appended other rows");
                assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "{ctx}: steps not increasing");
                touched.push(key);
            }
            _ => {}
        }
        // Every other run and version is unchanged.
        for (key, rows) in &before {
            if !touched.contains(key) {
                assert_eq!(after.get(key), Some(rows), "{ctx}: {key} changed");
            }
        }
        for key in after.keys() {
            assert!(before.contains_key(key) || touched.contains(key), "{ctx}: {key} appeared");
        }
        let report = Store::open(&s).expect("open").verify().expect("verify");
        if !report.is_clean() {
            if let Ok(keep) = std::env::var("FORKLOG_KILL_KEEP") {
                let _ = Command::new("cp").arg("-a").arg(&s).arg(&keep).status();
            }
        }
        assert!(report.is_clean(), "{ctx}: verify: {:?}", report.problems);
        if i % 50 == 49 {
            let out = run(&s, &["verify"], "");
            assert_eq!(out.status.code(), Some(0), "{ctx}: forklog verify: {}", String::from_utf8_lossy(&out.stdout));
        }
    }
    eprintln!("kills per command: {counts:?}");
    // Every run still takes writes after all the kills, and the store verifies clean.
    let (live, _) = state(&s);
    for id in live.keys() {
        log(&s, id, "{\"x\": 0.5}\n");
    }
    ok(&s, &["gc"], "");
    let report = Store::open(&s).expect("open").verify().expect("verify");
    assert!(report.is_clean(), "seed {seed}: {:?}", report.problems);
}
