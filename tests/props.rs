//! Property tests of the pure decoders: stdcopy/TTY demux ([`FrameBuffer`]), timestamps,
//! partial-line merging, the whole logs decoder (chunking and exactly-once resume), and
//! the config parser. Case counts are small by default so CI stays fast; set
//! `PROPTEST_CASES` for a long run. Failures are not persisted to files: the message
//! carries the minimal input.

use log_capturer::capture::decode::{LogDecoder, Output};
use log_capturer::capture::jsonfile::{parse_entry, quick_time};
use log_capturer::capture::merge::{Line, LineMerger};
use log_capturer::capture::record::{FilePos, Position, Stream};
use log_capturer::capture::timestamp::{Timestamp, TimestampError};
use log_capturer::config::Config;
use log_capturer::docker::frame::{FrameBuffer, StreamKind, DOCKER_MESSAGE_BYTES, HEADER_LEN};
use log_capturer::process::detect::Preset;
use log_capturer::process::joiner::{JoinLine, Joined, Joiner};
use log_capturer::process::rules::MultilineSpec;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

/// `cases` unless `PROPTEST_CASES` says otherwise; no regression files.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Longest timestamp prefix of a message: `2026-11-26T10:55:29.376306023-07:00 `.
const MAX_TS_PREFIX: usize = 36;

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![kind, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn kind_of(t: u8) -> StreamKind {
    match t {
        0 | 1 => StreamKind::Stdout,
        2 => StreamKind::Stderr,
        _ => StreamKind::System,
    }
}

/// Copies `data` in through `spare`/`filled`, at most `max_read` bytes per "read", the way
/// a follower reads a socket; `after_read` runs after each read.
fn feed(
    fb: &mut FrameBuffer,
    mut data: &[u8],
    max_read: usize,
    mut after_read: impl FnMut(&mut FrameBuffer),
) {
    while !data.is_empty() {
        let spare = fb.spare();
        let n = spare.len().min(data.len()).min(max_read.max(1));
        spare[..n].copy_from_slice(&data[..n]);
        fb.filled(n);
        data = &data[n..];
        after_read(fb);
    }
}

/// Splits `data` at the given cut points (taken modulo its length).
fn split(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    if data.is_empty() {
        return vec![];
    }
    let mut at: Vec<usize> = cuts.iter().map(|c| c % data.len()).collect();
    at.push(0);
    at.push(data.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| data[w[0]..w[1]].to_vec()).collect()
}

// ---------------------------------------------------------------------------------------
// FrameBuffer

fn frames_strategy() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    prop::collection::vec((0u8..=3, prop::collection::vec(any::<u8>(), 0..300)), 0..24)
}

