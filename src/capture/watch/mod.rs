//! Waking the readers of files (files-mode followers, the host-files thread) on inotify
//! instead of polling. One [`Watcher`] per run owns a single inotify instance (one FD
//! whatever the number of containers: `fs.inotify.max_user_instances` defaults to 128 per
//! user) and one thread that blocks on its events and raises the [`Wake`] of every reader
//! whose directory changed. A reader watches a DIRECTORY (a container's log directory, a
//! host file's directory; one inotify watch each), so a rename, a new file or a deletion
//! is seen as well as a write. Readers still look again every [`RECHECK`] so nothing is
//! ever missed; an event queue overflow (`IN_Q_OVERFLOW`) wakes every reader for a full
//! look. When inotify is unavailable (no inotify, `max_user_instances` reached) or a
//! watch cannot be added (`fs.inotify.max_user_watches` reached), that reader polls as
//! before: logged once, counted in `log_capturer_inotify_fallbacks_total` (README,
//! "Files mode").

mod hub;
#[cfg(test)]
mod tests;
mod wake;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use hub::{Watch, Watcher};
pub use wake::{Wake, Woken};

/// How often a watched reader looks again with no event: the safety net for anything
/// inotify does not report (e.g. a file replaced on another mount, a lost event).
/// Each look costs a wake-up: 10 s keeps a thousand idle followers at 100 a second.
pub const RECHECK: Duration = Duration::from_secs(10);

/// A handle to add watches through (cheap to clone); polling only when inotify is
/// unavailable.
#[derive(Clone)]
pub struct Watching {
    hub: Option<Arc<hub::Hub>>,
    /// Why there is no inotify, when there is none.
    why_not: Arc<str>,
    fallbacks: prometheus::IntCounter,
    /// A fallback was logged as a warning (later ones are debug-level).
    warned: Arc<AtomicBool>,
}

impl Watching {
    /// Without inotify: every watch asked for falls back to polling (and is counted).
    /// For a failed inotify start, and for tests of the polling path.
    pub fn unavailable(why: &str, fallbacks: prometheus::IntCounter) -> Watching {
        Watching {
            hub: None,
            why_not: Arc::from(why),
            fallbacks,
            warned: Arc::default(),
        }
    }

    /// Watches directory `dir` for `wake`'s reader; `None`: the reader must poll (logged
    /// once, counted). `who` names the reader in the log line.
    pub fn watch(&self, dir: &Path, wake: &Arc<Wake>, who: &str) -> Option<Watch> {
        self.watch_first(&[dir], wake, who).map(|(w, _)| w)
    }

    /// Watches the first of `paths` that can be watched (a directory, or a file: then
    /// only its writes, renames and deletion are seen), and says which; `None`: the reader
    /// must poll (logged once, counted).
    pub fn watch_first(
        &self,
        paths: &[&Path],
        wake: &Arc<Wake>,
        who: &str,
    ) -> Option<(Watch, usize)> {
        let why = match &self.hub {
            Some(hub) => {
                let mut last = None;
                for (i, path) in paths.iter().enumerate() {
                    match hub.subscribe(path, wake) {
                        Ok(w) => return Some((w, i)),
                        Err(e) => last = Some((path, e)),
                    }
                }
                match last {
                    // ENOSPC from inotify_add_watch(2).
                    Some((_, e)) if e.raw_os_error() == Some(28) => {
                        "fs.inotify.max_user_watches reached".to_owned()
                    }
                    Some((path, e)) => format!("cannot watch {}: {e}", path.display()),
                    None => "nothing to watch".to_owned(),
                }
            }
            None => self.why_not.to_string(),
        };
        self.fallbacks.inc();
        if self.warned.swap(true, Ordering::Relaxed) {
            log::debug!("{who}: {why}; polling instead of inotify");
        } else {
            log::warn!(
                "{who}: {why}; polling instead of inotify (logged once; \
                 log_capturer_inotify_fallbacks_total counts every reader that polls)"
            );
        }
        None
    }
}

#[cfg(test)]
impl Watching {
    /// How many readers are watching (tests: the reader did take the inotify path).
    pub fn readers(&self) -> usize {
        self.hub.as_ref().map_or(0, |h| h.readers())
    }
}

impl std::fmt::Debug for Watching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.hub {
            Some(_) => f.write_str("Watching(inotify)"),
            None => write!(f, "Watching(polling: {})", self.why_not),
        }
    }
}
