//! One followed host file: the open fd, its identity, and the [`Splitter`] that knows how
//! far it was read and where the last complete line ended. Lines become records here,
//! through the file's rule stage when a `[[rules]]` entry shapes it (README, Rules).

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use super::lines::{Line, Splitter};
use super::start::{FileId, Found};
use crate::capture::record::{
    message_text, FilePos, HostFileMeta, Origin, Position, Record, Stream,
};
use crate::capture::timestamp::Timestamp;
use crate::process::joiner::{JoinLine, Joined};
use crate::process::rules::Shaping;
use crate::process::stage::Stage;

/// A file's rule stage, and what shapes the records it hands out.
pub struct FileShaping {
    pub stage: Stage,
    pub shaper: Shaper,
}

impl std::fmt::Debug for FileShaping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileShaping")
    }
}

/// Makes the stage's records: shaped by the rule, counted, queued in `out`.
pub struct Shaper {
    pub shaping: Arc<Shaping>,
    pub parse_errors: prometheus::IntCounter,
    /// `records_dropped_total{reason="rule"}`.
    pub dropped: prometheus::IntCounter,
}

impl Shaper {
    /// A record of the rule stage, shaped (fields, or dropped). A dropped record stays
    /// only to carry its position, until the next record of the same file covers it.
    fn push(&self, j: Joined, meta: &Arc<HostFileMeta>, out: &mut Vec<Record>) {
        let (fields, dropped) = self.shaping.shape(&j.text, &self.parse_errors);
        if dropped {
            self.dropped.inc();
        }
        let same_file =
            |r: &Record| matches!(&r.origin, Origin::HostFile(m) if Arc::ptr_eq(m, meta));
        if out.last().is_some_and(|r| r.dropped && same_file(r)) {
            out.pop();
        }
        out.push(Record {
            time: j.time,
            stream: None,
            message: if dropped { String::new() } else { j.text },
            truncated: j.truncated,
            origin: Origin::HostFile(meta.clone()),
            position: j.position,
            continues: false,
            fields,
            dropped,
        });
    }
}

/// What an open file is, from its metadata.
pub fn found(m: &Metadata) -> Found {
    Found {
        id: FileId {
            dev: m.dev(),
            ino: m.ino(),
        },
        len: m.len(),
    }
}

/// An open file followed from some offset. Closed by being dropped.
#[derive(Debug)]
pub struct Tailed {
    meta: Arc<HostFileMeta>,
    file: File,
    id: FileId,
    lines: Splitter,
    /// Whether a record was made from this file (its position is then `committed`).
    emitted: bool,
    /// The rule stage, when a rule shapes this file.
    shaping: Option<FileShaping>,
    /// Where the next line begins (the last line's end).
    line_start: u64,
}

