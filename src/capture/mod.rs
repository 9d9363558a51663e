//! Capture: from Docker (and host files) to records in the bounded queue.
//!
//! # Layout
//! - Discovery: `events` (the events stream, reconnected with backoff) feeds
//!   `supervisor`, which reconciles with the container list, decides where each container
//!   starts (the pure rules are in `start`), and owns the follower threads; `filter`
//!   (which containers) and `gate` (bounded concurrent logs requests) serve it;
//!   `streams` is what `/streams` shows.
//! - Reading: `follower` (one thread per container, two sources: the API logs stream or
//!   the json-file log on disk, read through `logfile` and parsed by `jsonfile`);
//!   `hostfiles` (one thread for every file of `files.paths`); both wake on inotify
//!   through `watch` (one instance and thread for the run), polling as the fallback.
//! - Pure decoding: `decode` (frames or file entries to lines, with the resume
//!   invariant), `merge` (16 KiB partial pieces), `timestamp`.
//! - Output: `record` (the [`record::Record`], its [`record::Origin`] and position).

pub mod decode;
pub mod events;
pub mod filter;
pub mod follower;
pub mod gate;
pub mod hostfiles;
pub mod jsonfile;
pub mod logfile;
pub mod merge;
pub mod record;
pub mod start;
pub mod streams;
pub mod supervisor;
pub mod timestamp;
pub mod watch;