proptest! {
    #![proptest_config(config(256))]

    /// Any split of a valid frame sequence into reads gives the same frames.
    #[test]
    fn frame_buffer_any_split_same_frames(
        frames in frames_strategy(),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
        capacity in 0usize..64,
        max_read in 1usize..700,
    ) {
        let bytes: Vec<u8> = frames.iter().flat_map(|(k, p)| frame(*k, p)).collect();
        let mut fb = FrameBuffer::new(capacity, 1024);
        let mut got = Vec::new();
        for piece in split(&bytes, &cuts) {
            feed(&mut fb, &piece, max_read, |fb| {
                while let Some((k, p)) = fb.next_frame().unwrap() {
                    got.push((k, p.to_vec()));
                }
            });
        }
        let want: Vec<_> = frames.iter().map(|(k, p)| (kind_of(*k), p.clone())).collect();
        prop_assert_eq!(got, want);
        prop_assert!(fb.pending().is_empty());
    }

    /// Arbitrary bytes never panic, and while no error was reported the buffered bytes
    /// stay within one frame, the buffer within the frame bound plus one read.
    #[test]
    fn frame_buffer_arbitrary_bytes_stdcopy(
        data in prop::collection::vec(any::<u8>(), 0..4096),
        small_headers in prop::collection::vec((0u8..=3, 0u32..600), 0..8),
        max_frame in 0usize..1024,
        capacity in 0usize..64,
        max_read in 1usize..2048,
    ) {
        // Plausible headers among the noise, so frames of every size are tried.
        let mut bytes = data;
        for (i, (k, len)) in small_headers.iter().enumerate() {
            let at = (i * 509) % (bytes.len() + 1);
            let mut h = vec![*k, 0, 0, 0];
            h.extend_from_slice(&len.to_be_bytes());
            bytes.splice(at..at, h);
        }
        let bound = (max_frame + HEADER_LEN + 4096).max(capacity.max(2 * HEADER_LEN));
        let mut fb = FrameBuffer::new(capacity, max_frame);
        let mut failed = false;
        let mut rest = &bytes[..];
        while !rest.is_empty() && !failed {
            let spare_len = fb.spare().len();
            prop_assert!(
                fb.pending().len() + spare_len <= bound,
                "buffer of at least {} bytes, bound {bound}",
                fb.pending().len() + spare_len
            );
            let n = spare_len.min(rest.len()).min(max_read);
            fb.spare()[..n].copy_from_slice(&rest[..n]);
            fb.filled(n);
            rest = &rest[n..];
            loop {
                match fb.next_frame() {
                    Ok(Some((_, p))) => prop_assert!(p.len() <= max_frame),
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            if !failed {
                prop_assert!(fb.pending().len() < HEADER_LEN + max_frame.max(1));
            }
        }
    }

    /// TTY mode: messages and what is left partition the input exactly (nothing lost or
    /// made up); with `at_eof` everything comes out.
    #[test]
    fn frame_buffer_tty_partitions_input(
        data in prop::collection::vec(any::<u8>(), 0..40_000),
        max_read in 1usize..9000,
    ) {
        let mut fb = FrameBuffer::new(64, 1 << 20);
        let mut out = Vec::new();
        feed(&mut fb, &data, max_read, |fb| {
            while let Some(m) = fb.next_tty_message(false) {
                assert!(!m.is_empty());
                out.extend_from_slice(m);
            }
        });
        let mut whole = out.clone();
        whole.extend_from_slice(fb.pending());
        prop_assert_eq!(&whole, &data);
        while let Some(m) = fb.next_tty_message(true) {
            out.extend_from_slice(m);
        }
        prop_assert_eq!(out, data);
    }

    /// TTY mode, garbage without the timestamp's space or a newline (a corrupt stream, or
    /// a non-TTY body sniffed as TTY): what stays buffered must be bounded by one message
    /// (Docker's 16 KiB plus a timestamp), or a daemon sending such bytes makes the
    /// capturer buffer (and rescan on every read) without limit.
    #[test]
    fn frame_buffer_tty_garbage_stays_bounded(
        pattern in prop::collection::vec(any::<u8>().prop_filter("no space or newline", |b| *b != b' ' && *b != b'\n'), 1..64),
        repeat in 1usize..1200,
        max_read in 1024usize..70_000,
    ) {
        let data: Vec<u8> = pattern.iter().copied().cycle().take(pattern.len() * repeat).collect();
        let mut fb = FrameBuffer::new(32 * 1024, 1 << 20);
        let bound = MAX_TS_PREFIX + DOCKER_MESSAGE_BYTES;
        let mut worst = 0;
        feed(&mut fb, &data, max_read, |fb| {
            while fb.next_tty_message(false).is_some() {}
            worst = worst.max(fb.pending().len());
        });
        prop_assert!(worst <= bound, "{worst} bytes buffered without a message; bound {bound}");
    }
}

/// Regression: TTY garbage without a space was neither cut into messages nor bounded, and
/// grew the buffer past even its promised bound (`max_frame` plus one read).
#[test]
fn tty_buffer_without_space_grows_without_limit() {
    let max_frame = 1 << 20;
    let mut fb = FrameBuffer::new(32 * 1024, max_frame);
    let data = vec![b'x'; max_frame + max_frame / 2];
    let mut worst = 0;
    feed(&mut fb, &data, 64 * 1024, |fb| {
        while fb.next_tty_message(false).is_some() {}
        worst = worst.max(fb.pending().len() + fb.spare().len());
    });
    let bound = max_frame + HEADER_LEN + 4096;
    assert!(
        worst <= bound,
        "FrameBuffer of at least {worst} bytes (bound {bound}) holding 1.5 MiB of TTY text \
         without a space or newline"
    );
}

// ---------------------------------------------------------------------------------------
// Timestamp

/// The representable range: `1677-09-21T00:12:43.145224192Z ..= 2262-04-11T23:47:16.854775807Z`.
fn any_nanos() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        // Around now, where Docker's timestamps are.
        1_600_000_000_000_000_000i64..1_900_000_000_000_000_000,
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0),
    ]
}

/// `ts` written with `width` fraction digits (0..=9, the fraction truncated as Docker's
/// trimmed form would be), optionally with a `+hh:mm`/`-hh:mm` offset.
fn write_with(ts: Timestamp, width: usize) -> String {
    let full = ts.to_rfc3339(); // YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ
    let (secs, frac) = (&full[..19], &full[20..29]);
    if width == 0 {
        format!("{secs}Z")
    } else {
        format!("{secs}.{}Z", &frac[..width])
    }
}

/// `n` with the fraction cut to `width` digits; `None` below the representable range.
fn truncate_to(n: i64, width: usize) -> Option<i64> {
    let unit = 10i64.pow(9 - width as u32);
    n.checked_sub(n.rem_euclid(unit))
}

