//! Processing rules: the home of the rule stage, which turns a stream's lines into records
//! and their messages into fields. Its pure parts live here: the multiline presets
//! (which lines continue a record) in [`detect`], the message parsers in [`parse`].

pub mod detect;
pub mod joiner;
pub mod parse;
pub mod rules;
