//! The formula reader and validator on any bytes: never a panic, always bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rules = taskhook::config::Rules::default();
    let _ = taskhook::validate::formula::validate(data, "t/runtask.yml", "t", &rules);
});
