//! The gateway's credentials file: parsed and bounded at load.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(error) = pkgsum::gateway::Credentials::parse(text, "fuzz") {
            assert!(!error.to_string().is_empty());
        }
    }
});
