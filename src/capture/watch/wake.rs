//! [`Wake`]: where one reader of files sleeps between reads. Its directory's inotify
//! events, the supervisor (stop, container exited) and shutdown raise it; the reader's
//! `wait` returns at once when it was raised since the last wait, so a wake-up that came
//! while the reader was busy is never lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

const CONTENT: u8 = 1;
const NAMES: u8 = 2;
const LOST: u8 = 4;
const ASKED: u8 = 8;

/// Why a [`Wake::wait`] returned (all reasons since the last wait); empty on timeout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Woken(u8);

impl Woken {
    /// Woken by nothing: the wait timed out.
    pub fn timed_out(self) -> bool {
        self.0 == 0
    }

    /// A file of the watched directory was written.
    pub fn content(self) -> bool {
        self.0 & CONTENT != 0
    }

    /// Names in the directory changed (created, renamed, deleted, attributes), or events
    /// were lost (queue overflow): everything must be looked at again.
    pub fn names(self) -> bool {
        self.0 & NAMES != 0
    }

    /// The watch is gone (its directory was deleted, or inotify failed): poll from now.
    pub fn lost(self) -> bool {
        self.0 & LOST != 0
    }
}

/// One reader's wake-up flag. One reader waits on it; anyone may raise it.
#[derive(Default)]
pub struct Wake {
    bits: Mutex<u8>,
    cond: Condvar,
}

impl Wake {
    pub fn new() -> Arc<Wake> {
        Arc::default()
    }

    /// Wakes the reader to look at its flags (stop, exited, shutdown).
    pub fn notify(&self) {
        self.raise(ASKED);
    }

    pub(super) fn content(&self) {
        self.raise(CONTENT);
    }

    /// Names changed, or events were lost: a full look is due.
    pub(super) fn names(&self) {
        self.raise(NAMES);
    }

    pub(super) fn lost(&self) {
        self.raise(NAMES | LOST);
    }

    fn raise(&self, bits: u8) {
        let mut b = self.bits.lock();
        let idle = *b == 0;
        *b |= bits;
        if idle {
            // Only the first raise can find the reader asleep.
            self.cond.notify_one();
        }
    }

    /// Sleeps until raised or `timeout`; returns (and clears) what raised it.
    pub fn wait(&self, timeout: Duration) -> Woken {
        let deadline = Instant::now() + timeout;
        let mut b = self.bits.lock();
        while *b == 0 {
            if self.cond.wait_until(&mut b, deadline).timed_out() {
                break;
            }
        }
        Woken(std::mem::take(&mut *b))
    }
}
