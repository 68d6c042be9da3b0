//! Any loose object file, as the hooks read one (a file git wrote from a push, or taskhook's
//! own): read with one reused zlib state, it is refused or is exactly what zlib inflates it to,
//! `<kind> <size>\0` and then `size` bytes of content; a refusal leaves the zlib state usable.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Read as _;

fuzz_target!(|data: &[u8]| {
    let mut inflater = flate2::Decompress::new(true);
    let mut out = b"left over".to_vec();
    if let Ok(kind) = taskhook::git::stored::read_object(data.to_vec(), &mut inflater, &mut out) {
        let mut inflated = Vec::new();
        flate2::read::ZlibDecoder::new(data)
            .read_to_end(&mut inflated)
            .expect("what was read is a valid zlib stream");
        let header = format!("{kind} {}\0", out.len());
        assert_eq!(inflated, [header.as_bytes(), &out[..]].concat());
    }
    // The same state reads a valid object next.
    let file = taskhook::git::stored::encode(b"blob 5\0", b"hello");
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut z, b"tree 0\0").expect("written");
    for file in [file, z.finish().expect("finished")] {
        taskhook::git::stored::read_object(file, &mut inflater, &mut out).expect("valid object");
    }
});
