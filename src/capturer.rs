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
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use crate::capture::follower::{EndReason, FilesMode};
use crate::capture::hostfiles::HostFiles;
use crate::capture::streams::StreamRegistry;
use crate::capture::supervisor::{Supervisor, SupervisorSettings};
use crate::capture::timestamp::Timestamp;
use crate::config::Config;
use crate::docker::client::{ClientSettings, DockerClient};
use crate::health::{DeliveryHealth, Health};
use crate::metrics::Metrics;
use crate::positions::Positions;
use crate::shutdown::Shutdown;
use crate::sink::dispatcher::{BatchSettings, Dispatcher};
use crate::sink::{queue, Interrupter};
use crate::{capture, server, sink};

/// A condition that stops the capturer at start (exit code 1).
#[derive(Debug)]
pub struct FatalError(pub String);

impl fmt::Display for FatalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FatalError {}

fn fatal(e: impl fmt::Display) -> FatalError {
    FatalError(e.to_string())
}

/// Runs the capturer until `shutdown` is triggered, then stops deterministically.
pub fn run(config: &Config, shutdown: Shutdown) -> Result<(), FatalError> {
    let files_mode = FilesMode::new(&config.containers).map_err(FatalError)?;
    let metrics = Arc::new(Metrics::new().map_err(|e| fatal(format!("metrics: {e}")))?);
    let client = Arc::new(DockerClient::new(
        ClientSettings::new(&config.docker).map_err(fatal)?,
        metrics.clone(),
    ));
    let http = match config.server.listen.as_str() {
        "" => None,
        listen => Some(server::bind(listen).map_err(FatalError)?),
    };
    let sinks = sink::open_all(&config.sinks, &metrics).map_err(FatalError)?;
    let sink_names: Vec<String> = sinks.iter().map(|s| s.name().to_owned()).collect();
    let interrupters: Vec<Interrupter> = sinks.iter().filter_map(|s| s.interrupter()).collect();
    metrics.init_labels(&sink_names, &EndReason::ALL.map(EndReason::as_str));
    {
        let client = client.clone();
        shutdown.on_trigger(move || client.shutdown());
    }
    let run_started = Timestamp::now();
    let positions = Arc::new(Positions::open(&config.positions.path, run_started).map_err(fatal)?);
    match positions.last_run_at() {
        Some(t) => log::info!(
            "positions: {} containers, previous run last wrote at {t}",
            positions.len()
        ),
        None => log::info!("positions: first run"),
    }

    let (tx, rx) = queue::bounded(
        config.pipeline.queue_records,
        usize::try_from(config.pipeline.queue_bytes.get()).unwrap_or(usize::MAX),
    );
    metrics
        .watch_queue(rx.observer())
        .map_err(|e| fatal(format!("metrics: {e}")))?;
    let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
    let sink_health = Arc::new(DeliveryHealth::default());
    let health = Arc::new(Health::new(sink_health.clone()));
    for warning in config.insecure_sinks() {
        log::warn!("{warning}");
        health.add_warning(warning);
    }
    let registry = Arc::new(StreamRegistry::default());
    let host = host_name();
    let dispatcher = Dispatcher::new(
        rx,
        sinks,
        BatchSettings::new(&config.pipeline, &config.positions),
        positions.clone(),
        sink_health,
        metrics.clone(),
        shutdown.clone(),
    );
    let rules = Arc::new(crate::process::rules::Rules::new(&config.rules));
    let host_files = HostFiles::new(
        &config.files,
        config.containers.max_line_bytes(),
        host.clone(),
        positions.clone(),
        tx.clone(),
        metrics.clone(),
        shutdown.clone(),
    )
    .map(|h| h.with_rules(rules.clone()));
    let supervisor = Supervisor::new(
        client.clone(),
        SupervisorSettings::new(
            &config.containers,
            files_mode,
            host,
            run_started,
            positions.first_run_at(),
        )
        .with_rules(rules.clone()),
        tx,
        (ev_tx.clone(), ev_rx),
        metrics.clone(),
        registry.clone(),
        positions,
        health.clone(),
        shutdown.clone(),
    );
    let state = server::State {
        metrics: metrics.clone(),
        health: health.clone(),
        streams: registry,
    };

    std::thread::scope(|s| -> Result<(), FatalError> {
        let server_thread = match &http {
            Some(srv) => Some(spawn(s, "http", || server::serve(srv, &state))?),
            None => None,
        };
        let dispatcher_thread = spawn(s, "dispatcher", move || dispatcher.run())?;
        let events_thread = spawn(s, "events", || {
            capture::events::run(&client, &ev_tx, &metrics, &health, &shutdown);
            drop(ev_tx);
        })?;
        let files_thread = match host_files {
            Some(h) => Some(spawn(s, "files", move || h.run())?),
            None => None,
        };
        log::info!("log-capturer {} started", env!("CARGO_PKG_VERSION"));

        // Returns after shutdown, with every follower joined and its queue sender dropped.
        supervisor.run();
        let _ = events_thread.join();
        if let Some(t) = files_thread {
            let _ = t.join();
        }
        drain(
            dispatcher_thread,
            config.pipeline.shutdown_timeout.get(),
            &interrupters,
        );
        if let Some(srv) = &http {
            srv.unblock();
        }
        if let Some(t) = server_thread {
            let _ = t.join();
        }
        log::info!("log-capturer stopped");
        Ok(())
    })
}

/// Spawns a named thread of the scope.
fn spawn<'scope, T: Send + 'scope>(
    s: &'scope Scope<'scope, '_>,
    name: &str,
    f: impl FnOnce() -> T + Send + 'scope,
) -> Result<ScopedJoinHandle<'scope, T>, FatalError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn_scoped(s, f)
        .map_err(|e| fatal(format!("cannot spawn the {name} thread: {e}")))
}

/// Waits for the dispatcher to drain within `budget`; a sink request hung past it is
/// aborted so the stop stays bounded.
fn drain(dispatcher: ScopedJoinHandle<'_, ()>, budget: Duration, interrupters: &[Interrupter]) {
    let end = Instant::now() + budget;
    while !dispatcher.is_finished() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !dispatcher.is_finished() {
        log::warn!("shutdown budget spent with a sink write in flight: aborting it");
        for interrupt in interrupters {
            interrupt();
        }
    }
    let _ = dispatcher.join();
}

/// The host name put in every record.
fn host_name() -> Arc<str> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name = name.trim();
    Arc::from(if name.is_empty() { "unknown" } else { name })
}
