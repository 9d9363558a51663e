//! One follower thread per container: it reads the container's log from one of two
//! sources, decodes it into records and pushes them into the bounded queue (blocking when
//! full). Its final state (why it ended, the last position it consumed) comes back
//! through `join()`.
//!
//! # Layout
//! - `context`: the seam every source reads and writes through ([`Context`]), and what
//!   a follower starts from and ends with ([`StartFrom`], [`EndReason`]).
//! - `api`: the logs endpoint of the Docker API (the default, `read_from = "api"`).
//! - `file`: the json-file log on disk (`read_from = "files" | "auto"`), woken by
//!   inotify on the log's directory (`capture::watch`), polling as the fallback.

mod api;
mod context;
mod file;

use std::sync::Arc;

pub use context::{Container, Context, EndReason, FollowerOutcome, StartFrom, Streams};
pub use file::{open_log, OpenedLog};

use crate::capture::gate::Gate;
use crate::capture::watch::{self, Watching};
use crate::config::{ContainersConfig, ReadFrom};
use crate::docker::client::DockerClient;

/// Reading json-file logs from disk.
#[derive(Clone, Debug)]
pub struct FilesMode {
    /// `containers.docker_root`.
    pub root: Arc<std::path::Path>,
    /// `read_from = "files"`: falling back to the API is worth a warning.
    pub required: bool,
    /// Where a follower's inotify watch on its log directory comes from; `None`: it polls.
    pub watching: Option<Watching>,
    /// How often a watched follower looks at its log with no event ([`watch::RECHECK`]).
    pub recheck: std::time::Duration,
}

impl FilesMode {
    /// From `containers.read_from` (`None`: through the API). `read_from = "files"` needs
    /// `<docker_root>/containers` (only traversed: Docker makes it 0710, so the root
    /// group can reach the logs without listing it): without it, an error for exit 1;
    /// `auto` only says so and follows through the API.
    pub fn new(c: &ContainersConfig) -> Result<Option<FilesMode>, String> {
        if c.read_from == ReadFrom::Api {
            return Ok(None);
        }
        let mode = FilesMode {
            root: Arc::from(c.docker_root.as_path()),
            required: c.read_from == ReadFrom::Files,
            watching: None,
            recheck: watch::RECHECK,
        };
        let dir = c.docker_root.join("containers");
        let problem = match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => return Ok(Some(mode)),
            Ok(_) => "not a directory".to_owned(),
            Err(e) => e.to_string(),
        };
        if mode.required {
            return Err(format!(
                "containers.read_from = \"files\" but {}: {problem} (set containers.docker_root, or use \"auto\")",
                dir.display()
            ));
        }
        log::info!(
            "containers.read_from = \"auto\": {}: {problem}; following through the API",
            dir.display()
        );
        Ok(Some(mode))
    }
}

impl FilesMode {
    /// Followers wake on inotify through `watching` (polling where it falls back).
    pub fn with_watching(mut self, watching: Watching) -> FilesMode {
        self.watching = Some(watching);
        self
    }
}

/// One container's follower, ready to run on its own thread.
pub struct Follower {
    pub ctx: Context,
    pub client: Arc<DockerClient>,
    /// Bounds how many followers open a logs request at once.
    pub gate: Arc<Gate>,
    /// `read_from = "files" | "auto"`: read the json-file log from disk when there is one.
    pub files: Option<FilesMode>,
}

impl Follower {
    /// Follows the container from the source its mode picks, to the end.
    pub fn run(&self) -> FollowerOutcome {
        if let Some(files) = &self.files {
            let id = self.ctx.meta.read().id.clone();
            match open_log(&files.root, id.as_str()) {
                Ok(log) => {
                    let source = file::FileSource {
                        ctx: &self.ctx,
                        client: &self.client,
                        watching: files.watching.as_ref(),
                        recheck: files.recheck,
                    };
                    return source.follow(log);
                }
                Err(e) if files.required => log::warn!(
                    "follower {}: no json-file log to read ({e}); following it through the API",
                    id.short()
                ),
                Err(e) => log::debug!("follower {}: through the API ({e})", id.short()),
            }
        }
        api::ApiSource {
            ctx: &self.ctx,
            client: &self.client,
            gate: &self.gate,
        }
        .follow()
    }
}

#[cfg(test)]
mod deep_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_wake;
