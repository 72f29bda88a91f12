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
use crate::meta::RunMeta;
use crate::replay::plan;
use crate::value::{Key, Metrics};
use crate::zonemap::{own_state, OwnState};

/// The merged state of a visible history, by key name.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Last `Log` value of every key.
    pub auto: Metrics,
    /// Merged `Summary` patches.
    pub explicit: Metrics,
    /// Merged `Config` patches.
    pub config: Metrics,
    /// The run's metadata (every `Meta` patch applied in order).
    pub meta: RunMeta,
}

impl State {
    /// The summary: the last value of every `Log` key, overridden by explicit `Summary` values.
    pub(crate) fn summary(mut self) -> Metrics {
        self.auto.extend(self.explicit);
        self.auto
    }
}

/// The state of `view`'s visible history (inherited prefix included).
pub(crate) fn state(cat: &Catalog, view: &VersionView) -> Result<State> {
    state_with_tail(cat, view, None)
}

/// [`state`] of a version a writer of this process is live on: `tail` is its copy of the buffered events,
/// taken before `view` was listed. The disk is read up to where the writer's data ended when the copy was
/// taken (snapshots and records where the zone maps have them, the unsynced frames past them decoded), then
/// the copy's events are applied.
pub(crate) fn state_with_tail(cat: &Catalog, view: &VersionView, tail: Option<&crate::replay::Tail>) -> Result<State> {
    let mut out = State::default();
    let mut pieces = plan(cat, view, false)?;
    crate::replay::cut_at_tail(&mut pieces, view, tail);
    for piece in pieces {
        let (own, _) = own_state(cat, &piece.view, piece.cut, piece.cap)?;
        let need = own.auto.keys().chain(own.summary.keys()).chain(own.config.keys()).max().copied();
        let keys = match need {
            Some(_) => cat.keys(&piece.view, need)?,
            None => Default::default(),
        };
        merge(&mut out, own, &keys, &piece.view)?;
    }
    if let Some(t) = tail {
        merge(&mut out, tail_state(view, t)?, &t.keys, view)?;
    }
    Ok(out)
}

/// The own state of a writer's buffered events.
pub(crate) fn tail_state(view: &VersionView, t: &crate::replay::Tail) -> Result<OwnState> {
    let mut own = OwnState::default();
    let payload = t.frame.get(crate::format::FRAME_HEADER_LEN..).unwrap_or_default();
    let bad = |e: crate::codec::DecodeError| Error::corrupt(view.seg_path(t.seq), t.offset, e.0);
    let mut d = crate::codec::PayloadDecoder::for_format(payload, t.format).map_err(bad)?;
    while let Some(r) = d.next_event() {
        own.event(&r.map_err(bad)?.0);
    }
    Ok(own)
}

/// The state of a root version (no inherited prefix) whose own state is `own`.
pub(crate) fn state_of_root(cat: &Catalog, view: &VersionView, own: OwnState) -> Result<State> {
    let mut out = State::default();
    let need = own.auto.keys().chain(own.summary.keys()).chain(own.config.keys()).max().copied();
    let keys = match need {
        Some(_) => cat.keys(view, need)?,
        None => Default::default(),
    };
    merge(&mut out, own, &keys, view)?;
    Ok(out)
}

/// Merges the own state of a piece (key ids of `keys`, the key table of `view`) into `out`.
fn merge(out: &mut State, own: OwnState, keys: &[Key], view: &VersionView) -> Result<()> {
    out.meta.apply(&own.meta);
    let name = |id: u32| -> Result<Key> {
        keys.get(id as usize).cloned().ok_or_else(|| {
            Error::corrupt(view.keys_path(), 0, format!("an event uses key #{id}, which the key table lacks"))
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
    Ok(())
}

/// The metadata of `view`'s visible history from the snapshots (like [`state`]); pieces whose version surely
/// holds no `Meta` event (`none`) are not read at all.
pub(crate) fn meta(cat: &Catalog, view: &VersionView, none: impl Fn(&VersionView) -> bool) -> Result<RunMeta> {
    let mut out = RunMeta::default();
    for piece in plan(cat, view, false)? {
        if none(&piece.view) {
            continue;
        }
        let (own, _) = own_state(cat, &piece.view, piece.cut, piece.cap)?;
        out.apply(&own.meta);
    }
    Ok(out)
}
