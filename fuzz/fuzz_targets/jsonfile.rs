//! json-file log lines: any bytes parse or fail cleanly, and the cheap time read
//! (`quick_time`, used to skip lines before a start time) never disagrees with the full
//! parse. Entries then go through the decoder the way the files-mode follower feeds it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use log_capturer::capture::decode::{LogDecoder, Output};
use log_capturer::capture::jsonfile::{parse_entry, quick_time};
use log_capturer::capture::record::FilePos;

fuzz_target!(|data: &[u8]| {
    let mut dec = LogDecoder::new(Some(false), 64, None);
    let mut sink = |o: Output| {
        if let Output::Line { line, .. } = o {
            assert!(line.text.len() <= 64);
        }
    };
    let mut offset = 0u64;
    for line in data.split(|&b| b == b'\n') {
        let start = offset;
        offset += line.len() as u64 + 1;
        let quick = quick_time(line);
        if let Ok(e) = parse_entry(line) {
            if let Some(t) = quick {
                assert_eq!(t, e.time, "quick_time disagrees");
            }
            let at = |offset| FilePos {
                dev: 1,
                ino: 1,
                offset,
            };
            dec.file_entry(
                e.stream,
                e.time,
                e.log.as_bytes(),
                at(start),
                at(offset),
                &mut sink,
            );
        }
    }
    dec.flush(&mut sink);
});
