//! A recording's bytes -> the reader -> the engine -> every sink. Anything but a panic, a
//! hang or an allocation beyond libFuzzer's limit is fine: bad input must give an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tracer::session::replay::every_sink(data);
});
