//! The capturer assembled and run. [`run`] builds each part from its own config section
//! with the part's own constructor, then runs them as the thread diagram in the
//! README's "How it works" section, inside one `std::thread::scope`:
//!
//! ```text
//! events thread ──► supervisor (this thread) ──► follower thread × N ──┐
//! files thread (files.paths) ────────────────────────────────────────┤
//!                                                   bounded queue ◄──┘
//!                                                        ▼
//!                            positions ◄── ack ── dispatcher thread ──► sinks
//! http thread: /metrics /health /streams
//! ```
//!
//! Shutdown stops discovery and interrupts every Docker read; the supervisor joins the
//! followers, which drops the last queue sender; the dispatcher drains within
//! `pipeline.shutdown_timeout` (a sink write hung past it is aborted); the server stops
//! last. Nothing is detached.

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use crate::capture::follower::{EndReason, FilesMode};
use crate::capture::hostfiles::HostFiles;
use crate::capture::streams::StreamRegistry;
use crate::capture::supervisor::{Supervisor, SupervisorSettings};
use crate::capture::timestamp::Timestamp;
use crate::capture::watch::Watcher;
use crate::config::Config;
use crate::docker::client::{ClientSettings, DockerClient};
use crate::health::{DeliveryHealth, Health};
use crate::metrics::Metrics;
use crate::positions::Positions;
use crate::reload::{ReloadSource, Reloads};
use crate::shutdown::Shutdown;
use crate::sink::dispatcher::{BatchSettings, Dispatcher};
use crate::sink::{queue, Interrupter};
use crate::{capture, server, sink, threads};

/// A condition that stops the capturer at start (exit code 1).
#[derive(Debug)]
pub struct FatalError(pub String);

impl From<String> for FatalError {
    fn from(s: String) -> FatalError {
        FatalError(s)
    }
}

impl fmt::Display for FatalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FatalError {}

fn fatal(e: impl fmt::Display) -> FatalError {
    FatalError(e.to_string())
}

/// Runs the capturer until `shutdown` is triggered, then stops deterministically. With
/// `reload`, SIGHUP (a message on its channel) reloads the configuration file.
pub fn run(
    config: &Config,
    shutdown: Shutdown,
    reload: Option<ReloadSource>,
) -> Result<(), FatalError> {
    // What makes a start fail with exit 1, before any thread runs.
    FilesMode::new(&config.containers).map_err(FatalError)?;
    ClientSettings::new(&config.docker).map_err(fatal)?;
    let metrics = Arc::new(Metrics::new().map_err(|e| fatal(format!("metrics: {e}")))?);
    let http = match config.server.listen.as_str() {
        "" => None,
        listen => Some(Arc::new(server::bind(listen).map_err(FatalError)?)),
    };
    let sinks = sink::open_all(&config.sinks, &metrics).map_err(FatalError)?;
    let run_started = Timestamp::now();
    let positions = Arc::new(Positions::open(&config.positions.path, run_started).map_err(fatal)?);
    match positions.last_run_at() {
        Some(t) => log::info!(
            "positions: {} containers, previous run last wrote at {t}",
            positions.len()
        ),
        None => log::info!("positions: first run"),
    }
    let health = Arc::new(Health::new(Arc::new(DeliveryHealth::default())));
    let registry = Arc::new(StreamRegistry::default());
    let lasting = Lasting {
        metrics: metrics.clone(),
        health: health.clone(),
        registry: registry.clone(),
        positions,
        host: host_name(),
        run_started,
    };
    let state = server::State {
        metrics: metrics.clone(),
        health: health.clone(),
        streams: registry,
    };
    let reloads = Reloads::new(config.clone(), shutdown);
    metrics.config_last_reload_successful.set(1);

    std::thread::scope(|s| -> Result<(), FatalError> {
        let server = Mutex::new((http, None));
        let reload_thread = match reload {
            Some(source) => Some(spawn(s, "reload", threads::RELOAD_STACK, || {
                crate::reload::serve(source, &reloads, &metrics, &health)
            })?),
            None => None,
        };
        // Whatever ends the loop (the shutdown, or a fatal error), the reload and http
        // threads are stopped and joined after it: the scope would wait for them.
        let result = run_configurations(s, config, sinks, &lasting, &reloads, &server, &state);
        reloads.close();
        if let Some(t) = reload_thread {
            let _ = t.join();
        }
        stop_server(&mut server.lock());
        log::info!("log-capturer stopped");
        result
    })
}

