//! One followed host file: the open fd, its identity, and the [`Splitter`] that knows how
//! far it was read and where the last complete line ended. Lines become records here.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use super::lines::{Line, Splitter};
use super::start::{FileId, Found};
use crate::capture::record::{FilePos, HostFileMeta, Origin, Position, Record};
use crate::capture::timestamp::Timestamp;

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
    ) -> io::Result<Tailed> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(Tailed {
            meta,
            file,
            id,
            lines: Splitter::new(max_line_bytes, offset),
            emitted: false,
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
        let (id, meta, before) = (self.id, &self.meta, out.len());
        self.lines
            .push(&buf[..n], |line| out.push(record(line, now, id, meta)));
        self.emitted |= out.len() > before;
        Ok(n)
    }

    /// Hands out text left without a newline: the writer moved on to another file.
    pub fn flush(&mut self, out: &mut Vec<Record>) {
        if let Some(line) = self.lines.flush() {
            out.push(record(line, Timestamp::now(), self.id, &self.meta));
            self.emitted = true;
        }
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

/// A line read at `now` as a record; its position is just past the line.
fn record(line: Line, now: Timestamp, id: FileId, meta: &Arc<HostFileMeta>) -> Record {
    let message = String::from_utf8(line.text)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Record {
        time: now,
        stream: None,
        message,
        truncated: line.truncated,
        origin: Origin::HostFile(meta.clone()),
        position: Position {
            time: now,
            frames_at_time: 0,
            file: Some(FilePos {
                dev: id.dev,
                ino: id.ino,
                offset: line.end,
            }),
            marks: [None; 2],
        },
        continues: false,
        fields: None,
        dropped: false,
    }
}
