//! log-capturer: follows the logs of every container on the local Docker Engine and ships
//! each line, with container metadata, to sinks. Synchronous: OS threads, no async runtime.
//!
//! # Layout
//! - [`config`]: the TOML configuration, defaults, env overrides, validation.
//! - [`docker`]: the GET-only Docker API client over the Unix socket (ureq + our
//!   transport), the bounded keep-alive cache, and the pure stdcopy demux.
//! - [`capture`]: supervisor (what to follow), events thread, one follower thread per
//!   container, pure decode/merge/timestamp/filter, and the [`capture::record::Record`].
//! - [`sink`]: the dispatcher (batches, acks) and the sinks (file, stdout).
//! - [`positions`]: acknowledged positions; [`metrics`], [`health`], [`server`]: what the
//!   operator sees; [`shutdown`]: the one stop signal every thread observes.
//!
//! # Threads
//! [`run`] starts, inside one `std::thread::scope`: the HTTP server, the dispatcher, the
//! events thread, and runs the supervisor on the calling thread; the supervisor owns the
//! follower threads' handles. Shutdown stops discovery, interrupts every Docker read,
//! joins the followers, lets the dispatcher drain the queue, then stops the server.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod capture;
pub mod config;
pub mod docker;
pub mod health;
pub mod metrics;
pub mod positions;
pub mod server;
pub mod shutdown;
pub mod sink;

use std::fmt;
use std::sync::Arc;

use capture::filter::Filter;
use capture::supervisor::{Supervisor, SupervisorSettings};
use capture::timestamp::Timestamp;
use config::Config;
use docker::client::{ClientSettings, DockerClient};
use shutdown::Shutdown;
use sink::dispatcher::{BatchSettings, Dispatcher, SinkHealth};

/// A condition that stops the capturer at start (exit code 1).
#[derive(Debug)]
pub struct FatalError(pub String);

impl fmt::Display for FatalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FatalError {}

/// The host name put in every record.
fn host_name() -> Arc<str> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name = name.trim();
    Arc::from(if name.is_empty() { "unknown" } else { name })
}

fn client_settings(config: &Config) -> Result<ClientSettings, FatalError> {
    let d = &config.docker;
    Ok(ClientSettings {
        socket: config
            .socket_path()
            .map_err(|e| FatalError(e.to_string()))?,
        max_idle_connections: d.max_idle_connections,
        idle_timeout: d.idle_timeout.get(),
        request_timeout: d.request_timeout.get(),
        read_timeout: d.read_timeout.get(),
        api_version: (d.api_version != "auto").then(|| d.api_version.clone()),
    })
}

fn supervisor_settings(
    config: &Config,
    run_started: Timestamp,
    first_run_at: Timestamp,
) -> SupervisorSettings {
    let c = &config.containers;
    SupervisorSettings {
        filter: Filter {
            include_names: c.include_names.clone(),
            exclude_names: c.exclude_names.clone(),
            include_labels: c.include_labels.clone(),
            exclude_labels: c.exclude_labels.clone(),
            include_images: c.include_images.clone(),
            record_labels: c.record_labels.clone(),
            own_id: capture::filter::own_container_id(),
        },
        initial: c.initial,
        streams: capture::follower::Streams {
            stdout: c.stdout,
            stderr: c.stderr,
        },
        max_line_bytes: usize::try_from(c.max_line_bytes.get()).unwrap_or(usize::MAX),
        max_streams: c.max_streams,
        host: host_name(),
        run_started,
        first_run_at,
        files: match c.read_from {
            config::ReadFrom::Api => None,
            mode => Some(capture::follower::FilesMode {
                root: Arc::from(c.docker_root.as_path()),
                required: mode == config::ReadFrom::Files,
            }),
        },
    }
}

/// `read_from = "files"` needs `<docker_root>/containers` (only traversed: Docker makes
/// it 0710, so the root group can reach the logs without listing it); `auto` only says.
fn check_docker_root(config: &Config) -> Result<(), FatalError> {
    let c = &config.containers;
    if c.read_from == config::ReadFrom::Api {
        return Ok(());
    }
    let dir = c.docker_root.join("containers");
    let problem = match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => "not a directory".to_owned(),
        Err(e) => e.to_string(),
    };
    if c.read_from == config::ReadFrom::Files {
        return Err(FatalError(format!(
            "containers.read_from = \"files\" but {}: {problem} (set containers.docker_root, or use \"auto\")",
            dir.display()
        )));
    }
    log::info!(
        "containers.read_from = \"auto\": {}: {problem}; following through the API",
        dir.display()
    );
    Ok(())
}

