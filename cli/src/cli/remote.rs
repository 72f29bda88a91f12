//! `--store s3://BUCKET/PREFIX --cache DIR`: commands on a store kept in object storage (cargo feature
//! `remote`, on by default). The store is opened in the cache directory through `forklog-remote`; after the
//! command every outstanding upload is waited for.

use std::path::{Path, PathBuf};
#[cfg(feature = "remote")]
use std::sync::Mutex;

use forklog::Store;

use super::CliError;

/// The remote of this command, if `--store` named one (one command runs at a time per process).
#[cfg(feature = "remote")]
static REMOTE: Mutex<Option<forklog_remote::Remote>> = Mutex::new(None);

#[cfg(feature = "remote")]
fn current() -> Option<forklog_remote::Remote> {
    REMOTE.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Where a command's store lives: a directory, or a remote store's cache directory.
pub struct Session {
    dir: PathBuf,
    remote: bool,
}

/// True when `store` is a URL (`s3://...`, `file://...`, `memory://...`) rather than a directory.
pub fn is_url(store: &Path) -> bool {
    store.to_str().is_some_and(|s| s.contains("://"))
}

/// Connects to the remote store named by `store` (with `cache`), or passes a directory through.
pub fn connect(store: &Path, cache: Option<&Path>) -> Result<Session, CliError> {
    if !is_url(store) {
        return Ok(Session { dir: store.to_path_buf(), remote: false });
    }
    #[cfg(not(feature = "remote"))]
    {
        let _ = cache;
        Err(CliError::new(format!(
            "{}: this build of forklog has no remote stores (cargo feature `remote`)",
            store.display()
        )))
    }
    #[cfg(feature = "remote")]
    {
        let url = store.to_string_lossy();
        let cache = cache
            .ok_or_else(|| CliError::new(format!("{url}: a remote store needs --cache DIR (or FORKLOG_CACHE)")))?;
        let remote = forklog_remote::open_remote(&url, cache, forklog_remote::RemoteOptions::default())
            .map_err(CliError::new)?;
        let dir = remote.cache_dir().to_path_buf();
        *REMOTE.lock().unwrap_or_else(|p| p.into_inner()) = Some(remote);
        Ok(Session { dir, remote: true })
    }
}

impl Session {
    /// The store directory the commands open.
    pub fn dir(&self) -> PathBuf {
        self.dir.clone()
    }

    /// Waits for every upload of the command (a no-op for a local store).
    pub fn finish(self) -> Result<(), CliError> {
        #[cfg(feature = "remote")]
        if self.remote {
            if let Some(r) = current() {
                r.sync().map_err(CliError::new)?;
            }
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        #[cfg(feature = "remote")]
        if self.remote {
            *REMOTE.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

/// Opens the store in `dir` with `opts`, through the remote tier when `dir` is the remote's cache.
pub fn open_with(dir: &Path, opts: forklog::Options) -> Result<Store, forklog::Error> {
    #[cfg(feature = "remote")]
    if let Some(r) = current() {
        if dir == r.cache_dir() {
            return Store::open_with(dir, r.options(opts));
        }
    }
    Store::open_with(dir, opts)
}

/// Names the object instead of the cached file in a corruption error of a remote store.
pub fn name_object(e: forklog::Error) -> forklog::Error {
    #[cfg(feature = "remote")]
    if let Some(r) = current() {
        return r.name_object(e);
    }
    e
}
