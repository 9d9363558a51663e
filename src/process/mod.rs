//! Processing rules: the rule stage, which turns a stream's lines into records and their
//! messages into fields (README, Rules).
//!
//! # Layout
//! - `rules`: which `[[rules]]` entry applies to a container (with its label overrides)
//!   or a host file, compiled into a `Shaping`; drop/keep and parsing of one message.
//! - `stage`: one follower's stage, lines in, records out.
//! - `joiner`: multiline joining with exact positions (what keeps exactly-once).
//! - `detect`: the multiline presets (which lines continue a record).
//! - `parse`: the message parsers (JSON, logfmt, regex).

pub mod detect;
pub mod joiner;
pub mod parse;
pub mod rules;
pub mod stage;
