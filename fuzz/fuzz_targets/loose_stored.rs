//! A loose object file as post-receive finds it: read back under a size cap, it is exactly
//! what zlib inflates it to (or refused), and writing a new version after it makes a zlib
//! stream of exactly the new bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Read as _;

fuzz_target!(|data: &[u8]| {
    let Ok(previous) = taskhook::git::Previous::read(data.to_vec(), 1 << 20) else {
        return;
    };
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .read_to_end(&mut inflated)
        .expect("what was read is a valid zlib stream");
    assert!(inflated.starts_with(b"blob ") && inflated.ends_with(previous.data()));
    // The next version: the same lines with one more in the middle.
    let old = previous.data();
    let mid = old.len() / 2;
    let mut body = old[..mid].to_vec();
    body.extend_from_slice(b"{\"added\":true},\n");
    body.extend_from_slice(&old[mid..]);
    let header = format!("blob {}\0", body.len()).into_bytes();
    let file = taskhook::git::stored::encode(&header, &body);
    let mut back = Vec::new();
    flate2::read::ZlibDecoder::new(&file[..])
        .read_to_end(&mut back)
        .expect("a valid zlib stream");
    assert_eq!(back, [&header[..], &body[..]].concat());
});