proptest! {
    #![proptest_config(config(256))]

    /// Format then parse gives the same instant, for every in-range value.
    #[test]
    fn timestamp_round_trip(n in any_nanos()) {
        let ts = Timestamp::from_nanos(n);
        let text = ts.to_rfc3339();
        prop_assert_eq!(text.len(), 30);
        prop_assert_eq!(Timestamp::parse(text.as_bytes()), Ok(ts));
        prop_assert_eq!(ts.to_string(), text);
    }

    /// Every fraction width 0..=9 (Docker trims trailing zeros) parses to the truncated
    /// time, or to an out-of-range error where truncating left the range.
    #[test]
    fn timestamp_every_fraction_width(n in any_nanos(), width in 0usize..=9) {
        let text = write_with(Timestamp::from_nanos(n), width);
        let want = truncate_to(n, width)
            .map(Timestamp::from_nanos)
            .ok_or(TimestampError::OutOfRange { field: "timestamp" });
        prop_assert_eq!(Timestamp::parse(text.as_bytes()), want, "{}", text);
    }

    /// An offset names the same instant as its UTC form.
    #[test]
    fn timestamp_offsets(
        n in 1_000_000_000_000_000_000i64..2_000_000_000_000_000_000,
        sign in prop::bool::ANY,
        hours in 0i64..24,
        minutes in 0i64..60,
    ) {
        let off = (hours * 3600 + minutes * 60) * if sign { 1 } else { -1 };
        let local = Timestamp::from_nanos(n + off * 1_000_000_000).to_rfc3339();
        let text = format!(
            "{}{}{hours:02}:{minutes:02}",
            &local[..29],
            if sign { '+' } else { '-' }
        );
        prop_assert_eq!(Timestamp::parse(text.as_bytes()), Ok(Timestamp::from_nanos(n)), "{}", text);
    }

    /// `split_prefix` takes exactly the timestamp and one space.
    #[test]
    fn timestamp_split_prefix(n in any_nanos(), width in 0usize..=9, rest in prop::collection::vec(any::<u8>(), 0..64)) {
        let ts = Timestamp::from_nanos(n);
        let mut line = write_with(ts, width).into_bytes();
        line.push(b' ');
        line.extend_from_slice(&rest);
        let Some(want) = truncate_to(n, width) else {
            return Ok(());
        };
        let (t, r) = Timestamp::split_prefix(&line).unwrap();
        prop_assert_eq!(t, Timestamp::from_nanos(want));
        prop_assert_eq!(r, &rest[..]);
    }

    /// The canonical form sorts like the time, and `since` gives back the nanoseconds.
    #[test]
    fn timestamp_order_and_since(a in any_nanos(), b in any_nanos()) {
        let (ta, tb) = (Timestamp::from_nanos(a), Timestamp::from_nanos(b));
        prop_assert_eq!(ta.to_rfc3339().cmp(&tb.to_rfc3339()), a.cmp(&b));
        let since = ta.to_since_param();
        let (secs, nanos) = since.split_once('.').unwrap();
        prop_assert_eq!(nanos.len(), 9);
        let back = i128::from(secs.parse::<i64>().unwrap()) * 1_000_000_000
            + i128::from(nanos.parse::<i64>().unwrap());
        prop_assert_eq!(back, i128::from(a));
    }

    /// Arbitrary bytes never panic; whatever parses round-trips through the canonical form.
    #[test]
    fn timestamp_arbitrary_bytes(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..48),
            prop::collection::vec(prop::sample::select(b"0123456789-T:.Z+ tz\xff".to_vec()), 0..48),
            // Mutations of a valid timestamp.
            (prop::collection::vec((0usize..40, any::<u8>()), 0..4)).prop_map(|edits| {
                let mut b = b"2026-11-26T10:55:29.376306023-07:00 hello".to_vec();
                for (at, v) in edits { let at = at % b.len(); b[at] = v; }
                b
            }),
        ],
    ) {
        if let Ok(ts) = Timestamp::parse(&bytes) {
            prop_assert_eq!(Timestamp::parse(ts.to_rfc3339().as_bytes()), Ok(ts));
        }
        if let Ok((_, rest)) = Timestamp::split_prefix(&bytes) {
            prop_assert!(rest.len() < bytes.len());
        }
    }
}

// ---------------------------------------------------------------------------------------
// LineMerger

/// A valid UTF-8 line (no `\n`) and cut points to split it into Docker's pieces.
fn utf8_line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^\n]{0,200}",
        "[a-z\u{e9}\u{20ac}\u{1f600}]{0,100}",
        "[\u{0}-\u{ff}&&[^\n]]{0,100}",
    ]
}

fn merge_all(m: &mut LineMerger, pieces: &[(i64, Vec<u8>)]) -> Vec<Line> {
    let mut out = Vec::new();
    for (t, p) in pieces {
        m.push(Timestamp::from_nanos(*t), p, |l| out.push(l));
    }
    out
}

