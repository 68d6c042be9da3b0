//! A loose object file as post-receive finds it: read back (in pieces or whole) under a size
//! cap, then a new version written after it must be a zlib stream of exactly the new bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Read as _;

fuzz_target!(|data: &[u8]| {
    let Ok(previous) = taskhook::git::Previous::read(data.to_vec(), 1 << 20) else {
        return;
    };
    // The next version: the same lines with one more in the middle.
    let old = previous.data();
    let mid = old.len() / 2;
    let mut body = old[..mid].to_vec();
    body.extend_from_slice(b"{\"added\":true},\n");
    body.extend_from_slice(&old[mid..]);
    let header = format!("blob {}\0", body.len()).into_bytes();
    let c = taskhook::git::pieces::compress(&header, &body, 1, Some(&previous)).expect("compressed");
    let mut back = Vec::new();
    flate2::read::ZlibDecoder::new(&c.bytes[..])
        .read_to_end(&mut back)
        .expect("a valid zlib stream");
    assert_eq!(back, [&header[..], &body[..]].concat());
});
