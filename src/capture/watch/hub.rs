//! The inotify instance and its thread: who watches which directory, and raising their
//! [`Wake`]s when events come. A reader's watch is the RAII [`Watch`]; the last one of a
//! directory removes the kernel's watch. The thread blocks in `read(2)` (no timeout, no
//! polling); [`Watcher::close`] wakes it by removing its anchor watch, whose `IN_IGNORED`
//! event ends the read.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use parking_lot::Mutex;

use super::{Wake, Watching};
use crate::shutdown::Shutdown;

/// What a reader's directory is watched for: its files written, created, renamed,
/// deleted, truncated or re-permissioned, and the directory itself going away (for a
/// watched file: it written, renamed or deleted).
fn mask() -> WatchMask {
    WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::CREATE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

/// The watches and their readers, shared by the thread and the [`Watch`]es.
pub(super) struct Hub {
    /// Lock order: `subs`, then `watches`.
    subs: Mutex<HashMap<i32, Vec<Arc<Wake>>>>,
    watches: Mutex<Watches>,
    /// The descriptor of the anchor watch on "/": never removed by a reader that watches
    /// "/" too (it shares the kernel's watch), or the thread could not be woken to stop.
    anchor: i32,
    /// The thread ended on an error: no new watch.
    dead: AtomicBool,
}

impl Hub {
    pub(super) fn subscribe(self: &Arc<Hub>, dir: &Path, wake: &Arc<Wake>) -> io::Result<Watch> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(io::Error::other("the inotify thread ended"));
        }
        let mut subs = self.subs.lock();
        // The same directory twice gives the same descriptor (the kernel's watch is shared).
        let wd = self.watches.lock().add(dir, mask())?;
        subs.entry(wd.get_watch_descriptor_id())
            .or_default()
            .push(wake.clone());
        Ok(Watch {
            hub: self.clone(),
            wd,
            wake: wake.clone(),
        })
    }

    fn unsubscribe(&self, wd: &WatchDescriptor, wake: &Arc<Wake>) {
        let id = wd.get_watch_descriptor_id();
        let mut subs = self.subs.lock();
        // Absent: the kernel removed it (directory deleted), nothing left to remove.
        let Some(wakes) = subs.get_mut(&id) else {
            return;
        };
        wakes.retain(|w| !Arc::ptr_eq(w, wake));
        if wakes.is_empty() {
            subs.remove(&id);
            if id != self.anchor {
                let _ = self.watches.lock().remove(wd.clone());
            }
        }
    }

    /// Raises the readers concerned by a batch of events (`(watch descriptor, mask)`).
    pub(super) fn dispatch(&self, events: impl Iterator<Item = (i32, EventMask)>) {
        let mut subs = self.subs.lock();
        for (wd, mask) in events {
            if mask.contains(EventMask::Q_OVERFLOW) {
                // Events were dropped: nobody knows what changed.
                log::debug!("inotify: event queue overflow; every watched reader looks again");
                subs.values().flatten().for_each(|w| w.names());
            } else if mask.contains(EventMask::IGNORED) {
                if let Some(wakes) = subs.remove(&wd) {
                    wakes.iter().for_each(|w| w.lost());
                }
            } else if let Some(wakes) = subs.get(&wd) {
                let content = (EventMask::MODIFY | EventMask::CLOSE_WRITE).contains(mask);
                for w in wakes {
                    if content {
                        w.content();
                    } else {
                        w.names();
                    }
                }
            }
        }
    }

    #[cfg(test)]
    pub(super) fn readers(&self) -> usize {
        self.subs.lock().values().map(Vec::len).sum()
    }

    /// Every reader is told its watch is gone (the thread ended).
    fn lose_all(&self) {
        self.dead.store(true, Ordering::SeqCst);
        let subs = std::mem::take(&mut *self.subs.lock());
        subs.values().flatten().for_each(|w| w.lost());
    }

    /// Wakes every reader (shutdown).
    fn notify_all(&self) {
        self.subs.lock().values().flatten().for_each(|w| w.notify());
    }
}

