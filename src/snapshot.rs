//! Summary and config without a replay: the state of a run's visible history assembled from the snapshots
//! and block records of its zone maps (src/zonemap.rs), one piece of the ancestry plan at a time.
//!
//! Each version's snapshots cover its own data only, so the state of a run is its ancestors' states at their
//! fork pointers (each: the nearest snapshot at or before the pointer, then the blocks after it, then the block
//! the pointer cuts, decoded) merged root first with its own. The cost is bounded per piece (a snapshot, at
//! most [`SNAPSHOT_BYTES`](crate::zonemap::SNAPSHOT_BYTES) worth of block records, and the frames the zone maps
//! do not cover yet), so it does not grow with the history length.

use crate::catalog::{Catalog, VersionView};
use crate::error::{Error, Result};
use crate::replay::plan;
use crate::value::{Key, Metrics};
use crate::zonemap::own_state;

/// The merged state of a visible history, by key name.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Last `Log` value of every key.
    pub auto: Metrics,
    /// Merged `Summary` patches.
    pub explicit: Metrics,
    /// Merged `Config` patches.
    pub config: Metrics,
}

impl State {
    /// The summary: the last value of every `Log` key, overridden by explicit `Summary` values.
    pub fn summary(mut self) -> Metrics {
        self.auto.extend(self.explicit);
        self.auto
    }
}

/// The state of `view`'s visible history (inherited prefix included).
pub(crate) fn state(cat: &Catalog, view: &VersionView) -> Result<State> {
    let mut out = State::default();
    for piece in plan(cat, view, false)? {
        let (own, _) = own_state(cat, &piece.view, piece.cut, piece.cap)?;
        if own.auto.is_empty() && own.summary.is_empty() && own.config.is_empty() {
            continue;
        }
        let need = own.auto.keys().chain(own.summary.keys()).chain(own.config.keys()).max().copied();
        let keys = cat.keys(&piece.view, need)?;
        let name = |id: u32| -> Result<Key> {
            keys.get(id as usize).cloned().ok_or_else(|| {
                Error::corrupt(piece.view.keys_path(), 0, format!("an event uses key #{id}, which the key table lacks"))
            })
        };
        for (id, (_, v)) in own.auto {
            out.auto.insert(name(id)?, v);
        }
        for (id, v) in own.summary {
            out.explicit.insert(name(id)?, v);
        }
        for (id, v) in own.config {
            out.config.insert(name(id)?, v);
        }
    }
    Ok(out)
}
