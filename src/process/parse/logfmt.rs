//! logfmt: `key=value key2="quoted value with \"escapes\"" flag`.
//!
//! A key is a run of characters other than whitespace, `=` and `"`. A value is bare (up to
//! the next whitespace, `=` and `"` included) or double-quoted, with the escapes `\"`,
//! `\\`, `\n`, `\t` and `\r`; any other backslash is kept as written. Every value is a
//! string (no number guessing), `key=` is the empty string and a key alone is `true`.
//! Later duplicates overwrite earlier ones. Whitespace means ASCII whitespace.
//!
//! Not logfmt (`None`): no `key=value` pair at all (plain prose), an unterminated quote, a
//! stray `=` or `"` where a key should start, a quote right after a key, or text glued to
//! a closing quote.

use serde_json::Value;

use super::Fields;

pub(super) fn parse(message: &str) -> Option<Fields> {
    let mut fields = Fields::new();
    let mut paired = false;
    let mut rest = message.trim_ascii_start();
    while !rest.is_empty() {
        let key_len = rest
            .find(|c: char| c.is_ascii_whitespace() || c == '=' || c == '"')
            .unwrap_or(rest.len());
        if key_len == 0 {
            return None;
        }
        let (key, after_key) = rest.split_at(key_len);
        let (value, after_value) = match after_key.strip_prefix('=') {
            Some(value) => {
                paired = true;
                let (text, after) = value_at(value)?;
                (Value::String(text), after)
            }
            None if after_key.starts_with('"') => return None,
            None => (Value::Bool(true), after_key),
        };
        fields.insert(key.to_owned(), value);
        rest = after_value.trim_ascii_start();
    }
    paired.then_some(fields)
}

/// The value at the start of `input`, and what follows it.
fn value_at(input: &str) -> Option<(String, &str)> {
    let Some(quoted) = input.strip_prefix('"') else {
        let end = input
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(input.len());
        return Some((input[..end].to_owned(), &input[end..]));
    };
    let (text, after) = unquote(quoted)?;
    if after.starts_with(|c: char| !c.is_ascii_whitespace()) {
        return None;
    }
    Some((text, after))
}

/// The text of a quoted value up to its closing quote (excluded from `input`), and what
/// follows the quote; `None` when the quote is never closed.
fn unquote(input: &str) -> Option<(String, &str)> {
    let bytes = input.as_bytes();
    let mut text = String::new();
    let mut from = 0;
    loop {
        // `"` and `\` are ASCII, so every index found is a char boundary.
        let at = from + memchr::memchr2(b'"', b'\\', &bytes[from..])?;
        text.push_str(&input[from..at]);
        if bytes[at] == b'"' {
            return Some((text, &input[at + 1..]));
        }
        let escaped = input[at + 1..].chars().next()?;
        match escaped {
            'n' => text.push('\n'),
            't' => text.push('\t'),
            'r' => text.push('\r'),
            '"' | '\\' => text.push(escaped),
            other => {
                text.push('\\');
                text.push(other);
            }
        }
        from = at + 1 + escaped.len_utf8();
    }
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

    #[test]
    fn pairs_quotes_and_flags() {
        assert_eq!(
            parse(r#"level=info msg="request done" status=200 cached dur=1.5ms"#),
            fields(json!({
                "level": "info", "msg": "request done", "status": "200",
                "cached": true, "dur": "1.5ms"
            }))
        );
    }

    #[test]
    fn escapes_in_quoted_values() {
        assert_eq!(
            parse(r#"a="say \"hi\"" b="back\\slash" c="l1\nl2\tt\rr" d="\q\é" e="""#),
            fields(json!({
                "a": "say \"hi\"", "b": "back\\slash", "c": "l1\nl2\tt\rr",
                "d": "\\q\\é", "e": ""
            }))
        );
    }

    #[test]
    fn empty_values_bare_equals_and_whitespace() {
        assert_eq!(
            parse("  a=  b=x=y  c=\"q\"\t d=a\"b\r\n"),
            fields(json!({"a": "", "b": "x=y", "c": "q", "d": "a\"b"}))
        );
    }

    #[test]
    fn unicode_keys_and_values() {
        assert_eq!(
            parse("ключ=значение 名前=\"値 です\" emoji=🦀 nbsp=a\u{a0}b"),
            fields(json!({
                "ключ": "значение", "名前": "値 です", "emoji": "🦀", "nbsp": "a\u{a0}b"
            }))
        );
    }

    #[test]
    fn later_duplicates_overwrite() {
        assert_eq!(parse("a=1 a=2 b a=3"), fields(json!({"a": "3", "b": true})));
        assert_eq!(parse("b=x b"), fields(json!({"b": true})));
    }

    #[test]
    fn not_logfmt() {
        for message in [
            "",
            "   ",
            "hello world",
            "single",
            "a=\"unterminated",
            "a=\"ends in a backslash\\",
            "a=\"x\"glued",
            "=value",
            "a=1 =2",
            "a=1 \"stray\"",
            "key\"quoted\"=1",
            "x = 1",
        ] {
            assert_eq!(parse(message), None, "{message:?}");
        }
    }

    /// Quotes `value` the way a logfmt writer would.
    fn quote(value: &str) -> String {
        let mut out = String::from("\"");
        for c in value.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    proptest! {
        #[test]
        fn written_pairs_parse_back(
            pairs in proptest::collection::vec(("[a-zA-Z_][a-zA-Z0-9_.-]{0,8}", any::<String>()), 1..8),
        ) {
            let message: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
            let expected: Fields = pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            prop_assert_eq!(parse(&message.join(" ")), Some(expected));
        }
    }
}