/// One reader's watch on one directory; dropping it stops the watch.
pub struct Watch {
    hub: Arc<Hub>,
    wd: WatchDescriptor,
    wake: Arc<Wake>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.wd, &self.wake);
    }
}

/// The run's inotify instance and its thread (joined by `close` or on drop).
pub struct Watcher {
    watching: Watching,
    pub(super) thread: Option<JoinHandle<()>>,
    /// Removed to wake the thread's read when closing.
    anchor: Option<WatchDescriptor>,
    closing: Arc<AtomicBool>,
}

impl Watcher {
    /// Starts the inotify thread; without inotify (or the thread), a watcher whose
    /// [`Watching`] falls back to polling. Shutdown wakes every watched reader.
    pub fn start(fallbacks: prometheus::IntCounter, shutdown: &Shutdown) -> Watcher {
        Watcher::start_with(Inotify::init, fallbacks, shutdown)
    }

    /// [`Watcher::start`] with the inotify instance made by `init` (tests make it fail).
    pub fn start_with(
        init: impl FnOnce() -> io::Result<Inotify>,
        fallbacks: prometheus::IntCounter,
        shutdown: &Shutdown,
    ) -> Watcher {
        let closing = Arc::new(AtomicBool::new(false));
        match Watcher::spawn(init, closing.clone()) {
            Ok((hub, thread, anchor)) => {
                let weak: Weak<Hub> = Arc::downgrade(&hub);
                shutdown.on_trigger(move || {
                    if let Some(hub) = weak.upgrade() {
                        hub.notify_all();
                    }
                });
                Watcher {
                    watching: Watching {
                        hub: Some(hub),
                        why_not: Arc::from(""),
                        fallbacks,
                        warned: Arc::default(),
                    },
                    thread: Some(thread),
                    anchor: Some(anchor),
                    closing,
                }
            }
            Err(e) => Watcher {
                watching: Watching::unavailable(&format!("inotify unavailable ({e})"), fallbacks),
                thread: None,
                anchor: None,
                closing,
            },
        }
    }

    fn spawn(
        init: impl FnOnce() -> io::Result<Inotify>,
        closing: Arc<AtomicBool>,
    ) -> io::Result<(Arc<Hub>, JoinHandle<()>, WatchDescriptor)> {
        let inotify = init()?;
        let mut watches = inotify.watches();
        // A watch that never fires ("/" is not deleted); removing it wakes the thread.
        let anchor = watches.add("/", WatchMask::DELETE_SELF | WatchMask::ONLYDIR)?;
        let hub = Arc::new(Hub {
            subs: Mutex::default(),
            watches: Mutex::new(watches),
            anchor: anchor.get_watch_descriptor_id(),
            dead: AtomicBool::new(false),
        });
        let thread = {
            let hub = hub.clone();
            crate::threads::spawn(
                "inotify".to_owned(),
                crate::threads::SERVICE_STACK,
                move || read_events(inotify, &hub, &closing),
            )?
        };
        Ok((hub, thread, anchor))
    }

    /// The handle readers add watches through.
    pub fn watching(&self) -> Watching {
        self.watching.clone()
    }

    /// Stops and joins the thread. Watches still held stay valid but are never raised.
    pub fn close(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.closing.store(true, Ordering::SeqCst);
        if let (Some(hub), Some(anchor)) = (&self.watching.hub, self.anchor.take()) {
            if let Err(e) = hub.watches.lock().remove(anchor) {
                log::error!("inotify: cannot wake its thread to stop it: {e}");
            }
        }
        if thread.join().is_err() {
            log::error!("the inotify thread panicked");
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.close();
    }
}

/// The thread: reads events until closed, raising the readers they concern.
fn read_events(mut inotify: Inotify, hub: &Hub, closing: &AtomicBool) {
    let mut buf = vec![0u8; 16 * 1024];
    while !closing.load(Ordering::SeqCst) {
        match inotify.read_events_blocking(&mut buf) {
            Ok(events) => hub.dispatch(events.map(|e| (e.wd.get_watch_descriptor_id(), e.mask))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::error!("inotify: reading events: {e}; every watched reader polls from now");
                hub.lose_all();
                return;
            }
        }
    }
}
