//! Reload on SIGHUP (README, Reload). The `reload` thread reads the configuration file
//! and the environment again, exactly as at start, and checks what can change at run
//! time: `positions.path` cannot; `read_from = "files"` needs the Docker root; a new
//! `server.listen` must bind; every new or changed sink must open. A refused reload changes nothing: it is logged with the key, counted
//! (`config_reloads_total{result="error"}`, `config_last_reload_successful` 0) and listed
//! on `/health`. An accepted one is offered to [`crate::run`]'s loop, which stops the
//! running configuration as a shutdown would (followers joined, the queue drained to the
//! sinks, positions saved) and starts the next from the saved positions: every container
//! resumes where a restart would resume it, so nothing is lost or repeated. A sink at the
//! same place with the same settings is kept, with its connections and open file.
//!
//! Requests arriving while one is prepared or applied are coalesced: at most one waits.

use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{select, Receiver, Sender};
use parking_lot::Mutex;

use crate::capturer::{Ended, FatalError};
use crate::config::Config;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::server::{self, Server};
use crate::shutdown::Shutdown;
use crate::sink::{self, Sink};

/// Where reload requests come from: the config file to read again, and a message per
/// SIGHUP (a channel of capacity one: signals beyond one waiting request coalesce).
pub struct ReloadSource {
    pub path: Option<PathBuf>,
    pub requests: Receiver<()>,
}

/// The running configuration, the one waiting to replace it, and the stop of the running
/// one, shared by the reload thread and the run loop.
pub(crate) struct Reloads {
    state: Mutex<State>,
    shutdown: Shutdown,
    /// Dropped by [`Reloads::close`]: its receiver `closed` then ends the reload thread's
    /// wait (no timer: the thread sleeps until a SIGHUP or the end).
    closing: Mutex<Option<Sender<()>>>,
    closed: Receiver<()>,
}

struct State {
    current: Config,
    pending: Option<Next>,
    generation: Shutdown,
    /// Configurations applied so far: a reload prepared against an earlier one is stale.
    applied: u64,
    /// Reload attempts numbered in order, and the last one refused: an older success
    /// applied later must not hide a newer refusal.
    attempts: u64,
    last_refused: u64,
}

/// An accepted reload, ready to apply.
pub(crate) struct Next {
    pub config: Config,
    /// The attempt's number.
    pub seq: u64,
    /// `State::applied` when it was prepared.
    base: u64,
    /// `Some`: the endpoint server changes (`None` inside: disabled).
    pub server: Option<Option<Server>>,
    /// Per sink of `config`: newly opened, or `None` to keep the running one at that place.
    opened: Vec<Option<Box<dyn Sink>>>,
}

impl Reloads {
    /// Shutdown stops the running configuration too.
    pub fn new(current: Config, shutdown: Shutdown) -> Arc<Reloads> {
        let (closing, closed) = crossbeam_channel::bounded(0);
        let reloads = Arc::new(Reloads {
            state: Mutex::new(State {
                current,
                pending: None,
                generation: Shutdown::new(),
                applied: 0,
                attempts: 0,
                last_refused: 0,
            }),
            shutdown: shutdown.clone(),
            closing: Mutex::new(Some(closing)),
            closed,
        });
        let on_stop = Arc::downgrade(&reloads);
        shutdown.on_trigger(move || {
            if let Some(r) = on_stop.upgrade() {
                r.state.lock().generation.trigger();
            }
        });
        reloads
    }

    /// The stop of the configuration about to run; already triggered when a shutdown or
    /// another reload came meanwhile.
    pub fn next_generation(&self) -> Shutdown {
        let mut state = self.state.lock();
        state.generation = Shutdown::new();
        if self.shutdown.is_triggered() || state.pending.is_some() {
            state.generation.trigger();
        }
        state.generation.clone()
    }

    /// Whether the process is stopping (not a reload).
    pub fn shutting_down(&self) -> bool {
        self.shutdown.is_triggered()
    }

    /// The reload to apply now; from here on it is the current configuration.
    pub fn take(&self) -> Option<Next> {
        let mut state = self.state.lock();
        let next = state.pending.take()?;
        state.current = next.config.clone();
        state.applied += 1;
        Some(next)
    }

    /// Counts an applied reload; it clears a refusal only if none came after it.
    pub fn applied(&self, seq: u64, metrics: &Metrics, health: &Health) {
        metrics.config_reloads.with_label_values(&["ok"]).inc();
        if seq > self.state.lock().last_refused {
            metrics.config_last_reload_successful.set(1);
            health.set_reload_problem(None);
        }
    }

