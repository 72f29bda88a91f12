//! [`Store::gc`](crate::Store::gc): remove the files of deleted runs that no live run reaches.
//!
//! Every version of a live run is kept (archived versions stay addressable as `ID@vK`). From each kept
//! version the walk follows base pointers: the pointed-to version keeps its header, key table and segments
//! up to the pinned one; and the fork-parent chain keeps headers so lineage still reads. Only deleted
//! runs lose files: unreachable segments, whole versions, and finally whole directories.

use std::collections::{BTreeMap, HashMap};

use crate::catalog::RunListing;
use crate::error::{Error, Result};
use crate::format::{self, parse_run_file, RunFile};
use crate::report::GcReport;
use crate::store::StoreInner;

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

pub(crate) fn collect(inner: &StoreInner) -> Result<GcReport> {
    let cat = &inner.catalog;
    let vfs = &*cat.vfs;
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
    for (id, l) in &listings {
        if !l.deleted {
            continue;
        }
        let dir = cat.run_dir(id);
        let names = vfs.read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
        let any_kept = l.versions.iter().any(|v| keep.contains_key(&(id.clone(), *v)));
        let mut removed_any = false;
        for name in &names {
            let path = dir.join(name);
            let doomed = if !any_kept {
                true
            } else {
                match parse_run_file(name) {
                    Some(RunFile::Head(v)) => !keep.contains_key(&(id.clone(), v)),
                    Some(RunFile::Keys(v)) => keep.get(&(id.clone(), v)).is_none_or(|k| *k == Keep::Header),
                    Some(RunFile::Seg(v, s)) | Some(RunFile::Idx(v, s)) => match keep.get(&(id.clone(), v)) {
                        None | Some(Keep::Header) => true,
                        Some(Keep::UpTo(n)) => s > *n,
                        Some(Keep::All) => false,
                    },
                    None => name.ends_with(".tmp"),
                }
            };
            if doomed && name != format::DELETED_FILE && name != format::LOCK_FILE || doomed && !any_kept {
                let len = vfs.open(&path, crate::vfs::OpenMode::Read).and_then(|f| f.len()).unwrap_or(0);
                match vfs.remove_file(&path) {
                    Ok(()) => {
                        report.files_removed += 1;
                        report.bytes_freed += len;
                        removed_any = true;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("removing", &path, e)),
                }
            }
        }
        if !any_kept {
            vfs.remove_dir_all(&dir).map_err(|e| Error::io("removing run directory", &dir, e))?;
            report.runs_removed.push(id.clone());
            cat.forget_run(id);
        } else if removed_any {
            vfs.sync_dir(&dir).map_err(|e| Error::io("syncing directory", &dir, e))?;
        }
    }
    if !report.runs_removed.is_empty() {
        vfs.sync_dir(&cat.runs_dir).map_err(|e| Error::io("syncing directory", &cat.runs_dir, e))?;
    }
    Ok(report)
}
