//! The `headers` table of the HTTP sink: extra request headers, checked so that every one
//! can be sent as configured. A name is an HTTP token and not a header the sink sets
//! itself (from `format`, `gzip`, the credentials, the URL); names are case-insensitive,
//! so two spellings of one name are refused; a value is one non-empty line. Values are
//! secrets and never appear in an error.

use std::collections::BTreeMap;

use super::{ConfigError, Secret};

/// Headers the HTTP sink sets itself, lowercase, with what sets them.
const RESERVED: [(&str, &str); 7] = [
    ("authorization", "use username/password or bearer_token"),
    ("content-type", "the sink sets it from format"),
    ("content-encoding", "the sink sets it from gzip"),
    ("content-length", "the sink sets it from the body"),
    ("transfer-encoding", "the sink sets it from the body"),
    ("host", "the sink sets it from url"),
    ("connection", "the sink manages its connections"),
];

/// Checks `headers`, found at `key` (`sinks[1].headers`); errors name the header's key.
pub(super) fn check(headers: &BTreeMap<String, Secret>, key: &str) -> Result<(), ConfigError> {
    let mut seen = BTreeMap::new();
    for (name, value) in headers {
        let at = |message: String| ConfigError::at(format!("{key}.{name}"), message);
        check_name(name).map_err(at)?;
        if let Some(first) = seen.insert(name.to_ascii_lowercase(), name) {
            return Err(at(format!(
                "the same header as {key}.{first}: names are case-insensitive"
            )));
        }
        check_value(value.expose()).map_err(at)?;
    }
    Ok(())
}

/// An HTTP token (RFC 9110, 5.6.2) that the sink does not set itself.
fn check_name(name: &str) -> Result<(), String> {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(tchar) {
        return Err(format!(
            "invalid header name {name:?}: expected letters, digits and !#$%&'*+-.^_`|~"
        ));
    }
    let lower = name.to_ascii_lowercase();
    match RESERVED.iter().find(|(reserved, _)| *reserved == lower) {
        Some((_, why)) => Err(format!("{name} cannot be set in headers: {why}")),
        None => Ok(()),
    }
}

/// One non-empty line; a line break would end the header and start another.
fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty: leave the header out instead".to_owned());
    }
    match value.chars().any(char::is_control) {
        true => Err("must not contain control characters (line breaks, tabs)".to_owned()),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Result<(), ConfigError> {
        let map = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), Secret::new(*value)))
            .collect();
        check(&map, "sinks[1].headers")
    }

    #[track_caller]
    fn assert_invalid(pairs: &[(&str, &str)], key: &str, needle: &str) {
        let err = headers(pairs).expect_err(key);
        assert_eq!(err.key(), Some(key), "{err}");
        assert!(err.message().contains(needle), "{err} lacks {needle:?}");
    }

    #[test]
    fn tokens_with_one_line_values_pass() {
        headers(&[]).unwrap();
        let value = "a value: with spaces, ünïcode and \"quotes\"";
        headers(&[("X-Api-Key", "k3y"), ("x_custom.v2~!#$%&'*+^`|", value)]).unwrap();
    }

    #[test]
    fn names_must_be_tokens() {
        for bad in ["", "X Api", "X-Api:", "Ä", "X(1)", "a/b", "\"q\"", "a\nb"] {
            let key = format!("sinks[1].headers.{bad}");
            assert_invalid(&[(bad, "v")], &key, "invalid header name");
        }
    }

    #[test]
    fn values_are_one_nonempty_line_and_never_shown() {
        let key = "sinks[1].headers.X-Api-Key";
        assert_invalid(&[("X-Api-Key", "")], key, "must not be empty");
        for bad in ["k3y\r\nX-Evil: 1", "k3y\n", "k3y\u{7f}", "k3y\t"] {
            assert_invalid(&[("X-Api-Key", bad)], key, "control");
            let err = headers(&[("X-Api-Key", bad)]).unwrap_err();
            assert!(!err.to_string().contains("k3y"), "{err}");
        }
    }

    #[test]
    fn two_spellings_of_one_name_are_refused() {
        let pairs = [("X-Tag", "a"), ("x-tag", "b")];
        assert_invalid(
            &pairs,
            "sinks[1].headers.x-tag",
            "same header as sinks[1].headers.X-Tag",
        );
    }

    #[test]
    fn headers_the_sink_sets_are_refused_naming_what_sets_them() {
        for (name, why) in [
            ("Authorization", "username/password or bearer_token"),
            ("content-type", "format"),
            ("Content-Encoding", "gzip"),
            ("CONTENT-LENGTH", "body"),
            ("Transfer-Encoding", "body"),
            ("Host", "url"),
            ("Connection", "connections"),
        ] {
            let key = format!("sinks[1].headers.{name}");
            assert_invalid(
                &[(name, "v")],
                &key,
                &format!("{name} cannot be set in headers: "),
            );
            assert_invalid(&[(name, "v")], &key, why);
        }
    }
}
