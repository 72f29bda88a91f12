//! The object-storage tier's costs, as ratios measured in one run (plain timing, `harness = false`): against
//! a moto S3 server when `FORKLOG_MOTO_SERVER` names its binary, else against `object_store`'s InMemory.
//!
//! - fork of a remote 1M-row run from a second machine (cold and warm cache) vs a local fork, and vs
//!   downloading and copying the prefix the fork inherits;
//! - cold replay from the remote vs a plain sequential `get` of the same objects;
//! - warm replay (cached) vs replay of a local store.
//!
//! `cargo bench -p forklog-remote --bench remote` (`ROWS=N` to change the run's size). Targets (issue 13):
//! remote fork <= 3x local and >= 100x faster than download+copy; cold replay >= 50% of sequential get
//! throughput; warm replay within 1.2x of local. Missed targets are reported, not fatal. Two bounds are printed
//! beside them: one server round trip (a fork waits for two in a row: the parent's listing, then the header's
//! conditional create with the lease beside it) and the share of the `get` throughput a
//! replay as fast as the local one would reach. `FORKLOG_BENCH_TRACE=1` also times three more warm columnar
//! replays with their request counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use forklog::{ForkPoint, Options, Store, SyncPolicy};
use forklog_remote::object_store::memory::InMemory;
use forklog_remote::object_store::path::Path as Key;
use forklog_remote::object_store::{ObjectStore, ObjectStoreExt};
use forklog_remote::testing::MotoServer;
use forklog_remote::{Remote, RemoteOptions};
use futures::TryStreamExt;

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

/// Forks timed for each median.
const FORKS: usize = 9;
/// Cold columnar replays (each from an empty cache) and sequential gets timed for each median.
const COLD: usize = 3;

