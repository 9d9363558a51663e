//! Every thread the capturer spawns, named and with an explicit stack size (README,
//! Guarantees). Rust's default is 2 MiB of address space per thread; a follower needs far
//! less, and there is one follower per container. Only the pages a thread touches count in
//! RSS, so this mostly saves address space, not resident memory (docs/BENCHMARKS.md). A
//! page once touched stays resident for the thread's life, though: a deep call a
//! long-lived thread makes once (a follower opening its logs request) runs on a thread of
//! its own (`run_apart`), whose pages go back to the kernel when it ends.
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

/// A short-lived thread on which a follower opens its logs request (`run_apart`): ureq's
/// request path is about 22 KiB of stack deep (its `run` frame alone 9 KiB, the response
/// parser's 128-header array 4.6 KiB; measured with gdb in a release build), against
/// 9 KiB for reading the open body. 128 KiB is over five times that depth; not bisected:
/// every API-mode test opens its streams on it.
pub const OPENER_STACK: usize = 128 * 1024 * BUILD_FACTOR;

/// Runs `f` on a short-lived thread of `stack` bytes, waits for it, and returns what it
/// returned: a deep call made once by a long-lived thread then does not leave the stack
/// pages it touched resident for that thread's life (a stack page, once touched, stays in
/// RSS; glibc gives an exited thread's stack pages back to the kernel). A panic in `f` is
/// resumed on the caller, as if `f` had run there. When no thread can be spawned (a
/// thread limit), `f` runs on the calling thread: the same result, more memory.
pub fn run_apart<T: Send, F: FnOnce() -> T + Send>(name: &str, stack: usize, f: F) -> T {
    let slot = parking_lot::Mutex::new(Some(f));
    let ran = std::thread::scope(|s| {
        let run = || slot.lock().take().map(|f| f());
        spawn_scoped(s, name.to_owned(), stack, run).map(|thread| thread.join())
    });
    match (ran, slot.into_inner()) {
        (Ok(Ok(Some(out))), _) => out,
        (Ok(Err(panic)), _) => std::panic::resume_unwind(panic),
        (Err(e), Some(f)) => {
            log::debug!("{name}: no thread to run on ({e}); running on the caller's");
            f()
        }
        // The thread ran `f` (the slot is empty) and returned its result, or it did not
        // and the slot still holds `f`: the two other pairs cannot happen.
        (Ok(Ok(None)), _) | (Err(_), None) => {
            unreachable!("run_apart: `f` ran and returned nothing")
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn run_apart_runs_on_another_thread_and_returns_what_it_returned() {
        let caller = thread::current().id();
        let borrowed = [1, 2, 3];
        let (ran_on, name, sum) = run_apart("apart-test", OPENER_STACK, || {
            let me = thread::current();
            (
                me.id(),
                me.name().map(str::to_owned),
                borrowed.iter().sum::<i32>(),
            )
        });
        assert_ne!(ran_on, caller);
        assert_eq!(name.as_deref(), Some("apart-test"));
        assert_eq!(sum, 6);
    }

    #[test]
    fn run_apart_resumes_a_panic_on_the_caller() {
        let caught = std::panic::catch_unwind(|| {
            run_apart("apart-panic", OPENER_STACK, || -> u32 {
                panic!("deep call failed")
            })
        });
        let panic = caught.expect_err("the panic reached the caller");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"deep call failed"));
    }

    #[test]
    fn run_apart_runs_on_the_caller_when_no_thread_can_be_spawned() {
        // A stack of 2^62 bytes cannot be mapped: the spawn fails, `f` still runs, here.
        let caller = thread::current().id();
        let ran_on = run_apart("apart-nomem", 1 << 62, || thread::current().id());
        assert_eq!(ran_on, caller);
    }
}
