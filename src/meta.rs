//! Run metadata: a display name, tags, notes and a group ([`RunMeta`]), changed by [`MetaPatch`] events.
//!
//! Metadata is event-sourced like config: [`RunWriter::set_meta`](crate::RunWriter::set_meta) writes a
//! `Meta` event at the current step, and a run's metadata is every patch of its visible history applied in
//! order. So a fork inherits its parent's metadata as of the fork step, and a rewind drops the patches
//! written after the rewind step, exactly as it does with config.

use crate::error::{Error, Result};

/// Longest name, notes, group or tag, in bytes (a patch must also fit one event).
pub(crate) const MAX_META_LEN: usize = 1 << 16;

/// The metadata of a run as of its visible history: what trackers call the run's display name, tags, notes
/// and group (W&B `name`, `tags`, `notes`, `group`; MLflow's run name and tags). Empty for a run that never
/// set any (every run written by format version 1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunMeta {
    /// Display name (not unique; the run id is the identity).
    pub name: Option<String>,
    /// Tags, sorted and unique.
    pub tags: Vec<String>,
    /// Free-form notes.
    pub notes: Option<String>,
    /// The group the run belongs to (e.g. one sweep).
    pub group: Option<String>,
}

impl RunMeta {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.tags.is_empty() && self.notes.is_none() && self.group.is_none()
    }

    /// True when the run has tag `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.binary_search_by(|t| t.as_str().cmp(tag)).is_ok()
    }

    /// Applies `patch`: set fields replace (an empty string clears), tags are added then untags removed.
    pub fn apply(&mut self, patch: &MetaPatch) {
        let set = |field: &mut Option<String>, v: &Option<String>| {
            if let Some(v) = v {
                *field = (!v.is_empty()).then(|| v.clone());
            }
        };
        set(&mut self.name, &patch.name);
        set(&mut self.notes, &patch.notes);
        set(&mut self.group, &patch.group);
        for t in &patch.tags {
            if let Err(at) = self.tags.binary_search(t) {
                self.tags.insert(at, t.clone());
            }
        }
        for t in &patch.untags {
            if let Ok(at) = self.tags.binary_search(t) {
                self.tags.remove(at);
            }
        }
    }
}

/// A change to a run's metadata, built with chained calls:
///
/// ```
/// use forklog::MetaPatch;
/// let patch = MetaPatch::new().name("lr sweep, 0.05").tag("sweep").tag("lr").untag("draft").group("sweep-3");
/// let cleared = MetaPatch::new().notes(""); // an empty string clears a field
/// # let _ = (patch, cleared);
/// ```
///
/// A field left out keeps its value; **a field set to the empty string is cleared**. Tagging and untagging
/// the same tag in one patch keeps the last call. Tags must be non-empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaPatch {
    pub(crate) name: Option<String>,
    pub(crate) notes: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) untags: Vec<String>,
}

impl MetaPatch {
    /// An empty patch (changes nothing).
    pub fn new() -> MetaPatch {
        MetaPatch::default()
    }

    /// Sets the display name (`""` clears it).
    pub fn name(mut self, name: impl Into<String>) -> MetaPatch {
        self.name = Some(name.into());
        self
    }

    /// Sets the notes (`""` clears them).
    pub fn notes(mut self, notes: impl Into<String>) -> MetaPatch {
        self.notes = Some(notes.into());
        self
    }

    /// Sets the group (`""` clears it).
    pub fn group(mut self, group: impl Into<String>) -> MetaPatch {
        self.group = Some(group.into());
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> MetaPatch {
        let tag = tag.into();
        self.untags.retain(|t| *t != tag);
        if !self.tags.contains(&tag) {
            self.tags.push(tag);
        }
        self
    }

    /// Removes a tag.
    pub fn untag(mut self, tag: impl Into<String>) -> MetaPatch {
        let tag = tag.into();
        self.tags.retain(|t| *t != tag);
        if !self.untags.contains(&tag) {
            self.untags.push(tag);
        }
        self
    }

    /// Composes `later` after this patch: applying the result equals applying this patch, then `later`
    /// (fields: the later one set wins; a tag ends in `tags` or `untags` by its last change). What zone maps
    /// keep of a stretch of `Meta` events (docs/FORMAT.md, Zone map).
    pub(crate) fn then(&mut self, later: &MetaPatch) {
        for (f, l) in [(&mut self.name, &later.name), (&mut self.notes, &later.notes), (&mut self.group, &later.group)]
        {
            if l.is_some() {
                f.clone_from(l);
            }
        }
        for t in &later.tags {
            self.untags.retain(|u| u != t);
            if !self.tags.contains(t) {
                self.tags.push(t.clone());
            }
        }
        for t in &later.untags {
            self.tags.retain(|u| u != t);
            if !self.untags.contains(t) {
                self.untags.push(t.clone());
            }
        }
    }

    /// The name this patch sets (`Some("")`: clears), if any.
    pub fn get_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The notes this patch sets (`Some("")`: clears), if any.
    pub fn get_notes(&self) -> Option<&str> {
        self.notes.as_deref()
    }

    /// The group this patch sets (`Some("")`: clears), if any.
    pub fn get_group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// The tags this patch adds.
    pub fn added_tags(&self) -> &[String] {
        &self.tags
    }

    /// The tags this patch removes.
    pub fn removed_tags(&self) -> &[String] {
        &self.untags
    }

    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.notes.is_none()
            && self.group.is_none()
            && self.tags.is_empty()
            && self.untags.is_empty()
    }

    /// Checks lengths and that tags are non-empty.
    pub(crate) fn check(&self) -> Result<()> {
        let fields = [("name", &self.name), ("notes", &self.notes), ("group", &self.group)];
        for (what, v) in fields {
            if let Some(v) = v {
                if v.len() > MAX_META_LEN {
                    return Err(Error::TooLarge { what, size: v.len() as u64, limit: MAX_META_LEN as u64 });
                }
            }
        }
        for t in self.tags.iter().chain(&self.untags) {
            if t.is_empty() {
                return Err(Error::Value { reason: "a tag must not be empty".into() });
            }
            if t.len() > MAX_META_LEN {
                return Err(Error::TooLarge { what: "tag", size: t.len() as u64, limit: MAX_META_LEN as u64 });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_apply_in_order() {
        let mut m = RunMeta::default();
        m.apply(&MetaPatch::new().name("a").tag("z").tag("b").tag("z").notes("n"));
        assert_eq!(m.name.as_deref(), Some("a"));
        assert_eq!(m.tags, ["b", "z"]);
        m.apply(&MetaPatch::new().untag("z").tag("c").name("").group("g"));
        assert_eq!(
            m,
            RunMeta {
                name: None,
                tags: vec!["b".into(), "c".into()],
                notes: Some("n".into()),
                group: Some("g".into())
            }
        );
        assert!(m.has_tag("c") && !m.has_tag("z"));
        // The last call for a tag wins.
        let p = MetaPatch::new().tag("x").untag("x");
        assert!(p.added_tags().is_empty() && p.removed_tags() == ["x"]);
        assert!(MetaPatch::new().tag("").check().is_err());
    }
}
