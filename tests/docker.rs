//! The tests that need a real Docker Engine: they run the real `log-capturer` binary
//! against the daemon that `scripts/test.sh` starts. Built only with the `docker-tests`
//! feature (`cargo test --features docker-tests`), which scripts/test.sh turns on; with the
//! feature, a missing daemon fails these tests. The tests that need no daemon are
//! `tests/offline.rs`.

mod capture;
mod connections;
mod endpoints;
mod files_mode;
mod hostfiles;
mod image;
mod lifecycle;
// The fake Loki and Elasticsearch of the sink tests (their self-tests run offline).
#[allow(dead_code)]
mod receivers;
mod resume;
mod rules;
mod sinks;
mod strain;
mod tls;
mod tls_support;
// Shared with tests/offline.rs.
#[allow(dead_code)]
mod util;
