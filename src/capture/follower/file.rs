//! The file source (`read_from = "files" | "auto"`): the container's json-file
//! log is read straight from disk, so dockerd does no work for us. The log is opened the
//! moment the follower starts, so a container removed right after is still read to its
//! end (the open file outlives the name). The follower sleeps until inotify reports a
//! change in the log's directory (a write, a rotation: `capture::watch`), the supervisor
//! wakes it (stop, container exited), or `watch::RECHECK` passed; where inotify falls
//! back it polls (2 ms .. 250 ms, doubling while idle), and so does a busy follower (one
//! that keeps finding data) until its log was quiet for two polls (6 ms). It follows
//! rotation by identity (device, inode: finish the old file, then the next one of the
//! chain), handles truncation, and ends once the supervisor says the container exited and
//! the log is read to its end. Records and positions are the same as in API mode; positions also carry
//! the file and offset, so a restart resumes exactly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::context::{Context, EndReason, FollowerOutcome, QueueClosed, StartFrom};
use crate::capture::decode::LogDecoder;
use crate::capture::jsonfile::{parse_entry, quick_time};
use crate::capture::logfile::{LogFile, LogPaths, Member};
use crate::capture::record::{ContainerId, ContainerMeta, FilePos, Record};
use crate::capture::timestamp::Timestamp;
use crate::capture::watch::{Watch, Watching};
use crate::docker::client::DockerClient;

const POLL_MIN: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(250);
/// Listings without the file in hand before it counts as deleted, not mid-rename.
const GONE_AFTER: u32 = 5;
/// Records sent to the queue at once, at most.
const SEND_EVERY: usize = 1024;
/// Reads in a row that found data before a watched follower drops its watch until it has
/// caught up (see `follow`).
const BUSY_READS: u32 = 2;
/// A follower that dropped its watch while busy polls (from `POLL_MIN`, doubling) until
/// its poll interval reached this, i.e. its log was quiet for two polls (2 + 4 ms), then
/// takes its watch again.
const WATCH_AGAIN_AFTER: Duration = Duration::from_millis(8);

/// A container whose json-file log could be opened.
pub struct OpenedLog {
    pub paths: LogPaths,
    pub current: LogFile,
}

/// Opens a container's current json-file log, if it has one we can read. The path is
/// built from the ID, so anything but a Docker ID (64 hex digits) is refused: no `..`
/// can lead it out of `<docker_root>/containers`.
pub fn open_log(root: &std::path::Path, id: &str) -> std::io::Result<OpenedLog> {
    if !ContainerId::is_docker_id(id) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{id:?} is not a container ID"),
        ));
    }
    let paths = LogPaths::new(root, id);
    let current = LogFile::open(paths.current())?;
    Ok(OpenedLog { paths, current })
}

/// Where reading goes next when the file in hand is read to its end.
enum Next {
    /// Nothing newer: the file in hand is the live one.
    Stay,
    /// The next file of the chain, opened.
    Open(LogFile),
    /// The chain is being rotated right now: look again soon.
    Retry,
}

/// Filters applied before the decoder, like dockerd applies `since` and `tail`.
struct Filters {
    since: Option<Timestamp>,
    /// Entries still to drop to honour `tail:N`.
    drop_first: u64,
}

/// One container's logs, read from its json-file log.
pub(super) struct FileSource<'a> {
    pub ctx: &'a Context,
    /// For the one inspect call when `config.v2.json` cannot be read.
    pub client: &'a DockerClient,
    /// inotify on the log's directory; `None`: poll.
    pub watching: Option<&'a Watching>,
    /// How long a watched, settled follower sleeps with no event.
    pub recheck: Duration,
}

