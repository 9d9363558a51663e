//! The tests that need a real Docker Engine: they run the real `log-capturer` binary
//! against the daemon that `scripts/test.sh` starts. Built only with the `docker-tests`
//! feature (`cargo test --features docker-tests`), which scripts/test.sh turns on; with the
//! feature, a missing daemon fails these tests. The tests that need no daemon are
//! `tests/offline.rs`. With the `real-loki` feature too, the Loki sink is also tested
//! against a real Grafana Loki (tests/loki_real.rs; a missing Loki fails them).

mod capture;
mod connections;
mod endpoints;
mod files_mode;
mod hostfiles;
mod http_sink;
mod image;
mod lifecycle;
// Against a real Grafana Loki (scripts/test.sh starts it and turns the feature on).
#[cfg(feature = "real-loki")]
mod loki_real;
#[cfg(feature = "real-loki")]
mod loki_refusals;
#[cfg(feature = "real-loki")]
mod loki_util;
// The fake Loki, Elasticsearch and HTTP endpoint of the sink tests (their self-tests run
// offline).
#[allow(dead_code)]
mod receivers;
mod reload;
mod resume;
mod rsyslog;
mod rules;
mod sinks;
mod strain;
mod stream_cap;
mod syslog;
mod tls;
mod tls_support;
// Shared with tests/offline.rs.
#[allow(dead_code)]
mod util;
