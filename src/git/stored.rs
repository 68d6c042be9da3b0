//! Loose objects without compression, so that the hooks read and write them at the speed of
//! copying memory, and one reader for every loose object.
//!
//! A branch manifest of thousands of tasks is one blob of hundreds of KB (3.8 MB at 10,000
//! tasks) that changes by a line or two per push. post-receive reads the stored version to copy
//! its unchanged lines, then writes the new version; inflating the one and deflating the other
//! was most of what post-receive cost at that size. So every object taskhook writes is a zlib
//! stream of *stored* blocks (what zlib writes at level 0, and git under
//! `core.looseCompression=0`): an ordinary loose object to git and every other reader, read
//! back here with a copy and an Adler-32 check. For the small objects of a manifest commit
//! (trees, the commit, `index.json`, state files) this costs no disk space, since a loose file
//! takes a file system block either way, and it spares setting up a compressor for each. A large
//! blob takes about three times the space level 1 would while it is loose, until `git gc`
//! packs it (delta-compressed against the versions before it, as any blob).
//!
//! Anything else found in a loose file (compressed by git, by an older taskhook, or damaged) is
//! inflated by zlib as usual, with one zlib state reused for every object a process reads
//! ([`read_object`]), or refused.

use std::io;

use flate2::{Decompress, FlushDecompress, Status};

/// The most a stored block holds.
const BLOCK: usize = 65_535;

/// The start of a zlib stream of stored blocks, as zlib writes it at level 0.
const ZLIB_HEADER: [u8; 2] = [0x78, 0x01];

/// A stored blob as read back: its uncompressed stream, `blob <size>\0` then the content.
#[derive(Debug, Default)]
pub struct Previous {
    stream: Vec<u8>,
    header_len: usize,
}

impl Previous {
    /// The blob's content.
    pub fn data(&self) -> &[u8] {
        &self.stream[self.header_len..]
    }

    /// The buffer holding the content, and where in it the content starts (after the loose
    /// object's `blob <size>\0`), for a caller that makes the next version out of it.
    pub fn into_buffer(self) -> (Vec<u8>, usize) {
        (self.stream, self.header_len)
    }

    /// A blob read some other way (from a pack): its content.
    pub fn content(data: Vec<u8>) -> Previous {
        Previous {
            stream: data,
            header_len: 0,
        }
    }

    /// Reads a loose blob's file, as stored, of at most `max` bytes of content: stored blocks
    /// are copied out, anything else is inflated. Errors: not a zlib stream, not a blob, larger
    /// than `max`, damaged.
    pub fn read(file: Vec<u8>, max: u64) -> io::Result<Previous> {
        if file.len() < 2 + 4 || !zlib_header_ok(file[0], file[1]) {
            return Err(io::Error::other("not a zlib stream"));
        }
        // `blob <size>\0` takes at most 26 bytes.
        let limit = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .saturating_add(32);
        let stream = match unstore(file, limit)? {
            Ok(stream) => stream,
            Err(file) => inflate(&file, limit)?,
        };
        let (kind, size, header_len) = parse_header(&stream)?;
        if kind != gix_object::Kind::Blob {
            return Err(io::Error::other("it is not a blob"));
        }
        if size != stream.len() - header_len || size as u64 > max {
            return Err(io::Error::other(
                "its size is not what its header says, or over the limit",
            ));
        }
        Ok(Previous { stream, header_len })
    }
}

