//! What a git daemon (or anything listening where one should be) answers to an upload-archive
//! request: pkt-lines, ACK/NACK, side-band data under a size cap.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(archive) = taskhook::trigger::fetch::upload_archive::parse_response(data, 1 << 20) {
        let _ = taskhook::trigger::fetch::read_single_file(
            &archive.data,
            "branches/master.json",
            1 << 20,
        );
    }
});