impl Tailed {
    /// Follows `file` (identity `id`) from `offset`. Its records carry `meta`: a rotated
    /// file's records keep the path the lines were written to.
    pub fn new(
        mut file: File,
        meta: Arc<HostFileMeta>,
        id: FileId,
        offset: u64,
        max_line_bytes: usize,
        shaping: Option<FileShaping>,
    ) -> io::Result<Tailed> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(Tailed {
            meta,
            file,
            id,
            lines: Splitter::new(max_line_bytes, offset),
            emitted: false,
            shaping,
            line_start: offset,
        })
    }

    pub fn id(&self) -> FileId {
        self.id
    }

    pub fn meta(&self) -> &Arc<HostFileMeta> {
        &self.meta
    }

    /// The position of the last record made from this file, if any.
    pub fn last_emitted(&self) -> Option<FilePos> {
        self.emitted.then_some(FilePos {
            dev: self.id.dev,
            ino: self.id.ino,
            offset: self.lines.committed(),
        })
    }

    /// The open file's size now (whatever name it has).
    pub fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// How far the file was read.
    pub fn offset(&self) -> u64 {
        self.lines.offset()
    }

    /// Reads once into `buf`; complete lines go to `out`. Returns the bytes read (0 at EOF).
    pub fn read_chunk(&mut self, buf: &mut [u8], out: &mut Vec<Record>) -> io::Result<usize> {
        let n = loop {
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => break result?,
            }
        };
        let now = Timestamp::now();
        let before = out.len();
        let Tailed {
            id,
            meta,
            lines,
            shaping,
            line_start,
            ..
        } = self;
        lines.push(&buf[..n], |line| {
            take(line, now, *id, meta, shaping, line_start, out)
        });
        self.emitted |= out.len() > before;
        Ok(n)
    }

    /// Hands out text left without a newline, and every multiline record still open: the
    /// writer moved on to another file.
    pub fn flush(&mut self, out: &mut Vec<Record>) {
        let before = out.len();
        if let Some(line) = self.lines.flush() {
            let Tailed {
                id,
                meta,
                shaping,
                line_start,
                ..
            } = self;
            take(line, Timestamp::now(), *id, meta, shaping, line_start, out);
        }
        if let Some(FileShaping { stage, shaper }) = &mut self.shaping {
            stage.finish(&mut |j, _| shaper.push(j, &self.meta, out));
        }
        self.emitted |= out.len() > before;
    }

    /// Hands out the multiline records of this file quiet for the timeout.
    pub fn tick(&mut self, out: &mut Vec<Record>) {
        let before = out.len();
        if let Some(FileShaping { stage, shaper }) = &mut self.shaping {
            let now = std::time::Instant::now();
            stage.tick(now, &mut |j, _| shaper.push(j, &self.meta, out));
        }
        self.emitted |= out.len() > before;
    }

    /// `copytruncate`: the file is shorter than what was read. Flushes the pending text
    /// (its end was copied away) and goes back to offset 0. Returns whether it did.
    pub fn rewind_if_truncated(&mut self, out: &mut Vec<Record>) -> io::Result<bool> {
        let len = self.file.metadata()?.len();
        if len >= self.lines.offset() {
            return Ok(false);
        }
        self.flush(out);
        self.file.seek(SeekFrom::Start(0))?;
        self.lines.reset(0);
        self.line_start = 0;
        Ok(true)
    }
}

/// The file `path` names now, by `stat`: `None` when none does (renamed away or deleted).
pub fn id_at(path: &Path) -> io::Result<Option<FileId>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(found(&m).id)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A line read at `now`: a record, or a line for the file's rule stage.
fn take(
    line: Line,
    now: Timestamp,
    id: FileId,
    meta: &Arc<HostFileMeta>,
    shaping: &mut Option<FileShaping>,
    line_start: &mut u64,
    out: &mut Vec<Record>,
) {
    let start = std::mem::replace(line_start, line.end);
    let Some(FileShaping { stage, shaper }) = shaping else {
        out.push(record(line, now, id, meta));
        return;
    };
    let l = JoinLine {
        stream: Stream::Stdout,
        time: now,
        truncated: line.truncated,
        after: at(now, id, line.end),
        before: at(now, id, start),
        end: at(now, id, line.end).mark(),
        text: message_text(line.text),
    };
    stage.push(l, false, std::time::Instant::now(), &mut |j, _| {
        shaper.push(j, meta, out)
    });
}

/// The position at `offset` of file `id`, read at `now`.
fn at(now: Timestamp, id: FileId, offset: u64) -> Position {
    Position {
        time: now,
        frames_at_time: 0,
        file: Some(FilePos {
            dev: id.dev,
            ino: id.ino,
            offset,
        }),
        marks: [None; 2],
    }
}

/// A line read at `now` as a record; its position is just past the line.
fn record(line: Line, now: Timestamp, id: FileId, meta: &Arc<HostFileMeta>) -> Record {
    Record {
        time: now,
        stream: None,
        message: message_text(line.text),
        truncated: line.truncated,
        origin: Origin::HostFile(meta.clone()),
        position: at(now, id, line.end),
        continues: false,
        fields: crate::capture::record::Fields::None,
        dropped: false,
    }
}
