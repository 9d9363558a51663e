//! Every thread the capturer spawns, named and with an explicit stack size (README,
//! Guarantees). Rust's default is 2 MiB of address space per thread; a follower needs far
//! less, and there is one follower per container. Only the pages a thread touches count in RSS, so this mostly saves
//! address space, not resident memory (docs/BENCHMARKS.md).
//!
//! A size is checked by running the deepest path its thread takes on a thread of half that
//! size (`capture::follower::deep_tests`, `sink::deep_tests`); the smallest size that
//! still passes, found by bisection (that test's function with other sizes, one process
//! each), is noted at each constant. A stack overflow aborts the process: it cannot go
//! unnoticed.

use std::io;
use std::thread::{JoinHandle, Scope, ScopedJoinHandle};

/// Unoptimised code takes about four times the stack of the release build (the
/// follower's deepest path: 277 KiB against 71 KiB; the dispatcher's, 319 against 75). Debug builds (the unit tests, and the
/// binary the integration tests run) get every size below times this, so the tests check
/// the build they run in; `cargo test --release` checks the shipped sizes.
const BUILD_FACTOR: usize = if cfg!(debug_assertions) { 4 } else { 1 };

/// A follower (one per container) and the host-files thread: read, decode and merge a
/// line up to `containers.max_line_bytes`, join it (multiline), parse it (JSON nested to
/// serde_json's depth limit of 128, logfmt, regex) and queue it. The deepest path
/// (`capture::follower::deep_tests`) passes on 71 KiB and overflows on 67 KiB (release,
/// by bisection; 277 KiB in a debug build): 256 KiB is 3.6 times that.
pub const FOLLOWER_STACK: usize = 256 * 1024 * BUILD_FACTOR;

/// The dispatcher, on which every sink runs: TLS handshakes (rustls), gzip, JSON
/// serialisation, templates that read fields nested to serde_json's depth limit. Its
/// deepest path measured (`sink::deep_tests`: Loki over TLS with such templates, and a
/// file sink) passes on 75 KiB and overflows on 71 KiB (release; 319 KiB in a debug
/// build). The other sinks are not measured: 512 KiB leaves them over six times that.
pub const DISPATCHER_STACK: usize = 512 * 1024 * BUILD_FACTOR;

/// The reload thread: reads and checks a new configuration and opens its sinks (TOML,
/// regex compilation, TLS material). Rare and alone, so generous.
pub const RELOAD_STACK: usize = 1024 * 1024 * BUILD_FACTOR;

/// The events, signal and endpoint server threads: short JSON answers of the daemon,
/// HTTP requests of a few KiB, the metrics text. Not bisected: run at these sizes by
/// every test of the endpoints and of discovery.
pub const SERVICE_STACK: usize = 128 * 1024 * BUILD_FACTOR;

/// Spawns a named thread of `stack` bytes.
pub fn spawn<T: Send + 'static>(
    name: String,
    stack: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name)
        .stack_size(stack)
        .spawn(f)
}

/// Spawns a named thread of `stack` bytes in the scope `s`.
pub fn spawn_scoped<'scope, T: Send + 'scope>(
    s: &'scope Scope<'scope, '_>,
    name: String,
    stack: usize,
    f: impl FnOnce() -> T + Send + 'scope,
) -> io::Result<ScopedJoinHandle<'scope, T>> {
    std::thread::Builder::new()
        .name(name)
        .stack_size(stack)
        .spawn_scoped(s, f)
}
