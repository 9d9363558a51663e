//! How many entries of a push Loki refused, read from its 400 answer. Loki's 400 is
//! partial: it stores the acceptable entries of the push and names the ones it refused,
//! in one of two forms (Loki 3.6):
//!
//! - the distributor's validation of single entries (a line over `max_line_size`, a
//!   timestamp too old or too new): the message alone for one error, else
//!   `N errors like: <message>; M errors like: <message>` (errors with the same text
//!   grouped);
//! - the ingester's refusal within a stream: one line per entry
//!   (`entry with timestamp ... ignored, reason: 'entry too far behind, ...'`), then
//!   `user '<tenant>', total ignored: N out of M for stream: {...}`.
//!
//! Anything else (a stream refused whole for its labels, an answer of another server) is
//! `None`: the caller counts the whole batch as rejected. What Loki does not say cannot be
//! counted: its ingester reports the refused entries of only the last stream of a push it
//! processed (entries too far behind in an earlier stream are dropped without a word, even
//! under a 204), and its distributor's refusals are not reported when the ingester refuses
//! something too.

use std::sync::OnceLock;

use regex::Regex;

/// The number of entries Loki says it refused, when its answer says so for every error it
/// lists; at most `entries` (the push's size), never 0.
pub fn refused_entries(body: &[u8], entries: usize) -> Option<usize> {
    let text = String::from_utf8_lossy(body);
    let n = ingester_ignored(&text).or_else(|| distributor_refused(&text))?;
    (n > 0).then(|| n.min(entries))
}

/// `total ignored: N out of M`, summed (one per stream reported).
fn ingester_ignored(text: &str) -> Option<usize> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"total ignored: (\d+) out of \d+").expect("a valid regular expression")
    });
    let mut total = None;
    for c in re.captures_iter(text) {
        let n: usize = c[1].parse().ok()?;
        total = Some(total.unwrap_or(0) + n);
    }
    total
}

/// The distributor's list of entry errors: `N errors like: <message>` joined by `; `, or
/// one message alone. `None` when one of them is not about a single entry.
fn distributor_refused(text: &str) -> Option<usize> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"(?:^|; )(\d+) errors like: ").expect("a valid regular expression")
    });
    let text = text.trim();
    let heads: Vec<_> = re.captures_iter(text).collect();
    if heads.is_empty() {
        return is_entry_error(text).then_some(1);
    }
    if heads[0].get(0).map(|m| m.start()) != Some(0) {
        return None;
    }
    let mut total = 0usize;
    for (i, head) in heads.iter().enumerate() {
        let start = head.get(0)?.end();
        let end = heads
            .get(i + 1)
            .and_then(|next| next.get(0))
            .map_or(text.len(), |m| m.start());
        if !is_entry_error(text.get(start..end)?) {
            return None;
        }
        total += head[1].parse::<usize>().ok()?;
    }
    Some(total)
}

/// Whether a distributor message refuses one entry (not a whole stream).
fn is_entry_error(message: &str) -> bool {
    message.starts_with("max entry size '")
        || (message.starts_with("entry for stream '")
            && (message.contains("has timestamp too old")
                || message.contains("has timestamp too new")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAR_BEHIND: &str = "entry with timestamp 2026-12-02 10:03:06.023817465 +0000 UTC ignored, \
        reason: 'entry too far behind, entry timestamp is: 2026-12-02T10:03:06Z, oldest acceptable \
        timestamp is: 2026-12-02T10:03:11Z',\nentry with timestamp 2026-12-02 10:03:06.023817466 \
        +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2026-12-02T10:03:06Z, \
        oldest acceptable timestamp is: 2026-12-02T10:03:11Z',\nuser 'fake', total ignored: 2 out \
        of 4 for stream: {job=\"exp3\", service_name=\"exp3\"}\n";

    const TOO_LONG: &str = "max entry size '200' bytes exceeded for stream '{job=\"a; b\", \
        service_name=\"a\"}' while adding an entry with length '300' bytes";

    #[test]
    fn entries_too_far_behind_are_counted_from_total_ignored() {
        assert_eq!(refused_entries(FAR_BEHIND.as_bytes(), 10), Some(2));
        assert_eq!(refused_entries(FAR_BEHIND.as_bytes(), 1), Some(1), "capped");
    }

    #[test]
    fn lines_too_long_alone_or_grouped_are_counted() {
        assert_eq!(refused_entries(TOO_LONG.as_bytes(), 10), Some(1));
        let grouped = format!("1 errors like: {TOO_LONG}; 2 errors like: {TOO_LONG}");
        assert_eq!(refused_entries(grouped.as_bytes(), 10), Some(3));
        let old = "entry for stream '{job=\"a\"}' has timestamp too old: 2020-01-01T00:00:00Z, \
                   oldest acceptable timestamp is: 2026-11-25T00:00:00Z";
        let mixed = format!("4 errors like: {old}; 1 errors like: {TOO_LONG}");
        assert_eq!(refused_entries(mixed.as_bytes(), 10), Some(5));
    }

    #[test]
    fn a_stream_refused_whole_or_an_unknown_answer_counts_as_the_whole_batch() {
        let label = "stream '{job=\"a\", x=\"vvv\"}' has label value too long: 'vvv'";
        assert_eq!(refused_entries(label.as_bytes(), 10), None);
        let mixed = format!("1 errors like: {label}; 2 errors like: {TOO_LONG}");
        assert_eq!(refused_entries(mixed.as_bytes(), 10), None);
        for other in [
            "couldn't parse labels: 1:5: parse error: unexpected character inside braces: '-'",
            "",
            "entry too far behind for stream",
            "total ignored: 0 out of 3",
            "total ignored: many out of 3",
            "x; 2 errors like: max entry size '1' bytes",
        ] {
            assert_eq!(refused_entries(other.as_bytes(), 10), None, "{other}");
        }
    }
}