/// Writes the loose object file of `header` (`blob <size>\0`) then `data` to `out`: a zlib
/// stream of stored blocks, written straight from `data` (nothing copied to a buffer first).
/// A write per piece, two per 64 KB block, on purpose: one vectored write of a 3.8 MB branch
/// file (10,000 tasks) made post-receive 5 ms slower on a 2-core VM, probably because that
/// one long system call kept the threads hashing the same bytes off the core they shared.
pub fn write(out: &mut impl io::Write, header: &[u8], data: &[u8]) -> io::Result<()> {
    let total = header.len() + data.len();
    let blocks = total.div_ceil(BLOCK).max(1);
    out.write_all(&ZLIB_HEADER)?;
    for b in 0..blocks {
        let (start, end) = (b * BLOCK, ((b + 1) * BLOCK).min(total));
        let len = (end - start) as u16;
        let [l0, l1] = len.to_le_bytes();
        let [n0, n1] = (!len).to_le_bytes();
        out.write_all(&[u8::from(b + 1 == blocks), l0, l1, n0, n1])?;
        // The block's bytes of `header` then `data`, as if they were one slice.
        if start < header.len() {
            out.write_all(&header[start..end.min(header.len())])?;
        }
        if end > header.len() {
            out.write_all(&data[start.max(header.len()) - header.len()..end - header.len()])?;
        }
    }
    let adler = zlib_rs::adler32::adler32(zlib_rs::adler32::adler32(1, header), data);
    out.write_all(&adler.to_be_bytes())
}

/// [`write`] into memory.
pub fn encode(header: &[u8], data: &[u8]) -> Vec<u8> {
    let total = header.len() + data.len();
    let mut out = Vec::with_capacity(total + 5 * total.div_ceil(BLOCK) + 16);
    // Writing to memory cannot fail.
    let _ = write(&mut out, header, data);
    out
}

/// The stream of a file made only of stored blocks (`write`'s kind), checked against its
/// Adler-32 and made in place: each block's bytes are moved over the block headers before
/// them. `Err(file)`, untouched, when a block is of another kind (zlib inflates those).
fn unstore(mut file: Vec<u8>, limit: usize) -> io::Result<Result<Vec<u8>, Vec<u8>>> {
    let damaged = || io::Error::other("the stream is damaged");
    let body_end = file.len() - 4;
    // First where the blocks are, so that a file of another kind is left as it was.
    let mut blocks = Vec::with_capacity(body_end / (BLOCK + 5) + 1);
    let mut at = 2;
    let mut size = 0usize;
    loop {
        let Some(&[kind, l0, l1, n0, n1]) = file.get(at..at + 5) else {
            return Err(damaged());
        };
        // A stored block starts byte-aligned here only after stored blocks; its header byte is
        // the final flag and type 00 (zlib writes the padding bits as zeros).
        if kind > 1 {
            return Ok(Err(file));
        }
        let len = usize::from(u16::from_le_bytes([l0, l1]));
        if len != usize::from(!u16::from_le_bytes([n0, n1])) || at + 5 + len > body_end {
            return Err(damaged());
        }
        size += len;
        if size > limit {
            return Err(io::Error::other("larger than the limit"));
        }
        blocks.push(at + 5..at + 5 + len);
        at += 5 + len;
        if kind == 1 {
            break;
        }
    }
    if at != body_end {
        return Err(damaged());
    }
    let adler = u32::from_be_bytes([
        file[body_end],
        file[body_end + 1],
        file[body_end + 2],
        file[body_end + 3],
    ]);
    let mut end = 0;
    for block in blocks {
        let len = block.len();
        file.copy_within(block, end);
        end += len;
    }
    file.truncate(end);
    if zlib_rs::adler32::adler32(1, &file) != adler {
        return Err(damaged());
    }
    Ok(Ok(file))
}

/// Inflates a whole zlib stream of at most `limit` bytes that must end where `file` ends.
fn inflate(file: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    let mut d = Decompress::new(true);
    let mut out = Vec::with_capacity((file.len() * 4).min(limit));
    loop {
        if out.len() == out.capacity() {
            if out.len() >= limit {
                return Err(io::Error::other("larger than the limit"));
            }
            out.reserve((file.len() * 4).max(4096).min(limit - out.len()));
        }
        let progress = (d.total_in(), out.len());
        let done = d.total_in() as usize;
        let status = d
            .decompress_vec(&file[done..], &mut out, FlushDecompress::None)
            .map_err(io::Error::other)?;
        if out.len() > limit {
            return Err(io::Error::other("larger than the limit"));
        }
        let all_in = d.total_in() as usize == file.len();
        match status {
            Status::StreamEnd if all_in => return Ok(out),
            Status::StreamEnd => return Err(io::Error::other("data after the stream's end")),
            _ if all_in && out.len() < out.capacity() => {
                return Err(io::Error::other("the stream is cut short"))
            }
            _ if progress == (d.total_in(), out.len()) && out.len() < out.capacity() => {
                return Err(io::Error::other("the stream is damaged"))
            }
            _ => {}
        }
    }
}