proptest! {
    #![proptest_config(config(256))]

    /// Pieces of one line (all stamped with the first piece's time, only the last ending in
    /// `\n`) merge into the line, cut at any byte, when it fits under the cap.
    #[test]
    fn merger_concatenation(line in utf8_line(), cuts in prop::collection::vec(any::<usize>(), 0..6), tty in prop::bool::ANY) {
        let mut full = line.clone().into_bytes();
        if tty {
            full.push(b'\r');
        }
        full.push(b'\n');
        let pieces: Vec<(i64, Vec<u8>)> = split(&full, &cuts)
            .into_iter()
            .map(|p| (7, p))
            .collect();
        let mut m = LineMerger::new(1 << 20, tty);
        let out = merge_all(&mut m, &pieces);
        prop_assert_eq!(out.len(), 1);
        prop_assert_eq!(&out[0].text, line.as_bytes());
        prop_assert!(!out[0].truncated);
        prop_assert_eq!(out[0].pieces as usize, pieces.len());
        prop_assert!(!m.has_pending());
    }

    /// Never more than `max_line_bytes`; cut exactly when the line is longer; a cut line is
    /// a prefix of the line and stays valid UTF-8.
    #[test]
    fn merger_cap(line in utf8_line(), cuts in prop::collection::vec(any::<usize>(), 0..6), cap in 0usize..120) {
        let mut full = line.clone().into_bytes();
        full.push(b'\n');
        let pieces: Vec<(i64, Vec<u8>)> = split(&full, &cuts)
            .into_iter()
            .map(|p| (3, p))
            .collect();
        let mut m = LineMerger::new(cap, false);
        let out = merge_all(&mut m, &pieces);
        prop_assert_eq!(out.len(), 1);
        let got = &out[0];
        prop_assert!(got.text.len() <= cap);
        prop_assert_eq!(got.truncated, line.len() > cap);
        prop_assert!(line.as_bytes().starts_with(&got.text));
        prop_assert!(std::str::from_utf8(&got.text).is_ok(), "{:?}", got.text);
        if got.truncated {
            // At most one character's worth of bytes given up at the cut.
            prop_assert!(cap - got.text.len() < 4);
        }
    }

    /// Several lines at various times come out in order; text without a newline at the
    /// end comes out of `flush`.
    #[test]
    fn merger_sequence(
        lines in prop::collection::vec((utf8_line(), prop::collection::vec(any::<usize>(), 0..3)), 0..12),
        tail in prop::option::of(utf8_line().prop_filter("non-empty", |s| !s.is_empty())),
    ) {
        let mut pieces = Vec::new();
        for (i, (line, cuts)) in lines.iter().enumerate() {
            let mut full = line.clone().into_bytes();
            full.push(b'\n');
            for p in split(&full, cuts) {
                pieces.push((i as i64, p));
            }
        }
        let mut m = LineMerger::new(1 << 20, false);
        let mut out = merge_all(&mut m, &pieces);
        if let Some(t) = &tail {
            m.push(Timestamp::from_nanos(1_000), t.as_bytes(), |l| out.push(l));
            prop_assert!(m.has_pending());
            out.extend(m.flush());
        }
        let mut want: Vec<Vec<u8>> = Vec::new();
        for (line, _) in &lines {
            want.push(line.clone().into_bytes());
        }
        if let Some(t) = tail {
            want.push(t.into_bytes());
        }
        let got: Vec<Vec<u8>> = out.into_iter().map(|l| l.text).collect();
        prop_assert_eq!(got, want);
        prop_assert!(!m.has_pending());
    }
}

// ---------------------------------------------------------------------------------------
// LogDecoder

/// One frame of a logs body.
#[derive(Clone, Debug)]
struct Piece {
    kind: u8,
    time: i64,
    text: Vec<u8>,
}

/// A line of one stream: its pieces (only the last ends in `\n`) and its text.
struct Written {
    pieces: Vec<Vec<u8>>,
    text: String,
}

/// A line whose first piece went out at `time`; `rest` are its pieces still to come.
struct InProgress {
    time: i64,
    rest: std::vec::IntoIter<Vec<u8>>,
    text: String,
}