impl FileSource<'_> {
    /// Reads the container's log from disk until it exited and is read to its end.
    pub fn follow(&self, log: OpenedLog) -> FollowerOutcome {
        let ctx = self.ctx;
        let tty = self.tty_from_disk(&log.paths);
        let mut dec = LogDecoder::new(Some(tty), ctx.max_line_bytes, ctx.start.resume());
        let paths = log.paths.clone();
        let (mut file, mut filters) = match self.first_file(log, &mut dec) {
            Ok(x) => x,
            Err(e) => {
                log::warn!("follower {}: cannot read its log file: {e}", ctx.short());
                return FollowerOutcome {
                    reason: EndReason::Gone,
                    position: dec.position(),
                };
            }
        };
        ctx.stats.set_state("following-file");
        // Watched before the first read: nothing written from here on goes unnoticed.
        let mut watch = self.watch(&paths, None);
        let mut idle = POLL_MIN;
        let mut rotation_retries = 0u32;
        // A follower that keeps finding data needs no wake-up: its watch is dropped while
        // it is busy (a busy container's every write(2) would be an inotify event,
        // costing dockerd in its write path and us a wake-up per line or two: a flood
        // ran at 250k lines/s watched against 400k+ polled). Caught up, it polls as the
        // fallback does, which lets a busy log fill between reads, until two polls found
        // nothing (`WATCH_AGAIN_AFTER`); then it watches again and reads once more.
        let mut busy = 0u32;
        let mut paused = false;
        let mut rewatch_after: Option<Instant> = None;
        let reason = loop {
            if ctx.stopping() {
                break EndReason::Stopped;
            }
            if ctx.tick().is_err() {
                break EndReason::QueueClosed;
            }
            // Observed before reading: once the container exited, its log is complete.
            let exited = ctx.exited();
            // Settled: the live file is read to its end (nothing newer to move to).
            let settled = if idle > POLL_MIN && unchanged(&paths, &file) {
                // Idle: the live file has no byte we have not read. One stat per poll.
                true
            } else {
                match self.read_available(&mut file, &mut dec, &mut filters) {
                    Ok(0) => busy = 0,
                    Ok(_) => {
                        idle = POLL_MIN;
                        busy += 1;
                        if busy >= BUSY_READS && watch.take().is_some() {
                            paused = true;
                        }
                        continue;
                    }
                    Err(ReadEnd::QueueClosed) => break EndReason::QueueClosed,
                    Err(ReadEnd::Io(e)) => {
                        log::warn!(
                            "follower {}: reading {}: {e}",
                            self.ctx.short(),
                            file.path.display()
                        );
                        // Deliver what was read, open multiline records too, as the API
                        // source does when its container is gone.
                        let _ = ctx.flush(&mut dec);
                        break EndReason::Gone;
                    }
                }
                let settled = match self.next_file(&paths, &file, rotation_retries >= GONE_AFTER) {
                    Next::Open(next) => {
                        // The old file is complete once renamed: drain it once more, move on.
                        match self.read_to_end(&mut file, &mut dec, &mut filters) {
                            Ok(()) => {}
                            Err(ReadEnd::QueueClosed) => break EndReason::QueueClosed,
                            Err(ReadEnd::Io(e)) => log::warn!("follower {}: {e}", self.ctx.short()),
                        }
                        ctx.metrics.file_rotations.inc();
                        log::debug!(
                            "follower {}: rotated, now reading {}",
                            self.ctx.short(),
                            next.path.display()
                        );
                        file = next;
                        rotation_retries = 0;
                        if let Some(w) = watch.take() {
                            // A watch on the old file: move it to the new one (read next).
                            watch = self.watch(&paths, Some(w));
                        }
                        continue;
                    }
                    Next::Retry => {
                        rotation_retries += 1;
                        false
                    }
                    Next::Stay => {
                        rotation_retries = 0;
                        true
                    }
                };
                if !(exited && settled) {
                    match self.rewind_if_truncated(&mut file) {
                        Ok(false) => {}
                        Ok(true) => continue,
                        Err(()) => {
                            let _ = ctx.flush(&mut dec);
                            break EndReason::Gone;
                        }
                    }
                }
                settled
            };
            if exited && settled {
                break ctx.finish(&mut dec);
            }
            // Quiet again (and not mid-rotation; an exited container's log is complete:
            // it is read to its end by polling, its directory may be gone already).
            if paused
                && settled
                && !exited
                && idle >= WATCH_AGAIN_AFTER
                && rewatch_after.is_none_or(|t| Instant::now() >= t)
            {
                watch = self.watch(&paths, None);
                if watch.is_some() {
                    // Read once more for what was written before the watch was back.
                    paused = false;
                    rewatch_after = None;
                    idle = POLL_MIN;
                    continue;
                }
                // No watch now (e.g. `max_user_watches` reached for a moment): poll, and
                // try again after the re-check period (each failure is counted).
                rewatch_after = Some(Instant::now() + self.recheck);
            }
            if watch.is_some() {
                // Settled: sleep until an event; mid-rotation: look again soon.
                let woken = ctx.wake.wait(if settled { self.recheck() } else { idle });
                if woken.lost() {
                    log::debug!(
                        "follower {}: its directory's watch is gone; polling",
                        ctx.short()
                    );
                    watch = None;
                }
            } else if ctx.shutdown.wait_timeout(idle) {
                break EndReason::Stopped;
            }
            idle = (idle * 2).min(POLL_MAX);
        };
        ctx.stats.set_state(reason.as_str());
        FollowerOutcome {
            reason,
            position: ctx.resume_position(dec.position()),
        }
    }

    /// Watches the log's directory, or, where the directory cannot be read (Docker makes
    /// it 0710: a reader in group root only), the current log file, which then is watched
    /// again after each rotation: `was`, a watch held, is kept when it is the directory's.
    fn watch(&self, paths: &LogPaths, was: Option<LogWatch>) -> Option<LogWatch> {
        if let Some(w) = was.filter(|w| !w.on_file) {
            return Some(w);
        }
        let who = format!("follower {}", self.ctx.short());
        let candidates = [paths.dir(), paths.current()];
        let (watch, i) = self
            .watching?
            .watch_first(&candidates, &self.ctx.wake, &who)?;
        Some(LogWatch {
            _watch: watch,
            on_file: i > 0,
        })
    }

    /// How long a watched follower sleeps with no event: the safety re-check, or sooner
    /// while a multiline record waits for its timeout (`tick`).
    fn recheck(&self) -> Duration {
        if self.ctx.has_open_records() {
            self.recheck.min(POLL_MAX)
        } else {
            self.recheck
        }
    }

    /// Truncated in place (shorter than what was read): read it again from its start.
    /// `Err` when it cannot be rewound.
    fn rewind_if_truncated(&self, file: &mut LogFile) -> Result<bool, ()> {
        match file.size() {
            Ok(len) if len < file.position().offset => {
                log::info!(
                    "follower {}: {} was truncated; reading it from its start",
                    self.ctx.short(),
                    file.path.display()
                );
                file.seek(0).map(|()| true).map_err(|e| {
                    log::warn!("follower {}: {e}", self.ctx.short());
                })
            }
            _ => Ok(false),
        }
    }

    /// `Config.Tty` from Docker's `config.v2.json` beside the log (no API call); the API's
    /// inspect when that cannot be read.
    fn tty_from_disk(&self, paths: &LogPaths) -> bool {
        let from_file = std::fs::read(paths.config_v2()).ok().and_then(|b| {
            serde_json::from_slice::<crate::docker::types::ContainerInspect>(&b).ok()
        });
        if let Some(c) = from_file {
            return c.config.tty;
        }
        let id = self.ctx.meta().id.clone();
        match self.client.inspect(id.as_str()) {
            Ok(info) => info.config.tty,
            Err(e) => {
                log::warn!(
                    "follower {}: cannot tell whether it has a TTY ({e}); assuming not",
                    self.ctx.short()
                );
                false
            }
        }
    }

    /// Picks the file and offset reading starts at, and the filters that go with it.
    fn first_file(
        &self,
        log: OpenedLog,
        dec: &mut LogDecoder,
    ) -> std::io::Result<(LogFile, Filters)> {
        let mut filters = Filters {
            since: None,
            drop_first: 0,
        };
        let OpenedLog { paths, mut current } = log;
        match self.ctx.start {
            StartFrom::After(p) => {
                if let Some(fp) = p.file {
                    match open_at(&paths, current, fp) {
                        Some(mut f) if position_holds(&f, fp.offset, p.time) => {
                            f.seek(fp.offset)?;
                            dec.continue_from_resume();
                            return Ok((f, filters));
                        }
                        // The file was deleted (rotated out) and its inode number maybe
                        // given to a newer file: resume by time, like the API.
                        _ => log::warn!(
                            "follower {}: the log file of its position is gone; resuming by time",
                            self.ctx.short()
                        ),
                    }
                    current = LogFile::open(paths.current())?;
                }
                filters.since = Some(p.time);
                Ok((oldest(&paths, current), filters))
            }
            StartFrom::Since(t) => {
                filters.since = Some(t);
                Ok((oldest(&paths, current), filters))
            }
            StartFrom::Beginning => Ok((oldest(&paths, current), filters)),
            StartFrom::Tail(n) => {
                // Like dockerd, count the entries of the current file.
                let lines = current.count_lines()?;
                filters.drop_first = lines.saturating_sub(n);
                Ok((current, filters))
            }
        }
    }

    /// Where to go after `file`, read to its end. `gone_confirmed`: `file` was missing
    /// from several listings, so it was deleted, not caught mid-rename.
    fn next_file(&self, paths: &LogPaths, file: &LogFile, gone_confirmed: bool) -> Next {
        let before = identity(paths.current());
        if before == Some((file.dev, file.ino)) {
            return Next::Stay;
        }
        if before.is_none() && gone_confirmed {
            // No current log at all: the container was removed; nothing comes after.
            return Next::Stay;
        }
        let (chain, _) = paths.chain();
        // A rotation that completed while listing makes the listing unreliable.
        if before.is_none() || identity(paths.current()) != before {
            return Next::Retry;
        }
        // A file renamed mid-listing can show twice: its last place is the right one.
        match chain.iter().rposition(|m| file.is(m)) {
            Some(i) if i + 1 == chain.len() => Next::Stay,
            Some(i) => open_member(&chain[i + 1], file),
            None if gone_confirmed => match chain.first() {
                // Deleted because it rotated out: every file left is newer.
                Some(m) => open_member(m, file),
                None => Next::Retry,
            },
            None => Next::Retry,
        }
    }

    fn read_to_end(
        &self,
        file: &mut LogFile,
        dec: &mut LogDecoder,
        filters: &mut Filters,
    ) -> Result<(), ReadEnd> {
        while self.read_available(file, dec, filters)? > 0 {}
        Ok(())
    }

    /// Reads one chunk, decodes it, and queues the records. Returns the bytes read.
    fn read_available(
        &self,
        file: &mut LogFile,
        dec: &mut LogDecoder,
        filters: &mut Filters,
    ) -> Result<usize, ReadEnd> {
        let meta = self.ctx.meta();
        let mut batch: Vec<Record> = Vec::new();
        let mut bad = 0u64;
        let mut first_bad = None;
        let report = file
            .read_lines(|line, start, end| {
                self.entry(
                    line,
                    start,
                    end,
                    dec,
                    filters,
                    &meta,
                    &mut batch,
                    &mut bad,
                    &mut first_bad,
                )
            })
            .map_err(ReadEnd::Io)?;
        if report.oversized > 0 {
            bad += u64::from(report.oversized);
            first_bad.get_or_insert_with(|| "a line longer than 1 MiB".to_owned());
        }
        if bad > 0 {
            self.ctx.metrics.file_bad_lines.inc_by(bad);
            log::warn!(
                "follower {}: {bad} unreadable lines in {} skipped (first: {})",
                meta.id.short(),
                file.path.display(),
                first_bad.unwrap_or_default()
            );
        }
        self.ctx
            .send(&mut batch)
            .map_err(|QueueClosed| ReadEnd::QueueClosed)?;
        Ok(report.bytes)
    }

    /// One line of the file: filtered, then decoded into `batch`.
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &self,
        line: &[u8],
        start: FilePos,
        end: FilePos,
        dec: &mut LogDecoder,
        filters: &mut Filters,
        meta: &Arc<ContainerMeta>,
        batch: &mut Vec<Record>,
        bad: &mut u64,
        first_bad: &mut Option<String>,
    ) {
        if filters.drop_first > 0 {
            // `tail:N` counts lines of the file, whatever their stream.
            filters.drop_first -= 1;
            return;
        }
        if let (Some(since), Some(t)) = (filters.since, quick_time(line)) {
            if t < since {
                return;
            }
        }
        let entry = match parse_entry(line) {
            Ok(e) => e,
            Err(e) => {
                *bad += 1;
                first_bad.get_or_insert_with(|| e.to_string());
                return;
            }
        };
        if !self.ctx.streams.wants(entry.stream) || filters.since.is_some_and(|s| entry.time < s) {
            return;
        }
        dec.file_entry(
            entry.stream,
            entry.time,
            entry.log.as_bytes(),
            start,
            end,
            &mut |o| self.ctx.output(meta, o, batch),
        );
        if batch.len() >= SEND_EVERY {
            // Keep memory bounded on a huge chunk; a closed queue shows on the next send.
            let _ = self.ctx.send(batch);
        }
    }
}

