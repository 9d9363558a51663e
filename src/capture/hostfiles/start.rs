//! Where a host file is read from when a run first meets it: a pure decision from the
//! acknowledged position (if any), what is at the path now, and what is at `<path>.1`.

use crate::capture::record::FilePos;

/// A file's identity: names change on rotation, device and inode do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(pos: &FilePos) -> FileId {
        FileId {
            dev: pos.dev,
            ino: pos.ino,
        }
    }
}

/// An open file: its identity and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    pub id: FileId,
    pub len: u64,
}

/// Where to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The acknowledged position, in the same file.
    Resume(u64),
    /// Same file, now shorter than the position: truncated while we were down. From 0.
    Truncated,
    /// Rotated while we were down, and `<path>.1` is the old file: read it on from this
    /// offset to its end, then the file at the path from 0.
    AfterRotated(u64),
    /// Another file, and the old one is not at `<path>.1`: from 0; lines may be missed.
    Replaced,
    /// No position: from the beginning.
    Beginning,
    /// No position, and present when the first run began: from its end, like `tail -f`.
    End,
}

impl Start {
    /// The offset in the file at the path.
    pub fn offset(self, len: u64) -> u64 {
        match self {
            Start::Resume(offset) => offset,
            Start::End => len,
            _ => 0,
        }
    }
}

/// Decides where to start in `current` (at the path) given the acknowledged position
/// `saved`, the file at `<path>.1` (`rotated`, looked at only when the identity differs),
/// and whether a file without a position starts at its end (`new_at_end`).
pub fn decide(
    saved: Option<FilePos>,
    current: Found,
    rotated: Option<Found>,
    new_at_end: bool,
) -> Start {
    let Some(saved) = saved else {
        return if new_at_end {
            Start::End
        } else {
            Start::Beginning
        };
    };
    if current.id == FileId::of(&saved) {
        return if current.len >= saved.offset {
            Start::Resume(saved.offset)
        } else {
            Start::Truncated
        };
    }
    match rotated {
        Some(old) if old.id == FileId::of(&saved) && old.len >= saved.offset => {
            Start::AfterRotated(saved.offset)
        }
        _ => Start::Replaced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(ino: u64, len: u64) -> Found {
        Found {
            id: FileId { dev: 1, ino },
            len,
        }
    }

    fn pos(ino: u64, offset: u64) -> Option<FilePos> {
        Some(FilePos {
            dev: 1,
            ino,
            offset,
        })
    }

    #[test]
    fn without_a_position() {
        assert_eq!(decide(None, found(7, 50), None, true), Start::End);
        assert_eq!(decide(None, found(7, 50), None, false), Start::Beginning);
        assert_eq!(Start::End.offset(50), 50);
        assert_eq!(Start::Beginning.offset(50), 0);
    }

    #[test]
    fn same_file_resumes_or_restarts_when_truncated() {
        assert_eq!(
            decide(pos(7, 40), found(7, 50), None, true),
            Start::Resume(40)
        );
        assert_eq!(
            decide(pos(7, 50), found(7, 50), None, false),
            Start::Resume(50)
        );
        assert_eq!(
            decide(pos(7, 51), found(7, 50), None, false),
            Start::Truncated
        );
        assert_eq!(Start::Truncated.offset(50), 0);
    }

    #[test]
    fn rotated_while_down() {
        let s = decide(pos(7, 40), found(8, 10), Some(found(7, 90)), false);
        assert_eq!(s, Start::AfterRotated(40));
        assert_eq!(s.offset(10), 0);
        // .1 is another file, absent, or shorter than the position.
        assert_eq!(
            decide(pos(7, 40), found(8, 10), Some(found(9, 90)), false),
            Start::Replaced
        );
        assert_eq!(
            decide(pos(7, 40), found(8, 10), None, true),
            Start::Replaced
        );
        assert_eq!(
            decide(pos(7, 40), found(8, 10), Some(found(7, 39)), false),
            Start::Replaced
        );
    }

    #[test]
    fn another_device_is_another_file() {
        let other = Found {
            id: FileId { dev: 2, ino: 7 },
            len: 50,
        };
        assert_eq!(decide(pos(7, 40), other, None, false), Start::Replaced);
    }
}
