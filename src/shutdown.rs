//! The shutdown signal shared by every thread: a flag plus a condition variable, so a
//! thread can sleep "until the deadline or until shutdown", whichever comes first. Threads
//! observe it; they are never killed. Completion is seen by joins, not sleeps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

#[derive(Default)]
struct Inner {
    flag: AtomicBool,
    lock: Mutex<()>,
    cond: Condvar,
    hooks: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
}

/// Cloneable handle to one shutdown signal.
#[derive(Clone, Default)]
pub struct Shutdown(Arc<Inner>);

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Requests shutdown: wakes every waiter and runs the registered hooks once.
    pub fn trigger(&self) {
        if self.0.flag.swap(true, Ordering::SeqCst) {
            return;
        }
        {
            let _g = self.0.lock.lock();
            self.0.cond.notify_all();
        }
        let hooks = std::mem::take(&mut *self.0.hooks.lock());
        for hook in hooks {
            hook();
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// Runs `hook` at trigger time (at once if already triggered), e.g. to interrupt
    /// blocked socket reads.
    pub fn on_trigger(&self, hook: impl Fn() + Send + Sync + 'static) {
        if self.is_triggered() {
            hook();
            return;
        }
        self.0.hooks.lock().push(Box::new(hook));
        if self.is_triggered() {
            let hooks = std::mem::take(&mut *self.0.hooks.lock());
            for hook in hooks {
                hook();
            }
        }
    }

    /// Sleeps for `d` or until shutdown. Returns true if shutdown was requested.
    pub fn wait_timeout(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut g = self.0.lock.lock();
        while !self.is_triggered() {
            if self.0.cond.wait_until(&mut g, deadline).timed_out() {
                break;
            }
        }
        self.is_triggered()
    }

    /// Blocks until shutdown is requested.
    pub fn wait(&self) {
        let mut g = self.0.lock.lock();
        while !self.is_triggered() {
            self.0.cond.wait(&mut g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn wakes_waiters_and_runs_hooks_once() {
        let s = Shutdown::new();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        s.on_trigger(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        let s2 = s.clone();
        let waiter = std::thread::spawn(move || s2.wait_timeout(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        s.trigger();
        s.trigger();
        assert!(waiter.join().unwrap());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert!(!Shutdown::new().wait_timeout(Duration::from_millis(1)));
    }
}