/// The median of some durations.
fn median(ds: impl Iterator<Item = Duration>) -> Duration {
    let mut v: Vec<Duration> = ds.collect();
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn write_run(store: &Store, id: &str, rows: u64) {
    let mut w = store.create_run(id).unwrap();
    let steps: Vec<u64> = (0..rows).collect();
    let loss: Vec<f64> = (0..rows).map(|i| 1.0 / (1.0 + i as f64)).collect();
    let acc: Vec<f64> = (0..rows).map(|i| (i % 1000) as f64 / 1000.0).collect();
    for chunk in (0..rows as usize).step_by(65536) {
        let end = (chunk + 65536).min(rows as usize);
        w.log_columns(&steps[chunk..end], &[("loss", &loss[chunk..end]), ("acc", &acc[chunk..end])]).unwrap();
    }
    w.finish(0).unwrap();
}

fn replay(store: &Store, id: &str) -> u64 {
    let mut n = 0u64;
    for r in store.history(id).unwrap() {
        let row = r.unwrap();
        assert_eq!(row.step, n);
        n += 1;
    }
    n
}

/// A columnar replay of the whole run (`scan_columns`: every row's floats, no row maps), its row count.
fn replay_columns(store: &Store, id: &str) -> u64 {
    let mut n = 0u64;
    store.scan_columns(id, &forklog::HistoryOptions::new(), |c| n += c.len() as u64).unwrap();
    n
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is parsed.
    let rows: u64 = std::env::var("ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let server = MotoServer::binary().map(|bin| MotoServer::start(bin).expect("starting moto_server"));
    let (url, os): (Option<String>, Option<Arc<dyn ObjectStore>>) = match &server {
        Some(s) => {
            for (k, v) in s.env() {
                std::env::set_var(k, v);
            }
            s.create_bucket("bench").unwrap();
            (Some("s3://bench/team".into()), None)
        }
        None => (None, Some(Arc::new(InMemory::new()))),
    };
    println!(
        "remote bench: {rows} rows, against {}",
        if server.is_some() { "moto (S3 over HTTP)" } else { "InMemory" }
    );
    let engine = Options::default().sync(SyncPolicy::Never);
    let ropts = || RemoteOptions::default().store_options(engine.clone());
    let open = |dir: &std::path::Path| -> (Store, Remote) {
        match (&url, &os) {
            (Some(u), _) => forklog_remote::open(u, dir, ropts()).unwrap(),
            (None, Some(os)) => forklog_remote::open_object_store(os.clone(), "team", dir, ropts()).unwrap(),
            _ => unreachable!(),
        }
    };

    // The local baseline: the same run in a plain store.
    let local_dir = tempfile::tempdir().unwrap();
    let local = Store::open_with(local_dir.path(), engine.clone()).unwrap();
    write_run(&local, "base", rows);
    let mid = rows / 2;
    // Forks are short and the machine is noisy: the median of `FORKS` of them, locally and warm remotely alike.
    let local_fork =
        median((0..FORKS).map(|i| {
            time(|| local.fork(&format!("lf{i}"), &ForkPoint::new("base", mid)).unwrap().finish(0).unwrap()).1
        }));
    let (n, local_replay) = time(|| replay(&local, "base"));
    assert_eq!(n, rows);
    let (_, local_replay2) = time(|| replay(&local, "base"));
    let local_replay = local_replay.min(local_replay2);
    let (n, local_scan) = time(|| replay_columns(&local, "base"));
    assert_eq!(n, rows);
    let local_scan = local_scan.min(time(|| replay_columns(&local, "base")).1);

    // Machine A writes the run to the remote.
    let a_dir = tempfile::tempdir().unwrap();
    let (a, ra) = open(a_dir.path());
    let (_, write) = time(|| {
        write_run(&a, "base", rows);
        ra.sync().unwrap();
    });
    let s = ra.stats();
    println!(
        "write+upload: {:.0} ms, {} objects, {:.1} MiB",
        ms(write),
        s.uploads,
        s.uploaded_bytes as f64 / 1048576.0
    );

    // Machine B forks it, cold then warm. A fork is published (visible to every machine) when `fork` returns:
    // its header is in the object store; with `finish_waits(false)` the fork's own empty files upload in the
    // background, and `sync` waits for them (timed apart).
    let b_dir = tempfile::tempdir().unwrap();
    let (b, rb) = match (&url, &os) {
        (Some(u), _) => forklog_remote::open(u, b_dir.path(), ropts().finish_waits(false)).unwrap(),
        (None, Some(os)) => {
            forklog_remote::open_object_store(os.clone(), "team", b_dir.path(), ropts().finish_waits(false)).unwrap()
        }
        _ => unreachable!(),
    };
    let (_, cold_fork) = time(|| b.fork("f1", &ForkPoint::new("base", mid)).unwrap().finish(0).unwrap());
    let (_, cold_sync) = time(|| rb.sync().unwrap());
    time(|| b.fork("f2", &ForkPoint::new("base", mid)).unwrap().finish(0).unwrap());
    let (_, warm_sync) = time(|| rb.sync().unwrap());
    let warm_fork = median((0..FORKS).map(|i| {
        let t = time(|| b.fork(&format!("fw{i}"), &ForkPoint::new("base", mid)).unwrap().finish(0).unwrap()).1;
        rb.sync().unwrap();
        t
    }));

    // Download + copy of the objects the fork inherits (the whole run), the alternative to a pointer.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let raw: Arc<dyn ObjectStore> = match (&url, &os) {
        (Some(_), _) => Arc::new(
            forklog_remote::object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name("bench")
                .with_allow_http(true)
                .with_virtual_hosted_style_request(false)
                .build()
                .unwrap(),
        ),
        (None, Some(os)) => os.clone(),
        _ => unreachable!(),
    };
    let prefix = Key::from("team/runs/base");
    let objects: Vec<Key> =
        rt.block_on(raw.list(Some(&prefix)).try_collect::<Vec<_>>()).unwrap().into_iter().map(|m| m.location).collect();
    let copy_dir = tempfile::tempdir().unwrap();
    let get_all = || {
        let mut total = 0u64;
        for k in &objects {
            let data = rt.block_on(async { raw.get(k).await.unwrap().bytes().await.unwrap() });
            total += data.len() as u64;
        }
        total
    };
    // The server's pace swings from one moment to the next: the median of `COLD` runs, as for the cold replays.
    let bytes = get_all();
    let get_time = median((0..COLD).map(|_| time(get_all).1));
    let (_, download_copy) = time(|| {
        for k in &objects {
            let data = rt.block_on(async { raw.get(k).await.unwrap().bytes().await.unwrap() });
            let name = k.filename().unwrap_or("x");
            std::fs::write(copy_dir.path().join(name), &data).unwrap();
            rt.block_on(raw.put(&Key::from(format!("team/copy/{name}")), data.into())).unwrap();
        }
    });

    // One round trip to the server (a HEAD of a small object, median of 21): a remote fork waits for at least
    // two in a row (the parent's listing, then the header's create with the lease beside it).
    let head_key = Key::from("team/runs/base/v0.head");
    let mut trips: Vec<Duration> = (0..21).map(|_| time(|| rt.block_on(raw.head(&head_key)).unwrap()).1).collect();
    trips.sort();
    let trip = trips[trips.len() / 2];
    // A listing of the run's directory (the first of the fork's two round trips), likewise.
    let list_prefix = Key::from("team/runs/base");
    let list_trip =
        median((0..21).map(|_| time(|| rt.block_on(raw.list_with_delimiter(Some(&list_prefix))).unwrap()).1));

    // Machine C replays it cold, then warm.
    let c_dir = tempfile::tempdir().unwrap();
    let (c, _rc) = open(c_dir.path());
    let (n, cold_replay) = time(|| replay(&c, "base"));
    assert_eq!(n, rows);
    let (_, warm_replay) = time(|| replay(&c, "base"));
    // Machines D replay it cold with the columnar scan (no row maps: the fetches, not the decoding, set the pace),
    // each with an empty cache: the median of `COLD`.
    let mut cold_scans = Vec::new();
    for _ in 1..COLD {
        let dir = tempfile::tempdir().unwrap();
        let (d, _rd) = open(dir.path());
        let (n, t) = time(|| replay_columns(&d, "base"));
        assert_eq!(n, rows);
        cold_scans.push(t);
    }
    let d_dir = tempfile::tempdir().unwrap();
    let (d, rd) = open(d_dir.path());
    let r0 = rd.stats().requests;
    let (n, cold_scan) = time(|| replay_columns(&d, "base"));
    assert_eq!(n, rows);
    cold_scans.push(cold_scan);
    let cold_scan = median(cold_scans.into_iter());
    let r1 = rd.stats().requests;
    let (_, warm_scan) = time(|| replay_columns(&d, "base"));
    let r2 = rd.stats().requests;
    println!("requests: cold columnar replay {}, warm {}", r1 - r0, r2 - r1);
    if std::env::var_os("FORKLOG_BENCH_TRACE").is_some() {
        for _ in 0..3 {
            let r = rd.stats().requests;
            let t = Instant::now();
            replay_columns(&d, "base");
            println!("  again: {:.1} ms, {} requests", ms(t.elapsed()), rd.stats().requests - r);
        }
    }

    println!("local fork           {:>9.2} ms  (median of {FORKS})", ms(local_fork));
    println!(
        "remote fork, cold    {:>9.2} ms  ({:.1}x local; then {:.2} ms until its own files are uploaded)",
        ms(cold_fork),
        ms(cold_fork) / ms(local_fork),
        ms(cold_sync)
    );
    println!(
        "remote fork, warm    {:>9.2} ms  ({:.1}x local, median of {FORKS}; the first one then took {:.2} ms until its own files were uploaded)",
        ms(warm_fork),
        ms(warm_fork) / ms(local_fork),
        ms(warm_sync)
    );
    println!(
        "round trip           {:>9.2} ms  (median HEAD; a remote fork waits for at least 2 in a row: {:.1}x local)",
        ms(trip),
        (2.0 * ms(trip) + ms(local_fork)) / ms(local_fork)
    );
    println!(
        "listing              {:>9.2} ms  (median list of the run; with one create and the local fork: {:.1}x local)",
        ms(list_trip),
        (ms(list_trip) + ms(trip) + ms(local_fork)) / ms(local_fork)
    );
    println!(
        "download+copy        {:>9.2} ms  ({:.0}x the cold fork, {:.0}x the warm fork; {:.1} MiB)",
        ms(download_copy),
        ms(download_copy) / ms(cold_fork),
        ms(download_copy) / ms(warm_fork),
        bytes as f64 / 1048576.0
    );
    println!(
        "sequential get       {:>9.2} ms  ({:.0} MiB/s, median of {COLD})",
        ms(get_time),
        bytes as f64 / 1048576.0 / get_time.as_secs_f64()
    );
    println!(
        "cold replay          {:>9.2} ms  ({:.2} of sequential get throughput)",
        ms(cold_replay),
        get_time.as_secs_f64() / cold_replay.as_secs_f64()
    );
    println!(
        "  (bound: a cold replay cannot beat the local one, so at most {:.2} of sequential get throughput)",
        get_time.as_secs_f64() / local_replay.as_secs_f64()
    );
    println!("local replay         {:>9.2} ms", ms(local_replay));
    println!("warm replay          {:>9.2} ms  ({:.2}x local)", ms(warm_replay), ms(warm_replay) / ms(local_replay));
    println!(
        "cold columnar replay {:>9.2} ms  ({:.2} of sequential get throughput; scan_columns, median of {COLD}; local {:.2} ms, warm {:.2}x local)",
        ms(cold_scan),
        get_time.as_secs_f64() / cold_scan.as_secs_f64(),
        ms(local_scan),
        ms(warm_scan) / ms(local_scan)
    );
    let checks = [
        ("warm remote fork <= 3x local", ms(warm_fork) <= 3.0 * ms(local_fork)),
        ("cold remote fork <= 3x local", ms(cold_fork) <= 3.0 * ms(local_fork)),
        ("warm remote fork >= 100x faster than download+copy", ms(download_copy) >= 100.0 * ms(warm_fork)),
        ("cold remote fork >= 100x faster than download+copy", ms(download_copy) >= 100.0 * ms(cold_fork)),
        (
            "cold replay (history rows) >= 0.5 of sequential get",
            get_time.as_secs_f64() / cold_replay.as_secs_f64() >= 0.5,
        ),
        (
            "cold replay (scan_columns) >= 0.5 of sequential get",
            get_time.as_secs_f64() / cold_scan.as_secs_f64() >= 0.5,
        ),
        ("warm replay <= 1.2x local", ms(warm_replay) <= 1.2 * ms(local_replay)),
    ];
    for (what, ok) in checks {
        println!("target {what}: {}", if ok { "met" } else { "MISSED" });
    }
}
