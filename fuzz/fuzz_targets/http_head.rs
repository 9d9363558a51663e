//! The endpoint server's request-head parser: any bytes are a request or a refusal with a
//! 4xx/5xx status, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use log_capturer::server::request::{head_end, parse_head};

fuzz_target!(|data: &[u8]| {
    if let Some(end) = head_end(data) {
        if let Err(r) = parse_head(&data[..end]) {
            assert!((400..600).contains(&r.status));
        }
    }
});
