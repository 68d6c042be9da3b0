//! What a remote sends for `git archive`: a gzip'd tar, read for one file under a size cap.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = taskhook::trigger::fetch::read_single_file(data, "branches/master.json", 1 << 20);
});
