//! Bus message parsing on any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rules = taskhook::trigger::event::BranchRules::default();
    let _ = taskhook::trigger::event::parse(data, &rules);
});
