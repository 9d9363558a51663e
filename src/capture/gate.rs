//! A counting gate that bounds how many followers open a logs request at once, so a
//! daemon restart (every stream failing together) does not become a reconnect storm: each
//! `since` request makes dockerd scan the log file.

use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::shutdown::Shutdown;

pub struct Gate {
    free: Mutex<usize>,
    cond: Condvar,
}

/// Held while a request is being opened; returns its slot when dropped.
pub struct Permit<'a>(&'a Gate);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock() += 1;
        self.0.cond.notify_one();
    }
}

impl Gate {
    pub fn new(slots: usize) -> Gate {
        Gate {
            free: Mutex::new(slots.max(1)),
            cond: Condvar::new(),
        }
    }

    /// Waits for a slot; `None` if shutdown was requested meanwhile.
    pub fn acquire(&self, shutdown: &Shutdown) -> Option<Permit<'_>> {
        let mut free = self.free.lock();
        while *free == 0 {
            if shutdown.is_triggered() {
                return None;
            }
            self.cond.wait_for(&mut free, Duration::from_millis(100));
        }
        *free -= 1;
        Some(Permit(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn never_more_than_the_slots_at_once() {
        let gate = Arc::new(Gate::new(2));
        let inside = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let shutdown = Shutdown::new();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gate, inside, peak, shutdown) =
                    (gate.clone(), inside.clone(), peak.clone(), shutdown.clone());
                std::thread::spawn(move || {
                    let _p = gate.acquire(&shutdown).unwrap();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(10));
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        let _a = gate.acquire(&shutdown).unwrap();
        let _b = gate.acquire(&shutdown).unwrap();
        shutdown.trigger();
        assert!(gate.acquire(&shutdown).is_none());
    }
}
