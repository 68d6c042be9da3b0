//! Manifests as a hostile server could serve them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = taskhook::manifest::parse_branch(data, 1 << 20);
    let _ = taskhook::manifest::parse_index(data, 1 << 20);
    if let Some(lines) = taskhook::manifest::task_lines(data) {
        for l in lines {
            let _ = taskhook::manifest::line_path(l);
        }
    }
    let _ = taskhook::manifest::parse_state(data);
});
