//! [`Store::gc`](crate::Store::gc): remove the files of deleted runs that no live run reaches.
//!
//! Every version of a live run is kept (archived versions stay addressable as `ID@vK`). From each kept
//! version the walk follows base pointers: the pointed-to version keeps its header, key table and segments
//! up to the pinned one; and the fork-parent chain keeps headers so lineage still reads. Only deleted
//! runs lose files: unreachable segments, whole versions, and finally whole directories.

use std::collections::{BTreeMap, HashMap};

use crate::catalog::{Catalog, RunListing};
use crate::error::{Error, Result};
use crate::format::{parse_run_file, RunFile, NEW_SUFFIX, TRASH_SUFFIX};
use crate::report::GcReport;

/// How much of a version must stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Keep {
    /// Only the header (lineage of a live run passes through it).
    Header,
    /// Header, key table and segments `0..=n`.
    UpTo(u32),
    /// Everything.
    All,
}

pub(crate) fn collect(cat: &Catalog) -> Result<GcReport> {
    let vfs = &*cat.vfs;
    // Kept mappings would keep the removed files' space until dropped.
    cat.maps.clear();
    let mut listings: BTreeMap<String, RunListing> = BTreeMap::new();
    for id in cat.run_ids()? {
        if let Some(l) = cat.listing(&id)? {
            listings.insert(id, l);
        }
    }
    let mut keep: HashMap<(String, u32), Keep> = HashMap::new();
    let mut stack: Vec<(String, u32)> = Vec::new();
    for (id, l) in &listings {
        if !l.deleted {
            for v in &l.versions {
                keep.insert((id.clone(), *v), Keep::All);
                stack.push((id.clone(), *v));
            }
        }
    }
    while let Some((id, v)) = stack.pop() {
        let h = cat.header(&id, v)?;
        if let Some(b) = &h.base {
            let k = (b.run_id.clone(), b.version);
            let old = keep.get(&k).copied();
            let new = old.map_or(Keep::UpTo(b.segment), |o| o.max(Keep::UpTo(b.segment)));
            if old != Some(new) {
                keep.insert(k.clone(), new);
                stack.push(k);
            }
        }
        if let Some(p) = &h.fork_parent {
            let k = (p.run_id.clone(), p.version);
            if !keep.contains_key(&k) {
                keep.insert(k.clone(), Keep::Header);
                stack.push(k);
            }
        }
    }
    let mut report = GcReport::default();
    // Leftovers of a gc that crashed after moving a directory aside (names that are not run ids).
    let runs = &cat.runs_dir;
    // And run directories whose creation a crash interrupted before they were renamed into place; a creation in
    // progress holds its directory's lock, so a locked one is left alone.
    // Only directories holding nothing but files of a run's layout: gc never removes a file that is not forklog's.
    let only_ours = |path: &std::path::Path| {
        vfs.read_dir(path).is_ok_and(|n| n.iter().all(|n| crate::format::is_run_layout_name(n)))
    };
    for name in vfs.read_dir(runs).map_err(|e| Error::io("listing", runs, e))? {
        let path = runs.join(&name);
        if (name.ends_with(TRASH_SUFFIX) || name.contains(NEW_SUFFIX)) && !only_ours(&path) {
            continue;
        }
        if name.ends_with(TRASH_SUFFIX) {
            vfs.remove_dir_all(&path).map_err(|e| Error::io("removing", &path, e))?;
        } else if name.contains(NEW_SUFFIX) {
            let lock = match vfs.open_dir(&path) {
                Ok(l) => l,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("opening", &path, e)),
            };
            if !lock.try_lock().map_err(|e| Error::io("locking", &path, e))? {
                continue;
            }
            report.files_removed += vfs.read_dir(&path).map_or(0, |n| n.len() as u64);
            match vfs.remove_dir_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing", &path, e)),
            }
        }
    }
    for (id, l) in &listings {
        if !l.deleted {
            continue;
        }
        let dir = cat.run_dir(id);
        let names = vfs.read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
        if !names.iter().all(|n| crate::format::is_run_layout_name(n)) {
            // Someone else's files in the run's directory: leave the whole run as it is.
            continue;
        }
        let any_kept = l.versions.iter().any(|v| keep.contains_key(&(id.clone(), *v)));
        let size =
            |path: &std::path::Path| vfs.open(path, crate::vfs::OpenMode::Read).and_then(|f| f.len()).unwrap_or(0);
        if !any_kept {
            // The run vanishes at once: its directory moves to a name that is not a run id (durably), then goes.
            // Removing files one by one could leave, after a crash, a run without its tombstone (back from the
            // dead) or a directory of leftovers that a new run of the same id would adopt.
            for name in &names {
                report.files_removed += 1;
                report.bytes_freed += size(&dir.join(name));
            }
            let trash = runs.join(format!("{id}{TRASH_SUFFIX}"));
            vfs.rename(&dir, &trash).map_err(|e| Error::io("moving aside", &dir, e))?;
            vfs.sync_dir(runs).map_err(|e| Error::io("syncing directory", runs, e))?;
            vfs.remove_dir_all(&trash).map_err(|e| Error::io("removing run directory", &trash, e))?;
            report.runs_removed.push(id.clone());
            cat.forget_run(id);
            continue;
        }
        let mut doomed: Vec<(u32, u32, u8, &String)> = Vec::new();
        for name in &names {
            // Order: segments from the last one down, each before its index, so that at every moment the
            // chain of segments is contiguous and every sealed segment has its index; then the rest.
            let (order, is_doomed) = match parse_run_file(name) {
                Some(RunFile::Head(v)) => ((u32::MAX, v, 3), !keep.contains_key(&(id.clone(), v))),
                Some(RunFile::Keys(v)) => {
                    ((u32::MAX, v, 2), keep.get(&(id.clone(), v)).is_none_or(|k| *k == Keep::Header))
                }
                Some(f @ (RunFile::Seg(v, s) | RunFile::Idx(v, s) | RunFile::Zone(v, s))) => {
                    let doomed = match keep.get(&(id.clone(), v)) {
                        None | Some(Keep::Header) => true,
                        Some(Keep::UpTo(n)) => s > *n,
                        Some(Keep::All) => false,
                    };
                    let kind = match f {
                        RunFile::Seg(..) => 0,
                        RunFile::Idx(..) => 1,
                        _ => 2, // the zone map (issue 12) goes with its segment, after the index
                    };
                    ((u32::MAX - 1 - s, v, kind), doomed)
                }
                None => ((u32::MAX, u32::MAX, 4), name.ends_with(".tmp")),
            };
            if is_doomed {
                doomed.push((order.0, order.1, order.2, name));
            }
        }
        doomed.sort();
        for (_, _, _, name) in &doomed {
            let path = dir.join(name);
            let len = size(&path);
            match vfs.remove_file(&path) {
                Ok(()) => {
                    report.files_removed += 1;
                    report.bytes_freed += len;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing", &path, e)),
            }
        }
        if !doomed.is_empty() {
            vfs.sync_dir(&dir).map_err(|e| Error::io("syncing directory", &dir, e))?;
        }
    }
    if !report.runs_removed.is_empty() {
        vfs.sync_dir(&cat.runs_dir).map_err(|e| Error::io("syncing directory", &cat.runs_dir, e))?;
    }
    Ok(report)
}
