//! Rotation by rename, and deletion, of a followed file. The writer appends to the old file
//! until it reopens the path (logrotate's `postrotate` signal comes after the rename), so
//! the old file stays the path's source, read like a live file, until it has not grown for
//! [`ROTATE_WAIT`]; only then is its last text without a newline a line, and the next file
//! read from its start. Reading stays sequential, so positions stay one chain per path.
//!
//! The next file is not opened during the wait (one fd per path), only `stat`ed: when the
//! path is rotated again meanwhile, the wait ends at once and the file in between is read
//! from `<path>.1` before the one at the path.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::start::FileId;
use super::tail::{self, Tailed};
use super::{warn_once, HostFiles, State, Stop, ROTATE_WAIT};

/// What is known of a followed file the path no longer names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaving {
    /// When it was found left, or last grew.
    idle_since: Instant,
    /// The first file seen at the path since: the next one to read.
    next: Option<FileId>,
}

impl Leaving {
    /// Updates `was` (what was known of `current`) from what the path names now: `at_path`
    /// is `None` when it could not be looked at. `None` while the path names `current`.
    pub fn observe(
        was: Option<Leaving>,
        current: FileId,
        at_path: Option<Option<FileId>>,
        now: Instant,
    ) -> Option<Leaving> {
        let Some(at_path) = at_path else {
            return was;
        };
        if at_path == Some(current) {
            return None;
        }
        let mut l = was.unwrap_or(Leaving {
            idle_since: now,
            next: None,
        });
        l.next = l.next.or(at_path);
        Some(l)
    }

    /// The old file gained bytes: the writer is still on it.
    pub fn grew(&mut self, now: Instant) {
        self.idle_since = now;
    }

    /// Whether to read the next file now: the old one was idle long enough, or the path
    /// was rotated again (the next file moved on too and must not be lost).
    pub fn is_over(&self, at_path: Option<Option<FileId>>, now: Instant) -> bool {
        let again = matches!(at_path, Some(id) if self.next.is_some() && id != self.next);
        again || now.saturating_duration_since(self.idle_since) >= ROTATE_WAIT
    }

    pub fn next(&self) -> Option<FileId> {
        self.next
    }
}

impl HostFiles {
    /// The writer left `t`, followed for `path`: its last text without a newline is a line
    /// (the writer will not finish it), and the next file is followed from its start, or
    /// the path recorded as gone.
    pub(super) fn switch(
        &self,
        st: &mut State,
        path: String,
        mut t: Tailed,
        next: Option<FileId>,
        now: Instant,
    ) -> Result<bool, Stop> {
        t.flush(&mut st.out);
        self.send(&mut st.out)?;
        let (meta, last) = (t.meta().clone(), t.last_emitted());
        st.retired.insert(t.id(), t);
        let key = PathBuf::from(&path);
        match open_next(&path, &key, next) {
            Ok((file, at)) if at == key => {
                log::info!("{path}: rotated; following the new file from its start");
                self.track(st, path, &key, file, Some(meta))
            }
            Ok((file, at)) => {
                log::info!("{path}: rotated again; reading {} first", at.display());
                let busy = self.track(st, path.clone(), &at, file, Some(meta))?;
                let moved_on = st
                    .files
                    .get(&path)
                    .map(Tailed::id)
                    .and_then(|id| Leaving::observe(None, id, tail::id_at(&key).ok(), now));
                if let Some(l) = moved_on {
                    st.leaving.insert(path, l);
                }
                Ok(busy)
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::NotFound {
                    log::info!("{path}: gone (deleted, or renamed and not created again)");
                } else {
                    warn_once(
                        &mut st.warned,
                        &path,
                        format_args!("cannot open {path}: {e}"),
                    );
                }
                // Its position is forgotten once its last record is acknowledged (an ack
                // in flight would write it back); until then a new file there is new anyway.
                match last {
                    Some(pos) => {
                        st.gone.insert(path, pos);
                    }
                    None => self.positions.forget_file(&path),
                }
                Ok(false)
            }
        }
    }
}

/// Opens the file to read after a rotation of `key`: `next` (seen at the path during the
/// wait) if it is still there or at `<path>.1`; else whatever the path names now.
fn open_next(path: &str, key: &Path, next: Option<FileId>) -> io::Result<(File, PathBuf)> {
    let open = |p: &Path| -> io::Result<(File, FileId)> {
        let file = File::open(p)?;
        let id = tail::found(&file.metadata()?).id;
        Ok((file, id))
    };
    let at_path = open(key);
    let Some(next) = next else {
        return at_path.map(|(file, _)| (file, key.to_path_buf()));
    };
    match at_path {
        Ok((file, id)) if id == next => return Ok((file, key.to_path_buf())),
        _ => {}
    }
    let rotated = PathBuf::from(format!("{path}.1"));
    if let Ok((file, id)) = open(&rotated) {
        if id == next {
            return Ok((file, rotated));
        }
    }
    log::warn!(
        "{path}: the file that replaced the rotated one is gone too, and not at {path}.1: \
         lines written to it may be missed"
    );
    at_path.map(|(file, _)| (file, key.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn id(ino: u64) -> FileId {
        FileId { dev: 1, ino }
    }

    #[test]
    fn the_wait_starts_when_the_path_names_another_file_or_none() {
        let t0 = Instant::now();
        assert_eq!(Leaving::observe(None, id(1), Some(Some(id(1))), t0), None);
        assert_eq!(Leaving::observe(None, id(1), None, t0), None, "stat failed");
        let gone = Leaving::observe(None, id(1), Some(None), t0).unwrap();
        assert_eq!(gone.next(), None);
        // The first file seen at the path is the next one.
        let t1 = t0 + Duration::from_millis(250);
        let l = Leaving::observe(Some(gone), id(1), Some(Some(id(2))), t1).unwrap();
        assert_eq!(l.next(), Some(id(2)));
        assert_eq!(l.idle_since, t0);
        let l = Leaving::observe(Some(l), id(1), Some(Some(id(3))), t1).unwrap();
        assert_eq!(l.next(), Some(id(2)));
    }

    #[test]
    fn the_wait_ends_after_rotate_wait_idle_or_at_once_when_rotated_again() {
        let t0 = Instant::now();
        let mut l = Leaving::observe(None, id(1), Some(Some(id(2))), t0).unwrap();
        let at_path = Some(Some(id(2)));
        assert!(!l.is_over(at_path, t0 + ROTATE_WAIT / 2));
        l.grew(t0 + ROTATE_WAIT / 2);
        assert!(!l.is_over(at_path, t0 + ROTATE_WAIT));
        assert!(l.is_over(at_path, t0 + ROTATE_WAIT * 3 / 2));
        // Rotated again (another file, or none), or the path not looked at.
        assert!(l.is_over(Some(Some(id(3))), t0));
        assert!(l.is_over(Some(None), t0));
        assert!(!l.is_over(None, t0));
    }
}
