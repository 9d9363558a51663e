//! The tests that need no Docker daemon, one binary that a plain `cargo test` builds and
//! runs on any machine: property tests of the decoders, the command line, the fake Docker
//! daemon and the faults it plays against the real capturer binary, the fake Loki and
//! Elasticsearch receivers, and the capturer with no daemon at all. Nothing here talks to
//! a real daemon: the capturers these tests start get a fake or non-existent socket.
//! The Docker-backed tests are `tests/docker.rs`.

mod cli;
mod fake_daemon;
mod faults;
mod no_daemon;
mod props;
mod receivers;
mod receivers_selftest;
// Shared with tests/docker.rs, which uses the helpers for real containers.
#[allow(dead_code)]
mod util;