/// A logs body as dockerd writes it: lines of stdout and stderr, each of 1..=3 pieces
/// that all carry the line's first timestamp (only the last ends in `\n`); the clock
/// often does not move between frames (repeated timestamps). With `interleave`, the other
/// stream's frames may come between the pieces of a line. Returns the frames in body
/// order and the lines as they complete.
fn logs_body(interleave: bool) -> impl Strategy<Value = (Vec<Piece>, Vec<(Stream, String)>)> {
    let line = (
        0usize..2,
        "[a-z0-9 ]{0,12}",
        prop::collection::vec("[a-z]{1,6}", 0..3),
    );
    let lines = prop::collection::vec(line, 0..24);
    let choices = prop::collection::vec((0usize..2, 0usize..4), 1..200);
    (lines, choices).prop_map(move |(lines, choices)| {
        let mut queues: [std::collections::VecDeque<Written>; 2] = Default::default();
        for (stream, last, partials) in lines {
            let mut pieces: Vec<Vec<u8>> =
                partials.iter().map(|p| p.clone().into_bytes()).collect();
            pieces.push(format!("{last}\n").into_bytes());
            let text = format!("{}{last}", partials.concat());
            queues[stream].push_back(Written { pieces, text });
        }
        let mut clock = 1_795_715_729_000_000_000i64;
        let mut choices = choices.into_iter().cycle();
        let mut current: [Option<InProgress>; 2] = [None, None];
        let (mut frames, mut done) = (Vec::new(), Vec::new());
        loop {
            let ready: Vec<usize> = (0..2)
                .filter(|&s| current[s].is_some() || !queues[s].is_empty())
                .collect();
            let Some((pick, tick)) = choices.next().filter(|_| !ready.is_empty()) else {
                break;
            };
            // Without interleaving, a line in progress finishes first.
            let s = match current.iter().position(Option::is_some) {
                Some(busy) if !interleave => busy,
                _ => ready[pick % ready.len()],
            };
            let line = current[s].get_or_insert_with(|| {
                let w = queues[s].pop_front().expect("a ready stream has a line");
                InProgress {
                    time: clock,
                    rest: w.pieces.into_iter(),
                    text: w.text,
                }
            });
            let text = line.rest.next().expect("a line in progress has pieces");
            frames.push(Piece {
                kind: s as u8 + 1,
                time: line.time,
                text,
            });
            if line.rest.len() == 0 {
                let stream = [Stream::Stdout, Stream::Stderr][s];
                done.push((stream, std::mem::take(&mut line.text)));
                current[s] = None;
            }
            // The clock stands still half of the time: repeated timestamps.
            clock += [0, 0, 1, 1_000][tick];
        }
        (frames, done)
    })
}

fn encode(frames: &[Piece]) -> Vec<u8> {
    frames
        .iter()
        .flat_map(|p| {
            let mut payload = Timestamp::from_nanos(p.time).to_rfc3339().into_bytes();
            payload.push(b' ');
            payload.extend_from_slice(&p.text);
            frame(p.kind, &payload)
        })
        .collect()
}

/// One decoded line: stream, text, position, and whether the next line is of the same
/// group (held while a partial line was pending; only a group's last line is a resume
/// point, as batches are not cut inside a group).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Decoded {
    stream: Stream,
    text: String,
    position: Position,
    continues: bool,
}

/// A decoder output sink that keeps the lines.
fn collect_lines(out: &mut Vec<Decoded>) -> impl FnMut(Output) + '_ {
    |o: Output| {
        if let Output::Line {
            stream,
            line,
            position,
            continues,
            ..
        } = o
        {
            out.push(Decoded {
                stream,
                text: String::from_utf8(line.text).unwrap(),
                position,
                continues,
            });
        }
    }
}

/// Decodes `bytes` read `max_read` at a time; EOF and flush at the end.
fn decode(
    bytes: &[u8],
    max_read: usize,
    resume: Option<Position>,
    tty: Option<bool>,
) -> Vec<Decoded> {
    let mut dec = LogDecoder::new(tty, 1 << 20, resume);
    let mut out = Vec::new();
    let mut sink = collect_lines(&mut out);
    let mut rest = bytes;
    while !rest.is_empty() {
        let spare = dec.buffer().spare();
        let n = spare.len().min(rest.len()).min(max_read.max(1));
        spare[..n].copy_from_slice(&rest[..n]);
        dec.buffer().filled(n);
        rest = &rest[n..];
        dec.drain(false, &mut sink).unwrap();
    }
    dec.drain(true, &mut sink).unwrap();
    dec.flush(&mut sink);
    drop(sink);
    out
}

/// What dockerd sends for `since=<time>`: the frames stamped at or after it, in order.
fn since(frames: &[Piece], t: Timestamp) -> Vec<Piece> {
    frames
        .iter()
        .filter(|p| p.time >= t.as_nanos())
        .cloned()
        .collect()
}

fn lines_of(d: &[Decoded]) -> Vec<(Stream, String)> {
    d.iter().map(|l| (l.stream, l.text.clone())).collect()
}

/// Decodes what dockerd sends when resuming from `pos`.
fn resume(frames: &[Piece], pos: Position) -> Vec<(Stream, String)> {
    lines_of(&decode(
        &encode(&since(frames, pos.time)),
        97,
        Some(pos),
        None,
    ))
}

