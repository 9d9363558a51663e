//! log-capturer: follows the logs of every container on the local Docker Engine (and host
//! log files) and ships each line, with its metadata, to sinks. Synchronous: OS threads,
//! no async runtime.
//!
//! # Layout
//! - [`config`]: the TOML configuration, defaults, environment overrides, validation.
//! - [`docker`]: the GET-only Docker API client over the Unix socket (ureq on our own
//!   transport), the bounded keep-alive cache, and the pure stdcopy demux.
//! - [`capture`]: what is followed and how lines become records: the supervisor and the
//!   events thread (discovery), one follower per container (reading the API stream or the
//!   json-file log), the host-files thread (`files.paths`), the inotify thread that wakes
//!   the readers of files (`capture::watch`), the pure decoders, and the
//!   [`capture::record::Record`].
//! - [`sink`]: the bounded queue, the dispatcher (batches, retries, acks) and the sinks:
//!   file, stdout, Loki, Elasticsearch.
//! - [`tls`]: the network sinks' TLS (private CAs, client certificates, `server_name`).
//! - [`process`]: the rule stage's pure parts: multiline trace detection and the
//!   message parsers (JSON, logfmt, regex).
//! - [`positions`]: acknowledged positions, persisted atomically.
//! - [`metrics`], [`health`], [`server`]: what the operator sees.
//! - [`shutdown`]: the one stop signal every thread observes; [`backoff`]: retry delays;
//!   [`reload`]: SIGHUP, a new configuration checked, then applied by a clean stop and start.
//! - [`threads`]: every thread spawned, named, with its stack size.
//! - `capturer`: [`run`], which builds every part from its config section and runs
//!   them as threads (its module doc draws the diagram).
#![forbid(unsafe_code)]

pub mod backoff;
pub mod capture;
mod capturer;
pub mod config;
pub mod docker;
pub mod health;
pub mod metrics;
pub mod positions;
pub mod process;
pub mod reload;
pub mod server;
pub mod shutdown;
pub mod sink;
pub mod threads;
pub mod tls;

pub use capturer::{run, FatalError};
pub use metrics::Metrics;
pub use reload::ReloadSource;
