//! The Docker Engine API over its Unix socket: `transport` (the socket under ureq, with
//! exact connection accounting), `client` (GET-only API surface with the bounded
//! keep-alive cache), `types` (the JSON we read), `frame` (pure stdcopy demux), `error`.

pub mod client;
pub mod error;
pub mod frame;
pub mod transport;
pub mod types;