proptest! {
    #![proptest_config(config(256))]

    /// Fed in any chunks, the decoder gives the lines (and positions) it gives for the
    /// whole body, and those are the lines that were written.
    #[test]
    fn decoder_chunking_is_invisible((frames, lines) in logs_body(true), max_read in 1usize..300) {
        let bytes = encode(&frames);
        let whole = decode(&bytes, usize::MAX, None, None);
        prop_assert_eq!(lines_of(&whole), lines);
        let chunked = decode(&bytes, max_read, None, Some(false));
        prop_assert_eq!(&chunked, &whole);
        // A group always ends: the last line is a resume point.
        prop_assert!(whole.last().is_none_or(|l| !l.continues));
    }

    /// The exactly-once core, for bodies where a line's pieces are not interleaved with the
    /// other stream: every line is a resume point, and resuming (since = the position's
    /// time, skipping the frames it covers) after any line gives exactly the lines after it.
    #[test]
    fn decoder_resume_is_exactly_once((frames, lines) in logs_body(false)) {
        let whole = decode(&encode(&frames), usize::MAX, None, None);
        prop_assert_eq!(lines_of(&whole), lines.clone());
        for (k, l) in whole.iter().enumerate() {
            prop_assert!(!l.continues, "line {} held in a group without interleaving", k);
            prop_assert_eq!(resume(&frames, l.position), lines[k + 1..].to_vec(), "resume after line {}", k);
        }
    }

    /// With the other stream's frames between the pieces of a long line, resuming from any
    /// emitted position, even inside a group (a crash mid-batch), loses nothing: the lines
    /// after it are all there, at the end.
    #[test]
    fn decoder_resume_interleaved_loses_nothing((frames, lines) in logs_body(true)) {
        let whole = decode(&encode(&frames), usize::MAX, None, None);
        prop_assert_eq!(lines_of(&whole), lines.clone());
        for (k, l) in whole.iter().enumerate() {
            let again = resume(&frames, l.position);
            prop_assert!(again.ends_with(&lines[k + 1..]), "resume after line {}: {:?}", k, again);
        }
    }

    /// ... and from a resume point (the end of a group, where an acknowledged batch ends)
    /// delivers exactly the lines after it: nothing twice (README, Guarantees: never duplicate a line
    /// across restarts).
    #[test]
    fn decoder_resume_interleaved_is_exactly_once((frames, lines) in logs_body(true)) {
        let whole = decode(&encode(&frames), usize::MAX, None, None);
        prop_assert_eq!(lines_of(&whole), lines.clone());
        for (k, l) in whole.iter().enumerate().filter(|(_, l)| !l.continues) {
            let again = resume(&frames, l.position);
            prop_assert_eq!(again, lines[k + 1..].to_vec(), "resume after line {} at {:?}", k, l.position);
        }
    }

    /// TTY bodies (raw `<ts> text\r\n`): chunking is invisible too, and CRLF is stripped.
    #[test]
    fn decoder_tty_chunking(
        texts in prop::collection::vec("[a-z0-9 ]{0,20}", 0..20),
        max_read in 1usize..100,
    ) {
        let mut bytes = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            let ts = Timestamp::from_nanos(1_795_715_729_000_000_000 + (i as i64 / 2));
            bytes.extend_from_slice(format!("{} {t}\r\n", ts.to_rfc3339()).as_bytes());
        }
        let whole = decode(&bytes, usize::MAX, None, Some(true));
        let got: Vec<String> = whole.iter().map(|l| l.text.clone()).collect();
        prop_assert_eq!(&got, &texts);
        prop_assert_eq!(decode(&bytes, max_read, None, None), whole);
    }

    /// Arbitrary bytes never panic the decoder (errors are reported, not raised).
    #[test]
    fn decoder_arbitrary_bytes(
        data in prop::collection::vec(any::<u8>(), 0..2048),
        tty in prop::option::of(any::<bool>()),
        max_read in 1usize..512,
    ) {
        let mut dec = LogDecoder::new(tty, 64, None);
        let mut sink = |o: Output| {
            if let Output::Line { line, .. } = o {
                assert!(line.text.len() <= 64);
            }
        };
        for chunk in data.chunks(max_read) {
            dec.buffer().extend(chunk);
            if dec.drain(false, &mut sink).is_err() {
                dec.restart();
            }
        }
        let _ = dec.drain(true, &mut sink);
        dec.flush(&mut sink);
    }
}

// ---------------------------------------------------------------------------------------
// json-file logs (read_from = "files")

/// The json-file log dockerd writes for `frames`: one entry a line, and where each starts.
fn json_file(frames: &[Piece]) -> (Vec<u8>, Vec<u64>) {
    let (mut bytes, mut starts) = (Vec::new(), Vec::new());
    for p in frames {
        starts.push(bytes.len() as u64);
        let entry = serde_json::json!({
            "log": String::from_utf8_lossy(&p.text),
            "stream": if p.kind == 2 { "stderr" } else { "stdout" },
            "time": Timestamp::from_nanos(p.time).to_rfc3339(),
        });
        bytes.extend_from_slice(entry.to_string().as_bytes());
        bytes.push(b'\n');
    }
    (bytes, starts)
}

fn at(offset: u64) -> FilePos {
    FilePos {
        dev: 1,
        ino: 7,
        offset,
    }
}

