//! The directories the host-files thread watches with inotify: the directory of every
//! followed file, and every existing directory a pattern's files can appear in (the
//! pattern's parent, itself expanded: `/var/log/*/app.log` watches each `/var/log/*`).
//! A write there wakes the thread for a round at once; a new name there also re-expands
//! the globs. A directory that appears where none was is found by the round every
//! `recheck`. Any directory that cannot be watched puts the thread back on polling.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::capture::watch::{self, Wake, Watch, Watching};

/// Directories watched at most: more (a `**` over a large tree) means polling instead.
pub const MAX_DIRS: usize = 1024;

/// The thread's watches, kept equal to the directories its files live in.
#[derive(Default)]
pub struct Watched {
    dirs: BTreeMap<PathBuf, Watch>,
    /// Some directory could not be watched (or there were too many): poll.
    polling: bool,
    /// Too many directories was logged.
    warned: bool,
    /// Directories that could not be watched, tried again only from `retry_at` (each
    /// try is counted as a fallback).
    failed: BTreeSet<PathBuf>,
    retry_at: Option<Instant>,
}

impl Watched {
    /// Whether every directory is watched, so the thread may sleep until an event.
    pub fn complete(&self) -> bool {
        !self.polling && !self.dirs.is_empty()
    }

    /// Drops every watch (one was lost): the next update adds them again.
    pub fn forget(&mut self) {
        self.dirs.clear();
    }

    /// Watches exactly `wanted` (what [`wanted_dirs`] gives); true when a watch was
    /// added (what was written there before it was added raised no event: look again).
    pub fn update(
        &mut self,
        watching: &Watching,
        wake: &Arc<Wake>,
        wanted: BTreeSet<PathBuf>,
    ) -> bool {
        if wanted.len() > MAX_DIRS {
            if !self.warned {
                self.warned = true;
                log::warn!(
                    "files.paths: {} directories to watch (over {MAX_DIRS}); polling them",
                    wanted.len()
                );
            }
            self.dirs.clear();
            self.polling = true;
            return false;
        }
        self.dirs.retain(|d, _| wanted.contains(d));
        self.failed.retain(|d| wanted.contains(d));
        let now = Instant::now();
        let retry = self.retry_at.is_none_or(|t| now >= t);
        self.polling = false;
        let mut added = false;
        for dir in wanted {
            if self.dirs.contains_key(&dir) {
                continue;
            }
            if !retry && self.failed.contains(&dir) {
                self.polling = true;
                continue;
            }
            match watching.watch(&dir, wake, "files") {
                Some(w) => {
                    self.failed.remove(&dir);
                    self.dirs.insert(dir, w);
                    added = true;
                }
                None => {
                    self.failed.insert(dir);
                    self.polling = true;
                }
            }
        }
        if retry && !self.failed.is_empty() {
            self.retry_at = Some(now + watch::RECHECK);
        }
        added
    }
}

/// The existing directories of `files` and of the patterns' parents (expanded).
pub fn wanted_dirs<'a>(
    patterns: &[String],
    files: impl Iterator<Item = &'a str>,
) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    for pattern in patterns {
        let Some(parent) = Path::new(pattern).parent().and_then(Path::to_str) else {
            continue;
        };
        if let Ok(entries) = glob::glob(parent) {
            // One past the cap is enough to know it is over.
            for dir in entries.filter_map(Result::ok).take(MAX_DIRS + 1) {
                dirs.insert(dir);
            }
        }
    }
    dirs.extend(files.filter_map(|f| Path::new(f).parent().map(Path::to_path_buf)));
    dirs.retain(|d| d.is_dir());
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patterns_parents_are_expanded_and_the_files_directories_added() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in ["a", "b", "c", "other"] {
            std::fs::create_dir(r.join(d)).unwrap();
        }
        std::fs::write(r.join("a").join("not-a-dir"), "").unwrap();
        let patterns = [format!("{}/[ab]/*.log", r.display())];
        let file = format!("{}/c/x.log", r.display());
        let missing = format!("{}/gone/x.log", r.display());
        let dirs = wanted_dirs(&patterns, [file.as_str(), missing.as_str()].into_iter());
        let want: BTreeSet<PathBuf> = ["a", "b", "c"].iter().map(|d| r.join(d)).collect();
        assert_eq!(dirs, want);
    }
}
