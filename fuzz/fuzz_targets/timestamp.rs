//! Docker timestamps: any bytes parse or fail cleanly; what parses prints back to a
//! timestamp that parses to the same instant.
#![no_main]
use libfuzzer_sys::fuzz_target;
use log_capturer::capture::timestamp::Timestamp;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Timestamp::parse(data) {
        let printed = t.to_rfc3339();
        assert_eq!(
            Timestamp::parse(printed.as_bytes()).ok(),
            Some(t),
            "{printed}"
        );
    }
    let _ = Timestamp::split_prefix(data);
});