/// Decodes a json-file log from byte `from`, the way the files-mode follower does.
fn decode_file(bytes: &[u8], from: u64, resume: Option<Position>) -> Vec<Decoded> {
    let mut dec = LogDecoder::new(Some(false), 1 << 20, resume);
    if from > 0 {
        dec.continue_from_resume();
    }
    let mut out = Vec::new();
    let mut sink = collect_lines(&mut out);
    let mut offset = from as usize;
    for line in bytes[offset..].split_inclusive(|&b| b == b'\n') {
        let start = offset as u64;
        offset += line.len();
        let e = parse_entry(&line[..line.len() - 1]).expect("an entry we wrote");
        dec.file_entry(
            e.stream,
            e.time,
            e.log.as_bytes(),
            at(start),
            at(offset as u64),
            &mut sink,
        );
    }
    dec.flush(&mut sink);
    drop(sink);
    out
}

proptest! {
    #![proptest_config(config(256))]

    /// Any entry dockerd can write parses back to what was written; `quick_time` agrees.
    #[test]
    fn jsonfile_round_trip(
        log in any::<String>(),
        stderr in any::<bool>(),
        n in any_nanos(),
        attrs in prop::option::of(any::<String>()),
    ) {
        let time = Timestamp::from_nanos(n);
        let mut entry = serde_json::json!({
            "log": log,
            "stream": if stderr { "stderr" } else { "stdout" },
        });
        if let Some(a) = attrs {
            entry["attrs"] = serde_json::json!({ "tag": a });
        }
        entry["time"] = serde_json::json!(time.to_rfc3339());
        let line = entry.to_string();
        let e = parse_entry(line.as_bytes()).unwrap();
        prop_assert_eq!(e.log.as_ref(), log.as_str());
        prop_assert_eq!(e.stream, if stderr { Stream::Stderr } else { Stream::Stdout });
        prop_assert_eq!(e.time, time);
        prop_assert_eq!(quick_time(line.as_bytes()), Some(time));
    }

    /// Arbitrary bytes never panic the json-file parser.
    #[test]
    fn jsonfile_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_entry(&data);
        let _ = quick_time(&data);
    }

    /// Read from disk, a log gives the lines the API gives, and resuming from the byte
    /// offset of any resume point (where an acknowledged batch ends) delivers exactly the
    /// lines after it; so does resuming by time, through the API (a switch of read_from).
    #[test]
    fn jsonfile_resume_by_offset_is_exactly_once((frames, lines) in logs_body(true)) {
        let (bytes, _) = json_file(&frames);
        let whole = decode_file(&bytes, 0, None);
        prop_assert_eq!(lines_of(&whole), lines.clone());
        let api = decode(&encode(&frames), usize::MAX, None, None);
        prop_assert_eq!(
            whole.iter().map(|d| (d.position.time, d.position.frames_at_time)).collect::<Vec<_>>(),
            api.iter().map(|d| (d.position.time, d.position.frames_at_time)).collect::<Vec<_>>(),
            "the same (time, frames) positions as API mode"
        );
        for (k, l) in whole.iter().enumerate().filter(|(_, l)| !l.continues) {
            let fp = l.position.file.expect("a files-mode position has a file offset");
            let again = lines_of(&decode_file(&bytes, fp.offset, Some(l.position)));
            prop_assert_eq!(&again, &lines[k + 1..].to_vec(), "offset resume after line {}", k);
            prop_assert_eq!(resume(&frames, l.position), lines[k + 1..].to_vec(), "time resume after line {}", k);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Config

const KEYS: &[&str] = &[
    "host",
    "max_idle_connections",
    "idle_timeout",
    "request_timeout",
    "read_timeout",
    "api_version",
    "include_names",
    "exclude_names",
    "include_labels",
    "exclude_labels",
    "include_images",
    "stdout",
    "stderr",
    "initial",
    "record_labels",
    "max_line_bytes",
    "max_streams",
    "read_from",
    "docker_root",
    "paths",
    "path",
    "flush_interval",
    "write_interval",
    "queue_records",
    "queue_bytes",
    "batch_records",
    "batch_bytes",
    "batch_timeout",
    "shutdown_timeout",
    "listen",
    "type",
    "max_bytes",
    "max_files",
    "url",
    "tenant_id",
    "username",
    "password",
    "bearer_token",
    "labels",
    "line_format",
    "gzip",
    "timeout",
    "index",
    "api_key",
];

const SECTIONS: &[&str] = &[
    "[docker]",
    "[containers]",
    "[files]",
    "[positions]",
    "[pipeline]",
    "[server]",
    "[[sinks]]",
    "[sinks.labels]",
    "[nope]",
];

fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        "-?[0-9]{1,40}(\\.[0-9]{0,30})?",
        Just("true".to_string()),
        Just("\"\"".to_string()),
        "\"-?[0-9]{0,30}(\\.[0-9]{0,25})? ?(ns|us|ms|s|m|h|d|B|KB|KiB|MiB|GiB|TiB|EiB|kib|x)?\"",
        "\"(unix|tcp|http|https)://[a-z0-9./:@%\\[\\]-]{0,30}\"",
        "\"(now|beginning|tail:-?[0-9]{0,25}|api|files|auto|file|stdout|loki|elasticsearch|message|json)\"",
        "\"\\{[a-z_]{0,16}\\}[%a-zA-Z.]{0,10}\"",
        "\\[(\"[a-z*=?.]{0,8}\", ?){0,3}\\]",
        "\\{ ?([a-z_]{1,6} = \"[{}a-z_]{0,12}\", ?){0,3}\\}",
        "\"[\\PC]{0,20}\"",
        any::<String>().prop_map(|s| format!("{s:?}")),
    ]
}

