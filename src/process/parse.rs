//! Parsers that turn a message into fields: a JSON object, logfmt pairs, or the named
//! groups of a regex. Pure: a message in, its fields or `None` out; the caller counts the
//! messages that did not parse.

mod logfmt;

use regex::Regex;
use serde_json::Value;

/// The fields parsed out of one message.
pub type Fields = serde_json::Map<String, Value>;

/// How a message becomes fields (the `parse` key of a rule).
#[derive(Debug, Clone)]
pub enum Parser {
    /// The message, trimmed of surrounding whitespace, is one JSON object; its members are
    /// the fields, nested values kept.
    Json,
    /// `key=value key2="quoted \"value\"" flag`: values are strings, a key alone is `true`.
    Logfmt,
    /// The named groups that took part in the match, as strings. A regex without named
    /// groups that matches gives no fields (`Some` of an empty map): the message did match.
    Regex(Regex),
}

impl Parser {
    /// The fields of `message`, or None when it does not parse (the caller counts that).
    pub fn parse(&self, message: &str) -> Option<Fields> {
        match self {
            Parser::Json => json(message),
            Parser::Logfmt => logfmt::parse(message),
            Parser::Regex(re) => named_groups(re, message),
        }
    }
}

/// One JSON object, nothing before or after it but whitespace.
fn json(message: &str) -> Option<Fields> {
    let object = message.trim_ascii();
    if !object.starts_with('{') {
        return None;
    }
    serde_json::from_str(object).ok()
}

fn named_groups(re: &Regex, message: &str) -> Option<Fields> {
    let captures = re.captures(message)?;
    let fields = re
        .capture_names()
        .flatten()
        .filter_map(|name| {
            let group = captures.name(name)?;
            Some((name.to_owned(), Value::String(group.as_str().to_owned())))
        })
        .collect();
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn fields(value: Value) -> Option<Fields> {
        match value {
            Value::Object(map) => Some(map),
            other => panic!("not an object: {other}"),
        }
    }

    fn regex(pattern: &str) -> Parser {
        Parser::Regex(Regex::new(pattern).expect("a valid pattern"))
    }

    #[test]
    fn json_object_members_become_fields() {
        let message = r#"  {"level":"info","n":3,"ok":true,"ctx":{"ids":[1,2]},"none":null} "#;
        assert_eq!(
            Parser::Json.parse(message),
            fields(
                json!({"level": "info", "n": 3, "ok": true, "ctx": {"ids": [1, 2]}, "none": null})
            )
        );
    }

    #[test]
    fn json_keeps_unicode_and_escapes() {
        let message = r#"{"msg":"héllo \"wörld\"\n\u2603","ключ":"値"}"#;
        assert_eq!(
            Parser::Json.parse(message),
            fields(json!({"msg": "héllo \"wörld\"\n☃", "ключ": "値"}))
        );
        assert_eq!(Parser::Json.parse("{}"), Some(Fields::new()));
        assert_eq!(Parser::Json.parse("\t{ }\r\n"), Some(Fields::new()));
    }

    #[test]
    fn json_duplicate_keys_keep_the_last() {
        assert_eq!(
            Parser::Json.parse(r#"{"a":1,"a":2}"#),
            fields(json!({"a": 2}))
        );
    }

    #[test]
    fn json_rejects_all_but_one_object() {
        for message in [
            "",
            "   ",
            "[1,2]",
            "\"text\"",
            "42",
            "null",
            "plain text {\"a\":1}",
            "{\"a\":1} trailing",
            "{\"a\":1}{\"b\":2}",
            "{\"a\":",
            "{a:1}",
            "{\"a\":1,}",
        ] {
            assert_eq!(Parser::Json.parse(message), None, "{message:?}");
        }
    }

    #[test]
    fn json_too_deep_is_rejected_not_a_stack_overflow() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(Parser::Json.parse(&deep), None);
    }

    #[test]
    fn regex_named_groups_become_string_fields() {
        let parser = regex(r"^(?P<ip>\S+) (?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3})");
        assert_eq!(
            parser.parse("10.0.0.1 GET /héllo 200 12ms"),
            fields(json!({"ip": "10.0.0.1", "method": "GET", "path": "/héllo", "status": "200"}))
        );
        assert_eq!(parser.parse("not an access log"), None);
        assert_eq!(parser.parse(""), None);
    }

    #[test]
    fn regex_groups_that_did_not_take_part_are_absent() {
        let parser = regex(r"^(?P<level>[a-z]+)(?: user=(?P<user>\w+))?");
        assert_eq!(parser.parse("info"), fields(json!({"level": "info"})));
        assert_eq!(
            parser.parse("warn user=ann"),
            fields(json!({"level": "warn", "user": "ann"}))
        );
        let empty = regex(r"^(?P<all>.*)$");
        assert_eq!(empty.parse(""), fields(json!({"all": ""})));
    }

    #[test]
    fn regex_without_named_groups_gives_no_fields_on_a_match() {
        let parser = regex(r"^(\d+) (\w+)$");
        assert_eq!(parser.parse("1 one"), Some(Fields::new()));
        assert_eq!(parser.parse("one"), None);
    }

    fn parsers() -> [Parser; 3] {
        [
            Parser::Json,
            Parser::Logfmt,
            regex(r"(?P<k>\w+)=(?P<v>[^ ]*)"),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(message in any::<String>()) {
            for parser in parsers() {
                let _ = parser.parse(&message);
            }
        }

        #[test]
        fn never_panics_on_near_misses(message in r#"[ a-zé=\\"{}\[\]:,0-9\t]{0,40}"#) {
            for parser in parsers() {
                let _ = parser.parse(&message);
            }
        }

        #[test]
        fn json_objects_round_trip(
            map in proptest::collection::btree_map(".{0,8}", (any::<i64>(), ".{0,12}"), 0..6),
        ) {
            let expected: Fields = map
                .into_iter()
                .map(|(k, (n, s))| (k, json!({"n": n, "s": s})))
                .collect();
            let message = Value::Object(expected.clone()).to_string();
            prop_assert_eq!(Parser::Json.parse(&message), Some(expected));
        }
    }
}