/// Runs the capturer until `shutdown` is triggered, then stops deterministically.
pub fn run(config: &Config, shutdown: Shutdown) -> Result<(), FatalError> {
    check_docker_root(config)?;
    let metrics = Arc::new(Metrics::new().map_err(|e| FatalError(format!("metrics: {e}")))?);
    let client = Arc::new(DockerClient::new(client_settings(config)?, metrics.clone()));
    let http = match config.server.listen.as_str() {
        "" => None,
        listen => Some(server::bind(listen).map_err(FatalError)?),
    };
    let sinks = sink::open_all(&config.sinks, &metrics).map_err(FatalError)?;
    let sink_names: Vec<String> = sinks.iter().map(|s| s.name().to_string()).collect();
    let interrupters: Vec<sink::Interrupter> =
        sinks.iter().filter_map(|s| s.interrupter()).collect();
    let reasons = capture::follower::EndReason::ALL.map(|r| r.as_str());
    metrics.init_labels(&sink_names, &reasons);
    {
        let client = client.clone();
        shutdown.on_trigger(move || client.shutdown());
    }

    let (tx, rx) = sink::queue::bounded(config.pipeline.queue_records);
    let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
    let run_started = Timestamp::now();
    let positions = Arc::new(
        positions::Positions::open(&config.positions.path, run_started)
            .map_err(|e| FatalError(e.to_string()))?,
    );
    match positions.last_run_at() {
        Some(t) => log::info!(
            "positions: {} containers, previous run last wrote at {t}",
            positions.len()
        ),
        None => log::info!("positions: first run"),
    }
    let sink_health = Arc::new(SinkHealth::default());
    let health = Arc::new(health::Health::new(sink_health.clone()));
    let registry = Arc::new(capture::streams::StreamRegistry::default());
    let p = &config.pipeline;
    let dispatcher = Dispatcher {
        rx,
        sinks,
        settings: BatchSettings {
            records: p.batch_records,
            bytes: usize::try_from(p.batch_bytes.get()).unwrap_or(usize::MAX),
            timeout: p.batch_timeout.get(),
            shutdown_timeout: p.shutdown_timeout.get(),
            flush_interval: config.positions.flush_interval.get(),
        },
        metrics: metrics.clone(),
        positions: positions.clone(),
        health: sink_health,
        shutdown: shutdown.clone(),
        shutdown_seen: None,
        last_sync: std::time::Instant::now(),
        unsynced: false,
        persist_failing: false,
    };
    let state = server::State {
        metrics: metrics.clone(),
        health: health.clone(),
        streams: registry.clone(),
    };
    let events_health = health.clone();
    let host_files = (!config.files.paths.is_empty()).then(|| capture::hostfiles::HostFiles {
        patterns: config.files.paths.clone(),
        host: host_name(),
        max_line_bytes: usize::try_from(config.containers.max_line_bytes.get())
            .unwrap_or(usize::MAX),
        poll: std::time::Duration::from_millis(250),
        first_run: positions.last_run_at().is_none(),
        positions: positions.clone(),
        tx: tx.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
    });
    let supervisor = Supervisor::new(
        client.clone(),
        supervisor_settings(config, run_started, positions.first_run_at()),
        tx,
        (ev_tx.clone(), ev_rx),
        metrics.clone(),
        registry,
        positions,
        health,
        shutdown.clone(),
    );

    std::thread::scope(|s| -> Result<(), FatalError> {
        let spawn_err = |e: std::io::Error| FatalError(format!("cannot spawn a thread: {e}"));
        let server_thread = match &http {
            Some(srv) => Some(
                std::thread::Builder::new()
                    .name("http".into())
                    .spawn_scoped(s, || server::serve(srv, &state))
                    .map_err(spawn_err)?,
            ),
            None => None,
        };
        let dispatcher_thread = std::thread::Builder::new()
            .name("dispatcher".into())
            .spawn_scoped(s, move || dispatcher.run())
            .map_err(spawn_err)?;
        let events_thread = std::thread::Builder::new()
            .name("events".into())
            .spawn_scoped(s, || {
                capture::events::run(&client, &ev_tx, &metrics, &events_health, &shutdown);
                drop(ev_tx);
            })
            .map_err(spawn_err)?;
        let files_thread = match host_files {
            Some(h) => Some(
                std::thread::Builder::new()
                    .name("files".into())
                    .spawn_scoped(s, move || h.run())
                    .map_err(spawn_err)?,
            ),
            None => None,
        };
        log::info!("log-capturer {} started", env!("CARGO_PKG_VERSION"));

        // Returns after shutdown, with every follower joined and the queue sender dropped.
        supervisor.run();
        let _ = events_thread.join();
        if let Some(t) = files_thread {
            let _ = t.join();
        }
        // The dispatcher drains within the shutdown budget; a sink request hung past it
        // is aborted so the stop stays bounded.
        let budget_end = std::time::Instant::now() + config.pipeline.shutdown_timeout.get();
        while !dispatcher_thread.is_finished() && std::time::Instant::now() < budget_end {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if !dispatcher_thread.is_finished() {
            log::warn!("shutdown budget spent with a sink write in flight: aborting it");
            for interrupt in &interrupters {
                interrupt();
            }
        }
        let _ = dispatcher_thread.join();
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

pub use metrics::Metrics;