/// The endpoint server and its thread, replaced when a reload changes `server.listen`.
type ServerSlot<'scope> = Mutex<(
    Option<Arc<server::Server>>,
    Option<ScopedJoinHandle<'scope, ()>>,
)>;

/// Runs `config`, then each configuration a reload brings, until the shutdown.
fn run_configurations<'scope>(
    s: &'scope Scope<'scope, '_>,
    config: &Config,
    sinks: Vec<Box<dyn sink::Sink>>,
    lasting: &Lasting,
    reloads: &Reloads,
    server: &ServerSlot<'scope>,
    state: &'scope server::State,
) -> Result<(), FatalError> {
    {
        let mut slot = server.lock();
        if let Some(srv) = slot.0.clone() {
            slot.1 = Some(spawn_server(s, srv, state)?);
        }
    }
    log::info!("log-capturer {} started", env!("CARGO_PKG_VERSION"));
    let metrics = &lasting.metrics;
    let mut config = config.clone();
    let mut sinks = sinks;
    loop {
        let stop = reloads.next_generation();
        let ended = run_generation(s, &config, sinks, lasting, &stop)?;
        if reloads.shutting_down() {
            return Ok(());
        }
        let Some(mut next) = reloads.take() else {
            return Err(fatal(
                "a configuration stopped without a reload or a shutdown",
            ));
        };
        sinks = next.sinks(ended, metrics)?;
        if let Some(listen) = next.server.take() {
            let mut slot = server.lock();
            stop_server(&mut slot);
            slot.0 = listen.map(Arc::new);
            if let Some(srv) = slot.0.clone() {
                slot.1 = Some(spawn_server(s, srv, state)?);
            }
        }
        let names: Vec<String> = sinks.iter().map(|s| s.name().to_owned()).collect();
        lasting.health.delivery().keep_sinks(&names);
        config = next.config;
        reloads.applied(next.seq, metrics, &lasting.health);
        log::info!("configuration reloaded");
    }
}

/// What outlives a configuration: metrics, health, the streams registry, positions.
struct Lasting {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    registry: Arc<StreamRegistry>,
    positions: Arc<Positions>,
    host: Arc<str>,
    run_started: Timestamp,
}

/// What a configuration's run leaves: its sinks, and whether a hung write was aborted
/// (an aborted HTTP sink refuses every later request and must be opened again).
pub(crate) struct Ended {
    pub sinks: Vec<Box<dyn sink::Sink>>,
    pub interrupted: bool,
}