fn toml_document() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        prop::sample::select(SECTIONS).prop_map(str::to_string),
        (prop::sample::select(KEYS), toml_value()).prop_map(|(k, v)| format!("{k} = {v}")),
        "[ -~]{0,30}",
    ];
    prop::collection::vec(line, 0..16).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary text and config-shaped documents give a config or an error, never a panic.
    #[test]
    fn config_never_panics(text in prop_oneof![any::<String>(), toml_document()]) {
        if let Ok(c) = Config::from_toml_str(&text, "props.toml") {
            // What --check-config prints parses back.
            let printed = c.to_toml();
            prop_assert!(Config::from_toml_str(&printed, "printed.toml").is_ok(), "{}", printed);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Multiline records read from a json-file log (files mode): resuming by byte offset from
// any record's position gives exactly the records after it.

const TRACE_WORDS: &[&str] = &[
    "plain",
    "java.lang.IllegalStateException: boom",
    "\tat a.B.c(B.java:1)",
    "Caused by: x.Y: z",
    "Traceback (most recent call last):",
    "  File \"x.py\", line 3, in f",
    "ValueError: bad",
    "panic: oops",
    "",
    "goroutine 1 [running]:",
    "\t/x/main.go:5 +0x1d",
];

/// Each stream has its own clock (dockerd stamps a stream's lines as it reads that
/// stream), so the two streams' stamps cross in the log as they do under load.
fn trace_log_file(lines: &[(bool, i64, usize)]) -> Vec<u8> {
    let mut clocks = [1_795_715_729_000_000_000i64; 2];
    let mut bytes = Vec::new();
    for &(stderr, step, word) in lines {
        let t = &mut clocks[usize::from(stderr)];
        *t += step;
        let t = *t;
        let entry = serde_json::json!({
            "log": format!("{}\n", TRACE_WORDS[word]),
            "stream": if stderr { "stderr" } else { "stdout" },
            "time": Timestamp::from_nanos(t).to_rfc3339(),
        });
        bytes.extend_from_slice(entry.to_string().as_bytes());
        bytes.push(b'\n');
    }
    bytes
}

/// Decodes and joins (multiline = "auto") a json-file log from byte `from`, resuming after
/// `resume`, the way the files-mode follower with a rule does.
fn join_file(bytes: &[u8], from: u64, resume: Option<Position>) -> Vec<Joined> {
    let spec = MultilineSpec {
        preset: Preset::Auto,
        max_lines: 500,
        timeout: std::time::Duration::from_secs(1),
    };
    let mut dec = LogDecoder::new(Some(false), 1 << 20, resume);
    if resume.is_some() {
        dec.continue_from_resume();
    }
    let mut joiner = Joiner::new(spec, 1 << 20, resume);
    let now = std::time::Instant::now();
    let mut out = Vec::new();
    let mut take = |o: Output, out: &mut Vec<Joined>| {
        if let Some(l) = JoinLine::from_output(o) {
            joiner.push(l, now, &mut |r| out.push(r));
        }
    };
    let mut offset = from as usize;
    for line in bytes[offset..].split_inclusive(|&b| b == b'\n') {
        let start = offset as u64;
        offset += line.len();
        let e = parse_entry(&line[..line.len() - 1]).expect("an entry we wrote");
        dec.file_entry(
            e.stream,
            e.time,
            e.log.as_bytes(),
            at(start),
            at(offset as u64),
            &mut |o| take(o, &mut out),
        );
    }
    dec.flush(&mut |o| take(o, &mut out));
    joiner.finish(&mut |r| out.push(r));
    out
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn multiline_resume_by_file_offset_is_exactly_once(
        lines in prop::collection::vec((any::<bool>(), 0i64..4, 0..TRACE_WORDS.len()), 0..50)
    ) {
        let bytes = trace_log_file(&lines);
        let all = join_file(&bytes, 0, None);
        let texts = |r: &[Joined]| -> Vec<(Stream, String)> {
            r.iter().map(|r| (r.stream, r.text.clone())).collect()
        };
        let n: usize = all.iter().map(|r| r.text.split('\n').count()).sum();
        prop_assert_eq!(n, lines.len());
        for (k, r) in all.iter().enumerate() {
            let offset = r.position.file.map(|f| f.offset).unwrap_or(0);
            let rest = join_file(&bytes, offset, Some(r.position));
            prop_assert_eq!(texts(&rest), texts(&all[k + 1..]), "after record {} (offset {})", k, offset);
        }
    }
}
