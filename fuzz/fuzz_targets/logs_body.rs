//! A Docker logs body of arbitrary bytes (stdcopy frames or TTY text, split into arbitrary
//! reads, with the partial-line merge behind): never a panic, no line over the cap.
#![no_main]
use libfuzzer_sys::fuzz_target;
use log_capturer::capture::decode::{LogDecoder, Output};

const CAP: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let tty = match mode % 3 {
        0 => None,
        1 => Some(false),
        _ => Some(true),
    };
    let read = usize::from(mode / 3).max(1);
    let mut dec = LogDecoder::new(tty, CAP, None);
    let mut sink = |o: Output| {
        if let Output::Line { line, .. } = o {
            assert!(line.text.len() <= CAP, "line of {} bytes", line.text.len());
        }
    };
    for chunk in body.chunks(read) {
        dec.buffer().extend(chunk);
        if dec.drain(false, &mut sink).is_err() {
            dec.restart();
        }
    }
    let _ = dec.drain(true, &mut sink);
    dec.flush(&mut sink);
});