    fn refused(&self, seq: u64, why: String, metrics: &Metrics, health: &Health) {
        log::error!("configuration reload refused, the running one is kept: {why}");
        self.state.lock().last_refused = seq;
        metrics.config_reloads.with_label_values(&["error"]).inc();
        metrics.config_last_reload_successful.set(0);
        health.set_reload_problem(Some(why));
    }

    /// Ends the reload thread.
    pub fn close(&self) {
        self.closing.lock().take();
    }

    fn is_closed(&self) -> bool {
        self.closing.lock().is_none()
    }

    /// Makes `next` the pending reload and stops the running configuration; false (and
    /// `next` dropped) when it was prepared against a configuration since replaced.
    fn offer(&self, next: Next) -> bool {
        let mut state = self.state.lock();
        if next.base != state.applied {
            return false;
        }
        state.pending = Some(next);
        state.generation.trigger();
        true
    }
}

impl Next {
    /// The sinks of the new configuration: the kept ones from `ended` (opened again when a
    /// hung write was aborted: an aborted HTTP client refuses every later request), the
    /// new ones. The running sinks not kept are dropped (closed) here.
    pub fn sinks(
        &mut self,
        ended: Ended,
        metrics: &Arc<Metrics>,
    ) -> Result<Vec<Box<dyn Sink>>, FatalError> {
        let mut old: Vec<Option<Box<dyn Sink>>> = ended.sinks.into_iter().map(Some).collect();
        let mut sinks = Vec::with_capacity(self.opened.len());
        for (i, opened) in self.opened.iter_mut().enumerate() {
            let kept = match opened.take() {
                Some(new) => new,
                None => match old.get_mut(i).and_then(Option::take) {
                    Some(s) if !(ended.interrupted && s.interrupter().is_some()) => s,
                    _ => sink::open_one(i, &self.config.sinks[i], metrics).map_err(FatalError)?,
                },
            };
            sinks.push(kept);
        }
        Ok(sinks)
    }
}

/// The reload thread: waits for requests until [`Reloads::close`].
pub(crate) fn serve(
    source: ReloadSource,
    reloads: &Reloads,
    metrics: &Arc<Metrics>,
    health: &Health,
) {
    loop {
        select! {
            recv(source.requests) -> request => if request.is_err() {
                return;
            },
            // Only ever disconnected, by `close`.
            recv(reloads.closed) -> _ => return,
        }
        if reloads.is_closed() {
            return;
        }
        log::info!("SIGHUP: reloading the configuration");
        let seq = {
            let mut state = reloads.state.lock();
            state.attempts += 1;
            state.attempts
        };
        // Prepared again if an earlier reload was applied meanwhile.
        loop {
            match prepare(&source.path, reloads, metrics, seq) {
                Ok(next) => {
                    if reloads.offer(next) {
                        break;
                    }
                }
                Err(why) => {
                    reloads.refused(seq, why, metrics, health);
                    break;
                }
            }
        }
    }
}

/// Reads and checks the configuration as at start, binds a new listener, opens the new
/// sinks; any failure refuses the whole reload.
fn prepare(
    path: &Option<PathBuf>,
    reloads: &Reloads,
    metrics: &Arc<Metrics>,
    seq: u64,
) -> Result<Next, String> {
    let config = Config::load(path.as_deref()).map_err(|e| e.to_string())?;
    let (current, base) = {
        let state = reloads.state.lock();
        (state.current.clone(), state.applied)
    };
    if config.positions.path != current.positions.path {
        return Err(format!(
            "positions.path cannot change at run time (from {} to {}): restart to change it",
            current.positions.path.display(),
            config.positions.path.display()
        ));
    }
    // What the start would refuse with exit 1: refused here, before anything stops.
    crate::capture::follower::FilesMode::new(&config.containers)?;
    crate::docker::client::ClientSettings::new(&config.docker).map_err(|e| e.to_string())?;
    let server = match (config.server.listen.as_str(), &current.server.listen) {
        (new, old) if new == old => None,
        ("", _) => Some(None),
        (new, _) => Some(Some(server::bind(new)?)),
    };
    let mut opened = Vec::with_capacity(config.sinks.len());
    for (i, cfg) in config.sinks.iter().enumerate() {
        opened.push(match current.sinks.get(i) == Some(cfg) {
            true => None,
            false => Some(sink::open_one(i, cfg, metrics)?),
        });
    }
    Ok(Next {
        config,
        seq,
        base,
        server,
        opened,
    })
}