/// Any loose object's file as read from disk: its kind and content, the content put in `out`.
/// A file of stored blocks (every object taskhook writes) is copied out; any other is inflated
/// with `inflater`, which is reset first, so one zlib state serves every object a process reads
/// (setting one up, about 40 KB allocated and cleared, cost more than inflating a small tree).
/// Errors on anything unexpected (the caller then asks the object store, which says what is
/// wrong): not a zlib stream, a header that is not git's, content longer or shorter than the
/// header says, data after the stream, or a declared size no zlib stream of this length holds.
pub fn read_object(
    file: Vec<u8>,
    inflater: &mut Decompress,
    out: &mut Vec<u8>,
) -> io::Result<gix_object::Kind> {
    if file.len() < 2 + 4 || !zlib_header_ok(file[0], file[1]) {
        return Err(io::Error::other("not a zlib stream"));
    }
    // Deflate expands at most about 1032 to 1: a larger size is a lie, not a reason to allocate.
    let limit = file.len().saturating_mul(1100).saturating_add(1024);
    let file = match unstore(file, limit)? {
        Ok(stream) => {
            let (kind, size, header_len) = parse_header(&stream)?;
            if stream.len() - header_len != size {
                return Err(io::Error::other("its size is not what its header says"));
            }
            out.clear();
            out.extend_from_slice(&stream[header_len..]);
            return Ok(kind);
        }
        Err(file) => file,
    };
    inflater.reset(true);
    // The header first, into a small buffer (with the content's first bytes, likely).
    let mut first = [0u8; 64];
    let status = inflater
        .decompress(&file, &mut first, FlushDecompress::None)
        .map_err(io::Error::other)?;
    let produced = inflater.total_out() as usize;
    let (kind, size, header_len) = parse_header(&first[..produced])?;
    if size > limit || produced - header_len > size {
        return Err(io::Error::other("its size is not what its header says"));
    }
    out.clear();
    out.reserve_exact(size);
    out.extend_from_slice(&first[header_len..produced]);
    let mut status = status;
    while status != Status::StreamEnd {
        let before = (inflater.total_in(), out.len());
        let done = inflater.total_in() as usize;
        status = inflater
            .decompress_vec(&file[done..], out, FlushDecompress::Finish)
            .map_err(io::Error::other)?;
        if status != Status::StreamEnd && before == (inflater.total_in(), out.len()) {
            // No progress: cut short, or more content than the header says (`out` is full).
            return Err(io::Error::other(
                "the stream is damaged or longer than its header says",
            ));
        }
    }
    if out.len() != size || inflater.total_in() as usize != file.len() {
        return Err(io::Error::other("its size is not what its header says"));
    }
    Ok(kind)
}

/// The kind and size of a loose object from the first bytes of its file (256 are plenty: the
/// header takes at most 32 bytes of the stream, which compresses them little), without
/// inflating the rest.
pub fn read_header(
    start: &[u8],
    inflater: &mut Decompress,
) -> io::Result<(gix_object::Kind, usize)> {
    if start.len() < 2 || !zlib_header_ok(start[0], start[1]) {
        return Err(io::Error::other("not a zlib stream"));
    }
    inflater.reset(true);
    let mut first = [0u8; 64];
    inflater
        .decompress(start, &mut first, FlushDecompress::None)
        .map_err(io::Error::other)?;
    let produced = inflater.total_out() as usize;
    let (kind, size, _) = parse_header(&first[..produced])?;
    Ok((kind, size))
}

