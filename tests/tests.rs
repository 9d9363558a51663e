//! Integration tests, one binary: they run the real `log-capturer` binary against the real
//! Docker daemon that `scripts/test.sh` starts. No daemon is a failure, never a skip.

mod capture;
mod cli;
mod connections;
mod endpoints;
mod fake_daemon;
mod faults;
mod files_mode;
mod hostfiles;
mod image;
mod lifecycle;
mod props;
mod receivers;
mod resume;
mod sinks;
mod util;