/// Runs one configuration until `stop` (a reload or the shutdown), then stops every
/// thread it started, drains the queue to the sinks and gives them back.
fn run_generation<'scope>(
    s: &'scope Scope<'scope, '_>,
    config: &Config,
    sinks: Vec<Box<dyn sink::Sink>>,
    lasting: &Lasting,
    stop: &Shutdown,
) -> Result<Ended, FatalError> {
    let metrics = &lasting.metrics;
    let files_mode = FilesMode::new(&config.containers).map_err(FatalError)?;
    let client = Arc::new(DockerClient::new(
        ClientSettings::new(&config.docker).map_err(fatal)?,
        metrics.clone(),
    ));
    let sink_names: Vec<String> = sinks.iter().map(|s| s.name().to_owned()).collect();
    let interrupters: Vec<Interrupter> = sinks.iter().filter_map(|s| s.interrupter()).collect();
    metrics.init_labels(&sink_names, &EndReason::ALL.map(EndReason::as_str));
    {
        let client = client.clone();
        stop.on_trigger(move || client.shutdown());
    }
    let (tx, rx) = queue::bounded(
        config.pipeline.queue_records,
        usize::try_from(config.pipeline.queue_bytes.get()).unwrap_or(usize::MAX),
    );
    metrics.watch_queue(rx.observer());
    let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
    let health = &lasting.health;
    let sink_health = health.delivery();
    let warnings = config.insecure_sinks();
    warnings.iter().for_each(|w| log::warn!("{w}"));
    health.set_warnings(warnings);
    let positions = &lasting.positions;
    let dispatcher = Dispatcher::new(
        rx,
        sinks,
        BatchSettings::new(&config.pipeline, &config.positions),
        positions.clone(),
        sink_health,
        metrics.clone(),
        stop.clone(),
    );
    let rules = Arc::new(crate::process::rules::Rules::new(&config.rules));
    // One inotify instance and thread for every reader of files (README, "Files mode").
    let watcher = (files_mode.is_some() || !config.files.paths.is_empty())
        .then(|| Watcher::start(metrics.inotify_fallbacks.clone(), stop));
    let files_mode = match &watcher {
        Some(w) => files_mode.map(|f| f.with_watching(w.watching())),
        None => files_mode,
    };
    let host_files = HostFiles::new(
        &config.files,
        config.containers.max_line_bytes(),
        lasting.host.clone(),
        positions.clone(),
        tx.clone(),
        metrics.clone(),
        stop.clone(),
    )
    .map(|h| h.with_rules(rules.clone()))
    .map(|h| match &watcher {
        Some(w) => h.with_watching(w.watching()),
        None => h,
    });
    let supervisor = Supervisor::new(
        client.clone(),
        SupervisorSettings::new(
            &config.containers,
            files_mode,
            lasting.host.clone(),
            // `initial = "now"` counts from the process start, not from a reload: a
            // container followed without an acknowledged position yet loses nothing.
            lasting.run_started,
            positions.first_run_at(),
        )
        .with_rules(rules.clone()),
        tx,
        (ev_tx.clone(), ev_rx),
        metrics.clone(),
        lasting.registry.clone(),
        positions.clone(),
        health.clone(),
        stop.clone(),
    );

    let dispatcher_thread = spawn(s, "dispatcher", threads::DISPATCHER_STACK, move || {
        dispatcher.run()
    })?;
    let events_thread = {
        let (client, metrics, health, stop) = (
            client.clone(),
            metrics.clone(),
            health.clone(),
            stop.clone(),
        );
        spawn(s, "events", threads::SERVICE_STACK, move || {
            capture::events::run(&client, &ev_tx, &metrics, &health, &stop);
            drop(ev_tx);
        })?
    };
    let files_thread = match host_files {
        Some(h) => Some(spawn(s, "files", threads::FOLLOWER_STACK, move || h.run())?),
        None => None,
    };
    // Returns after the stop, with every follower joined and its queue sender dropped.
    supervisor.run();
    let _ = events_thread.join();
    if let Some(t) = files_thread {
        let _ = t.join();
    }
    // Every reader of files is joined: nothing waits on inotify any more.
    drop(watcher);
    drain(
        dispatcher_thread,
        config.pipeline.shutdown_timeout.get(),
        &interrupters,
    )
}

/// Stops the endpoint server of `slot` and joins its thread; the slot is left empty.
fn stop_server(
    slot: &mut (
        Option<Arc<server::Server>>,
        Option<ScopedJoinHandle<'_, ()>>,
    ),
) {
    if let Some(srv) = slot.0.take() {
        srv.unblock();
    }
    if let Some(t) = slot.1.take() {
        let _ = t.join();
    }
}

/// The endpoint server's thread, serving until `srv` is unblocked.
fn spawn_server<'scope, 'env>(
    s: &'scope Scope<'scope, 'env>,
    srv: Arc<server::Server>,
    state: &'scope server::State,
) -> Result<ScopedJoinHandle<'scope, ()>, FatalError> {
    spawn(s, "http", threads::SERVICE_STACK, move || {
        server::serve(&srv, state)
    })
}

/// Spawns a named thread of the scope, of `stack` bytes.
fn spawn<'scope, T: Send + 'scope>(
    s: &'scope Scope<'scope, '_>,
    name: &str,
    stack: usize,
    f: impl FnOnce() -> T + Send + 'scope,
) -> Result<ScopedJoinHandle<'scope, T>, FatalError> {
    threads::spawn_scoped(s, name.to_owned(), stack, f)
        .map_err(|e| fatal(format!("cannot spawn the {name} thread: {e}")))
}

/// Waits for the dispatcher to drain within `budget`; a sink request hung past it is
/// aborted so the stop stays bounded. Gives the sinks back.
fn drain(
    dispatcher: ScopedJoinHandle<'_, Vec<Box<dyn sink::Sink>>>,
    budget: Duration,
    interrupters: &[Interrupter],
) -> Result<Ended, FatalError> {
    let end = Instant::now() + budget;
    while !dispatcher.is_finished() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let interrupted = !dispatcher.is_finished();
    if interrupted {
        log::warn!("shutdown budget spent with a sink write in flight: aborting it");
        for interrupt in interrupters {
            interrupt();
        }
    }
    let sinks = dispatcher
        .join()
        .map_err(|_| fatal("the dispatcher thread panicked"))?;
    Ok(Ended { sinks, interrupted })
}

/// The host name put in every record.
fn host_name() -> Arc<str> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name = name.trim();
    Arc::from(if name.is_empty() { "unknown" } else { name })
}