/// A loose object's header, `<kind> <size>\0`, at the start of `stream`: the kind, the size,
/// and the header's length.
fn parse_header(stream: &[u8]) -> io::Result<(gix_object::Kind, usize, usize)> {
    let bad = || io::Error::other("no object header");
    let end = stream
        .iter()
        .take(32)
        .position(|&b| b == 0)
        .ok_or_else(bad)?;
    let (kind, size) = stream[..end].split_at(
        stream[..end]
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(bad)?,
    );
    let kind = gix_object::Kind::from_bytes(kind).map_err(|_| bad())?;
    let size = std::str::from_utf8(&size[1..])
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((kind, size, end + 1))
}

fn zlib_header_ok(cmf: u8, flg: u8) -> bool {
    cmf & 0x0f == 8 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0 && flg & 0x20 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob's header and content: `n` manifest-like lines.
    fn blob(n: usize) -> (Vec<u8>, Vec<u8>) {
        let body: String = (0..n)
            .map(|i| {
                format!(
                    "    {{\"path\":\"tests/task{i:05}\",\"desc\":\"task {i}\",\"tree\":\"{:040x}\"}},\n",
                    i * 7919
                )
            })
            .collect();
        (
            format!("blob {}\0", body.len()).into_bytes(),
            body.into_bytes(),
        )
    }

    fn zlib_inflate(bytes: &[u8]) -> Vec<u8> {
        use std::io::Read as _;
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("a valid zlib stream");
        out
    }

    #[test]
    fn stored_blocks_make_an_ordinary_zlib_stream_of_every_size() {
        // Empty, within one block, the header alone in a block's end, exactly one and two
        // blocks, and many.
        for n in [
            0,
            1,
            10,
            BLOCK - 9,
            BLOCK - 8,
            BLOCK,
            BLOCK + 1,
            2 * BLOCK,
            300_000,
        ] {
            let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let header = format!("blob {n}\0").into_bytes();
            let file = encode(&header, &data);
            assert_eq!(
                zlib_inflate(&file),
                [&header[..], &data[..]].concat(),
                "{n}"
            );
            let back = Previous::read(file, n as u64).expect("read back");
            assert_eq!(back.data(), &data[..], "{n}");
        }
    }

    #[test]
    fn a_stream_compressed_by_zlib_is_inflated() {
        let (h, d) = blob(3000);
        for level in [0, 1, 6, 9] {
            let mut z =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
            std::io::Write::write_all(&mut z, &[&h[..], &d[..]].concat()).expect("written");
            let p = Previous::read(z.finish().expect("finished"), 1 << 30).expect("read");
            assert_eq!(p.data(), &d[..], "level {level}");
        }
    }

    #[test]
    fn damaged_oversized_or_foreign_files_are_refused() {
        let (h, d) = blob(3000);
        let good = encode(&h, &d);
        assert!(
            Previous::read(good.clone(), d.len() as u64 - 1).is_err(),
            "over the limit"
        );
        assert!(Previous::read(good.clone(), d.len() as u64).is_ok());
        // The header, a block header, a byte of content, the Adler-32.
        for at in [
            1,
            2,
            3,
            4,
            5,
            100,
            BLOCK + 7,
            good.len() / 2,
            good.len() - 1,
        ] {
            let mut bad = good.clone();
            bad[at] ^= 0x55;
            assert!(Previous::read(bad, 1 << 30).is_err(), "byte {at} damaged");
        }
        for cut in [6, 7, good.len() / 2, good.len() - 5, good.len() - 1] {
            assert!(
                Previous::read(good[..cut].to_vec(), 1 << 30).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(
            Previous::read(longer, 1 << 30).is_err(),
            "a byte after the end"
        );
        let tree = encode(b"tree 3\0", b"abc");
        assert!(Previous::read(tree, 1 << 30).is_err(), "not a blob");
        let lying = encode(b"blob 4\0", b"abc");
        assert!(
            Previous::read(lying, 1 << 30).is_err(),
            "size not as declared"
        );
        assert!(Previous::read(b"not zlib at all".to_vec(), 1 << 30).is_err());
    }

    #[test]
    fn a_stored_stream_ending_in_another_kind_of_block_is_inflated() {
        // A stored block, then the rest compressed by zlib: valid, read through zlib.
        let (h, d) = blob(3000);
        let stream = [&h[..], &d[..]].concat();
        let mut out = ZLIB_HEADER.to_vec();
        out.push(0);
        out.extend_from_slice(&1000u16.to_le_bytes());
        out.extend_from_slice(&(!1000u16).to_le_bytes());
        out.extend_from_slice(&stream[..1000]);
        let mut c = flate2::Compress::new(flate2::Compression::new(6), false);
        out.reserve(stream.len());
        c.compress_vec(&stream[1000..], &mut out, flate2::FlushCompress::Finish)
            .expect("compressed");
        out.extend_from_slice(&zlib_rs::adler32::adler32(1, &stream).to_be_bytes());
        assert_eq!(zlib_inflate(&out), stream);
        let p = Previous::read(out, 1 << 30).expect("read");
        assert_eq!(p.data(), &d[..]);
    }

    fn zlib(level: u32, bytes: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
        std::io::Write::write_all(&mut z, bytes).expect("written");
        z.finish().expect("finished")
    }

    #[test]
    fn loose_objects_of_every_kind_are_read_with_one_zlib_state() {
        use gix_object::Kind;
        let mut inflater = Decompress::new(true);
        let mut out = Vec::new();
        let (_, big) = blob(3000);
        for (kind, data) in [
            (Kind::Blob, &b""[..]),
            (Kind::Blob, &b"hello\n"[..]),
            (Kind::Tree, &b"100644 a\0aaaaaaaaaaaaaaaaaaaa"[..]),
            (
                Kind::Commit,
                &b"tree 0000000000000000000000000000000000000000\n\nm\n"[..],
            ),
            (Kind::Tag, &b"object x\n"[..]),
            (Kind::Blob, &big[..]),
        ] {
            let header = gix_object::encode::loose_header(kind, data.len() as u64);
            let stream = [&header[..], data].concat();
            // As taskhook writes it, and as zlib does at git's levels.
            let mut files = vec![encode(&header, data)];
            files.extend([0, 1, 6, 9].map(|level| zlib(level, &stream)));
            for file in files {
                out.extend_from_slice(b"left over");
                let got = read_object(file, &mut inflater, &mut out).expect("read");
                assert_eq!((got, &out[..]), (kind, data), "{kind} of {}", data.len());
            }
        }
    }

    #[test]
    fn loose_objects_not_as_their_header_says_are_refused() {
        let mut inflater = Decompress::new(true);
        let mut out = Vec::new();
        let mut read = |file: Vec<u8>| read_object(file, &mut inflater, &mut out);
        for stream in [
            &b"blob 5\0hello!"[..], // longer than declared
            b"blob 7\0hello!",      // shorter
            b"blob\0hello",
            b"blob -1\0",
            b"blob +5\0hello",
            b"blob 5 \0hello",
            b"thing 5\0hello",
            b"no header at all, just bytes",
            // A size no stream of this length can hold: refused before allocating it.
            b"blob 999999999999\0x",
        ] {
            assert!(
                read(zlib(1, stream)).is_err(),
                "{:?}",
                String::from_utf8_lossy(stream)
            );
            assert!(
                read(encode(b"", stream)).is_err(),
                "stored {:?}",
                String::from_utf8_lossy(stream)
            );
        }
        let good = zlib(6, b"blob 5\0hello");
        assert!(read(good.clone()).is_ok());
        for cut in [2, 6, good.len() / 2, good.len() - 1] {
            assert!(read(good[..cut].to_vec()).is_err(), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(read(longer).is_err(), "a byte after the end");
        let mut damaged = good;
        damaged[4] ^= 0x55;
        assert!(read(damaged).is_err());
        assert!(read(b"not zlib".to_vec()).is_err());
    }
}
