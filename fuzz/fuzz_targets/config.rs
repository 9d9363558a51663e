//! The config parser: any text is a config or an error, never a panic; what
//! `--check-config` prints for a valid config parses back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use log_capturer::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Config::from_toml_str(text, "fuzz.toml") {
        let printed = c.to_toml();
        assert!(
            Config::from_toml_str(&printed, "printed.toml").is_ok(),
            "{printed}"
        );
    }
});
