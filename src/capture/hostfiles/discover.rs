//! Finding files: expanding the globs, and deciding where a file the thread starts
//! following is read from (its acknowledged position, its end on a first run, or its
//! start), including finishing `<path>.1` when the file was rotated while we were down.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::start::{self, FileId, Found, Start};
use super::tail::{self, Tailed};
use super::{warn_once, HostFiles, State, Stop, MAX_READ_PER_POLL};
use crate::capture::record::{FilePos, HostFileMeta};

impl HostFiles {
    /// Expands the globs and starts following the files not followed yet.
    pub(super) fn discover(&self, st: &mut State) -> Result<bool, Stop> {
        let mut busy = false;
        for pattern in &self.patterns {
            let entries = match glob::glob(pattern) {
                Ok(entries) => entries,
                Err(e) => {
                    warn_once(
                        &mut st.warned,
                        pattern,
                        format_args!("files.paths {pattern:?}: {e}"),
                    );
                    continue;
                }
            };
            // Unreadable directories (`GlobError`) are skipped, like `ls` would.
            for path in entries.filter_map(Result::ok) {
                let key = path.to_string_lossy().into_owned();
                if st.files.contains_key(&key) || !path.is_file() {
                    continue;
                }
                match File::open(&path) {
                    Ok(file) => busy |= self.track(st, key, &path, file, None)?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => warn_once(
                        &mut st.warned,
                        &key,
                        format_args!("cannot open {key}: {e}; retrying quietly"),
                    ),
                }
            }
        }
        Ok(busy)
    }

    /// Starts following `file`, just opened at `path`: decides where from, reads it.
    pub(super) fn track(
        &self,
        st: &mut State,
        key: String,
        path: &Path,
        file: File,
        meta: Option<Arc<HostFileMeta>>,
    ) -> Result<bool, Stop> {
        let found = match file.metadata() {
            Ok(m) => tail::found(&m),
            Err(e) => {
                warn_once(&mut st.warned, &key, format_args!("{key}: {e}"));
                return Ok(false);
            }
        };
        if st.held(found.id) {
            log::debug!("{key}: held by the rotation wait of the path it was rotated from");
            return Ok(false);
        }
        let meta = meta.unwrap_or_else(|| Arc::new(HostFileMeta::new(&key, self.host.clone())));
        let offset = match st.retired.get(&found.id).map(Tailed::offset) {
            Some(offset) if found.len >= offset => offset,
            Some(_) => 0,
            None if st.seen.contains(&key) => {
                // Another file where we followed one this run: a rotation by rename (seen
                // as such, or as a deletion when the path was looked at in between).
                self.metrics.file_rotations.inc();
                0
            }
            None => self.first_start(st, &key, path, &meta, found)?,
        };
        let shaping = self.shaping_for(&meta.path);
        let mut t = match Tailed::new(file, meta, found.id, offset, self.max_line_bytes, shaping) {
            Ok(t) => t,
            Err(e) => {
                warn_once(&mut st.warned, &key, format_args!("{key}: {e}"));
                return Ok(false);
            }
        };
        st.warned.remove(&key);
        st.gone.remove(&key);
        st.seen.insert(key.clone());
        let busy = self.drain(st, &mut t, MAX_READ_PER_POLL)?;
        st.files.insert(key, t);
        Ok(busy)
    }

    /// Where a file this run has not followed yet starts (see [`start::decide`]); a file
    /// rotated to `<path>.1` while we were down is finished first.
    fn first_start(
        &self,
        st: &mut State,
        key: &str,
        path: &Path,
        meta: &Arc<HostFileMeta>,
        found: Found,
    ) -> Result<u64, Stop> {
        let saved = self.positions.get_file(key);
        let mut old_path = path.as_os_str().to_owned();
        old_path.push(".1");
        let old_path = PathBuf::from(old_path);
        let old = match saved {
            Some(s) if FileId::of(&s) != found.id => File::open(&old_path)
                .and_then(|f| Ok((tail::found(&f.metadata()?), f)))
                .ok(),
            _ => None,
        };
        let at_end = self.first_run && !st.expanded;
        let mut start = start::decide(saved, found, old.as_ref().map(|o| o.0), at_end);
        if let Start::Resume(offset) = start {
            // A saved offset is just past a newline. If the byte before it is not one, the
            // inode number now belongs to another file (the old one was deleted).
            if !after_newline(path, offset) {
                log::warn!(
                    "{key}: its position does not fall after a line end: another file got \
                     the old one's inode number; reading it from its start"
                );
                start = Start::Beginning;
            }
        }
        match start {
            Start::Resume(_) | Start::Beginning => {}
            Start::End => self.skip_old_content(meta, found),
            Start::Truncated => {
                log::info!("{key}: truncated while stopped; reading it from its start")
            }
            Start::Replaced => log::warn!(
                "{key}: replaced while stopped and the old file is not at {key}.1: lines written \
                 to the old one since the last acknowledged line may be missed"
            ),
            Start::AfterRotated(offset) => {
                if let Some((old_found, file)) = old {
                    log::info!("{key}: rotated while stopped; finishing {key}.1 first");
                    self.metrics.file_rotations.inc();
                    let tailed = Tailed::new(
                        file,
                        meta.clone(),
                        old_found.id,
                        offset,
                        self.max_line_bytes,
                        self.shaping_for(&meta.path),
                    );
                    match tailed {
                        Ok(mut t) => {
                            self.drain_to_end(st, &mut t)?;
                            t.flush(&mut st.out);
                            self.send(&mut st.out)?;
                            st.retired.insert(t.id(), t);
                        }
                        Err(e) => log::warn!("{key}.1: {e}; its unread lines are skipped"),
                    }
                }
            }
        }
        Ok(start.offset(found.len))
    }

    /// Reads `<path>.1`, found rotated when a run starts, up to the size it has now. Unlike
    /// a rotation seen while running, no writer is waited for: it happened while we were
    /// down, most likely longer than `ROTATE_WAIT` ago.
    fn drain_to_end(&self, st: &mut State, t: &mut Tailed) -> Result<(), Stop> {
        let left = t
            .size()
            .map_or(1, |len| len.saturating_sub(t.offset()).max(1));
        self.drain(st, t, left).map(|_| ())
    }

    /// Records that a file present at the first start is followed from its end, so a later
    /// run does not ship its old content after all when no line came meanwhile.
    fn skip_old_content(&self, meta: &Arc<HostFileMeta>, found: Found) {
        if found.len == 0 {
            return;
        }
        self.positions.start_file_at(
            &meta.path,
            FilePos {
                dev: found.id.dev,
                ino: found.id.ino,
                offset: found.len,
            },
        );
    }

    /// Forgets the positions of deleted files whose last record was acknowledged.
    pub(super) fn forget_gone(&self, st: &mut State) {
        st.gone.retain(|path, last| {
            let saved = self.positions.get_file(path);
            let done = saved.is_none_or(|s| s == *last);
            if done {
                self.positions.forget_file(path);
            }
            !done
        });
    }
}

/// Whether `offset` is 0 or just past a `\n` in the file at `path`.
fn after_newline(path: &Path, offset: u64) -> bool {
    use std::os::unix::fs::FileExt;
    if offset == 0 {
        return true;
    }
    let mut byte = [0u8; 1];
    File::open(path)
        .and_then(|f| f.read_exact_at(&mut byte, offset - 1))
        .is_ok_and(|()| byte[0] == b'\n')
}