/// A follower's inotify watch (held, dropped to stop it): on its log's directory, or on
/// its current log file.
struct LogWatch {
    _watch: Watch,
    on_file: bool,
}

/// Why reading stopped.
enum ReadEnd {
    QueueClosed,
    Io(std::io::Error),
}

/// Whether the current log is still `file` and holds nothing past what was read from it.
fn unchanged(paths: &LogPaths, file: &LogFile) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(paths.current())
        .is_ok_and(|m| m.dev() == file.dev && m.ino() == file.ino && m.len() == file.read_offset())
}

fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether a saved offset still points into the file it was taken in: just past a line
/// stamped no later than the position (a newer file that got the deleted file's inode
/// number holds only later lines). An offset of 0 proves nothing: resume by time then.
fn position_holds(f: &LogFile, offset: u64, time: Timestamp) -> bool {
    match f.line_ending_at(offset) {
        Ok(Some(line)) => parse_entry(&line).is_ok_and(|e| e.time <= time),
        Ok(None) | Err(_) => false,
    }
}

/// Opens `m`, the file after `from`; the chain moving under us means look again.
fn open_member(m: &Member, from: &LogFile) -> Next {
    match m.open() {
        Some(f) if !from.is(m) => Next::Open(f),
        _ => Next::Retry,
    }
}

/// The file holding `fp`: the open current one, or a rotated one.
fn open_at(paths: &LogPaths, current: LogFile, fp: FilePos) -> Option<LogFile> {
    if current.dev == fp.dev && current.ino == fp.ino {
        return Some(current);
    }
    paths
        .chain()
        .0
        .iter()
        .filter(|m| m.is(&fp))
        .find_map(Member::open)
}

/// The oldest file of the chain (the current one when nothing was rotated).
fn oldest(paths: &LogPaths, current: LogFile) -> LogFile {
    let (chain, compressed) = paths.chain();
    if compressed {
        log::warn!(
            "{}: compressed rotated logs (log-opt compress=true) are not read",
            paths.current().display()
        );
    }
    for m in &chain {
        if current.is(m) {
            return current;
        }
        if let Some(f) = m.open() {
            return f;
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_container_ids_make_paths() {
        let dir = tempfile::tempdir().unwrap();
        for id in ["../../etc/passwd", "", "abc", &"g".repeat(64)] {
            let e = open_log(dir.path(), id).err().unwrap();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{id}");
        }
        let id = "0a".repeat(32);
        let e = open_log(dir.path(), &id).err().unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
