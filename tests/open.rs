//! Invariant: forklog never creates a store among files that are not its own, and a read-only open changes
//! nothing at all. `Store::open` creates a store only in a missing or empty directory (or one holding only
//! what an interrupted creation leaves); a directory with other files is `NotAStore`, untouched.
//! `Store::open_existing` never creates, upgrades or writes anything.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use forklog::{metrics, Error, Store};

/// Every file and directory under `dir` with its bytes (directories as `None`).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, at: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for e in fs::read_dir(at).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if p.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                out.insert(rel, Some(fs::read(&p).unwrap()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

#[test]
fn open_refuses_a_folder_with_other_files() {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("proj");
    fs::create_dir(&proj).unwrap();
    fs::write(proj.join("train.py"), b"code\n").unwrap();
    let before = snapshot(&proj);
    match Store::open(&proj) {
        Err(Error::NotAStore { path }) => assert_eq!(path, proj),
        other => panic!("expected NotAStore, got {:?}", other.map(|_| ())),
    }
    assert!(matches!(Store::open_existing(&proj), Err(Error::NotAStore { .. })));
    assert_eq!(snapshot(&proj), before);
    let msg = Store::open(&proj).err().unwrap().to_string();
    assert!(msg.ends_with("is not a forklog store (it holds other files)"), "{msg}");
}

#[test]
fn open_creates_in_missing_or_empty_folders_and_open_existing_never_does() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    assert!(matches!(Store::open_existing(&missing), Err(Error::NoStore { .. })));
    assert!(!missing.exists());
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert!(matches!(Store::open_existing(&empty), Err(Error::NoStore { .. })));
    assert!(snapshot(&empty).is_empty());
    let no_create = forklog::Options::default().create(false);
    assert!(matches!(Store::open_with(&empty, no_create), Err(Error::NoStore { .. })));
    assert!(snapshot(&empty).is_empty());

    for dir in [&missing, &empty] {
        let store = Store::open(dir).unwrap();
        store.create_run("r").unwrap().log(metrics! { "x" => 1 }).unwrap();
        drop(store);
        assert!(dir.join("forklog.store").is_file());
        Store::open(dir).unwrap(); // and it opens again as a store
    }

    // What a crash during creation leaves (the store file's temp file, an empty runs/) is not "other files".
    let torn = tmp.path().join("torn");
    fs::create_dir_all(torn.join("runs")).unwrap();
    fs::write(torn.join("forklog.store.tmp"), b"").unwrap();
    Store::open(&torn).unwrap();
    assert!(torn.join("forklog.store").is_file());
}

#[test]
fn a_read_only_store_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    {
        let store = Store::open(&dir).unwrap();
        let mut w = store.create_run("r").unwrap();
        w.log(metrics! { "x" => 1.0 }).unwrap();
        // Left unfinished with an unsynced buffer written at drop: a torn tail is not cut by readers.
    }
    let before = snapshot(&dir);
    let store = Store::open_existing(&dir).unwrap();
    assert!(store.is_read_only());
    assert_eq!(store.history("r").unwrap().count(), 1);
    assert_eq!(store.runs().unwrap().len(), 1);
    assert!(store.verify().unwrap().is_clean());
    let ro = |r: forklog::Result<()>| assert!(matches!(r, Err(Error::ReadOnlyStore { .. })), "{r:?}");
    ro(store.create_run("n").map(|_| ()));
    ro(store.resume("r").map(|_| ()));
    ro(store.fork("f", &"r?_step=0".parse().unwrap()).map(|_| ()));
    ro(store.rewind("r", 0).map(|_| ()));
    ro(store.delete_run("r"));
    ro(store.gc().map(|_| ()));
    drop(store);
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn gc_removes_only_files_of_the_stores_own_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    for id in ["a", "b"] {
        store.create_run(id).unwrap().log(metrics! { "x" => 1 }).unwrap();
        store.delete_run(id).unwrap();
    }
    // Someone else's file in a deleted run's directory, and a directory with a reserved name holding one.
    fs::write(tmp.path().join("runs/a/notes.txt"), b"mine").unwrap();
    fs::create_dir(tmp.path().join("runs/x~gc")).unwrap();
    fs::write(tmp.path().join("runs/x~gc/photo.jpg"), b"mine").unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.runs_removed, ["b"]);
    assert_eq!(fs::read(tmp.path().join("runs/a/notes.txt")).unwrap(), b"mine");
    assert_eq!(fs::read(tmp.path().join("runs/x~gc/photo.jpg")).unwrap(), b"mine");
    assert!(!tmp.path().join("runs/b").exists());
}
