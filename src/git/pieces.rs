//! Large loose blobs stored in pieces, so that the next version reuses what it shares.
//!
//! A branch manifest is one blob of hundreds of KB that changes by a line or two per push.
//! Compressing all of it again on every push is most of what post-receive costs at thousands
//! of tasks. So a large blob is stored as a zlib stream made of *pieces*: each piece is a run
//! of whole lines compressed on its own (a fresh compressor, ended by a sync flush, so it
//! decodes without anything before it). Where a piece ends is decided by the lines' content
//! (content-defined cuts), so an edited line changes its own piece and leaves the others as
//! they were. The next write finds the previous blob's pieces in its loose file and copies the
//! compressed bytes of every piece whose text is unchanged; only the changed pieces are
//! compressed again.
//!
//! The result is an ordinary zlib stream: git, `git fsck` and every reader see a normal loose
//! object, 3-6% larger than one compressed whole. Reading one back, a run of bytes counts as a
//! piece only when it provably decodes the same wherever it is put (see `decode_piece`), and
//! the whole stream's Adler-32 must match; anything else is read whole and reuses nothing.

use std::io;
use std::ops::Range;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// A piece ends after a line once it holds at least this many bytes and the line's hash says
/// so (about one line in 32), or at the first line end past `MAX_PIECE`.
const MIN_PIECE: usize = 4 * 1024;
const MAX_PIECE: usize = 64 * 1024;
const CUT_MASK: u64 = 31;

/// Runs that looked like pieces but were not, before a file is read whole instead.
const MAX_MISSES: usize = 8;

/// The end of a sync flush: an empty stored block. Every piece ends with it.
const SYNC_MARK: [u8; 4] = [0, 0, 0xff, 0xff];
/// An empty final block (fixed Huffman codes): how a stream of pieces ends, before the Adler-32.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// A stored blob as read back: its uncompressed stream (`blob <size>\0` and the content) and,
/// when it was stored in pieces, where each piece lies in the file and in the stream.
#[derive(Debug, Default)]
pub struct Previous {
    file: Vec<u8>,
    stream: Vec<u8>,
    header_len: usize,
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone)]
struct Piece {
    file: Range<usize>,
    stream: Range<usize>,
}

impl Previous {
    /// The blob's content.
    pub fn data(&self) -> &[u8] {
        &self.stream[self.header_len..]
    }

    /// How many pieces a later write could reuse.
    #[cfg(test)]
    fn pieces(&self) -> usize {
        self.pieces.len()
    }

    /// A blob read some other way (from a pack): its content, nothing to reuse.
    pub fn content(data: Vec<u8>) -> Previous {
        Previous {
            stream: data,
            ..Previous::default()
        }
    }

    /// Reads a loose blob's file (`file`, as stored) of at most `max` bytes of content. Pieces
    /// are found where the file has sync marks and each run between two of them decodes on
    /// its own; a file without them (compressed whole, by git or an older taskhook) is read
    /// whole, with no pieces. Errors: not a blob, larger than `max`, damaged.
    pub fn read(file: Vec<u8>, max: u64) -> io::Result<Previous> {
        if file.len() < 2 + 4 || !zlib_header_ok(file[0], file[1]) {
            return Err(io::Error::other("not a zlib stream"));
        }
        // `blob <size>\0` takes at most 26 bytes.
        let limit = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .saturating_add(32);
        let (stream, pieces) = match read_pieces(&file, limit) {
            Some(found) => found,
            None => {
                let mut d = Decompress::new(true);
                let mut stream = Vec::with_capacity((file.len() * 4).min(limit));
                inflate_into(&mut d, &file, &mut stream, limit, true)?;
                (stream, Vec::new())
            }
        };
        let header_len = header_len(&stream)?;
        match declared_size(&stream[..header_len]) {
            Some(size) if size == stream.len() - header_len && size as u64 <= max => {}
            Some(_) => {
                return Err(io::Error::other(
                    "its size is not what its header says, or over the limit",
                ))
            }
            None => return Err(io::Error::other("it is not a blob")),
        }
        Ok(Previous {
            file,
            stream,
            header_len,
            pieces,
        })
    }
}

/// The stream of a file stored in pieces, and the pieces; `None` when it is not one.
fn read_pieces(file: &[u8], limit: usize) -> Option<(Vec<u8>, Vec<Piece>)> {
    let body_end = file.len() - 4;
    let mut d = Decompress::new(false);
    let mut stream = Vec::new();
    let mut pieces = Vec::new();
    let mut start = 2;
    let mut misses = 0;
    for mark in memchr::memmem::find_iter(&file[..body_end], &SYNC_MARK) {
        let end = mark + SYNC_MARK.len();
        if end <= start {
            continue;
        }
        let before = stream.len();
        if decode_piece(&mut d, &file[start..end], &mut stream, limit).is_err() {
            // This run is not a piece: the mark was inside compressed data, or the file is
            // not in pieces. Try up to the next mark, a few times: each try decodes the run
            // again, so a file with many such marks is read whole instead.
            stream.truncate(before);
            misses += 1;
            if misses > MAX_MISSES {
                return None;
            }
            continue;
        }
        if pieces.is_empty() {
            // Room for the whole blob, once its header says how large it is.
            let h = header_len(&stream).ok()?;
            let size = declared_size(&stream[..h])?;
            stream.reserve((h + size).min(limit).saturating_sub(stream.len()));
        }
        pieces.push(Piece {
            file: start..end,
            stream: before..stream.len(),
        });
        start = end;
    }
    if pieces.is_empty() {
        return None;
    }
    d.reset(false);
    inflate_into(&mut d, &file[start..body_end], &mut stream, limit, true).ok()?;
    let adler = u32::from_be_bytes(file[body_end..].try_into().ok()?);
    (zlib_rs::adler32::adler32(1, &stream) == adler).then_some((stream, pieces))
}

/// Decodes one piece with `d`, from scratch, appending its text to `out`. It is a piece when
/// it decodes on its own (a back-reference before its start is an error) and leaves the
/// decoder byte-aligned at a block boundary: an empty final block right after it must then end
/// the stream, which from anywhere inside a block, or from a boundary that is not
/// byte-aligned (the piece's last byte is 0xff), it cannot. So its compressed bytes decode to
/// the same text wherever a stream of pieces puts them.
fn decode_piece(
    d: &mut Decompress,
    piece: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> io::Result<()> {
    if !piece.ends_with(&SYNC_MARK) {
        return Err(io::Error::other("not a piece"));
    }
    d.reset(false);
    inflate_into(d, piece, out, limit, false)?;
    let text_end = out.len();
    inflate_into(d, &FINAL_BLOCK, out, limit, true)?;
    if out.len() != text_end {
        return Err(io::Error::other("not a piece"));
    }
    Ok(())
}

/// A compressed loose object and how much of it came from the previous version.
pub struct Compressed {
    pub bytes: Vec<u8>,
    /// Bytes of the stream whose compressed form was copied.
    pub reused: usize,
}

/// Compresses a loose object, `header` (`blob <size>\0`) then `data`, at zlib `level` in
/// pieces, copying every piece `previous` holds with the same text. (A piece of `previous`
/// was decoded on its own when it was read, so its bytes decode to that text here too.)
pub fn compress(
    header: &[u8],
    data: &[u8],
    level: u32,
    previous: Option<&Previous>,
) -> io::Result<Compressed> {
    let cuts = cut(data);
    let known = previous.map(Known::of).unwrap_or_default();
    let mut z = Compress::new(Compression::new(level.min(9)), false);
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    out.extend_from_slice(&zlib_header(level));
    let mut reused = 0;
    for (i, range) in cuts.iter().enumerate() {
        let first;
        let text = if i == 0 {
            first = [header, &data[range.clone()]].concat();
            &first[..]
        } else {
            &data[range.clone()]
        };
        match previous.and_then(|p| known.find(p, text)) {
            Some(bytes) => {
                out.extend_from_slice(bytes);
                reused += text.len();
            }
            None => deflate_piece(&mut z, text, &mut out)?,
        }
    }
    out.extend_from_slice(&FINAL_BLOCK);
    let adler = zlib_rs::adler32::adler32(zlib_rs::adler32::adler32(1, header), data);
    out.extend_from_slice(&adler.to_be_bytes());
    Ok(Compressed { bytes: out, reused })
}

/// The previous version's pieces, looked up by their length and a hash of their ends.
#[derive(Default)]
struct Known(std::collections::HashMap<(usize, u64), Vec<usize>>);

impl Known {
    fn of(p: &Previous) -> Known {
        let mut map: std::collections::HashMap<(usize, u64), Vec<usize>> =
            std::collections::HashMap::with_capacity(p.pieces.len());
        for (i, piece) in p.pieces.iter().enumerate() {
            let text = &p.stream[piece.stream.clone()];
            map.entry((text.len(), ends_hash(text)))
                .or_default()
                .push(i);
        }
        Known(map)
    }

    /// The compressed bytes of a previous piece whose text is exactly `text`.
    fn find<'p>(&self, p: &'p Previous, text: &[u8]) -> Option<&'p [u8]> {
        let candidates = self.0.get(&(text.len(), ends_hash(text)))?;
        candidates.iter().find_map(|&i| {
            let piece = &p.pieces[i];
            (p.stream[piece.stream.clone()] == *text).then(|| &p.file[piece.file.clone()])
        })
    }
}

/// Where pieces end in `data`: after whole lines, decided by each line's own last bytes and
/// the piece's length so far, so that cuts after an edit fall where they fell before it.
fn cut(data: &[u8]) -> Vec<Range<usize>> {
    let mut cuts = Vec::with_capacity(data.len() / (MIN_PIECE * 2) + 1);
    let (mut start, mut line_start) = (0, 0);
    for nl in memchr::memchr_iter(b'\n', data) {
        let end = nl + 1;
        let len = end - start;
        let tail = &data[line_start.max(nl.saturating_sub(32))..nl];
        if len >= MAX_PIECE || (len >= MIN_PIECE && fnv(tail) & CUT_MASK == 0) {
            cuts.push(start..end);
            start = end;
        }
        line_start = end;
    }
    if start < data.len() || cuts.is_empty() {
        cuts.push(start..data.len());
    }
    cuts
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn ends_hash(text: &[u8]) -> u64 {
    let n = text.len().min(32);
    fnv(&text[..n]) ^ fnv(&text[text.len() - n..]).rotate_left(1)
}

/// Compresses one piece on its own, ended by a sync flush, appending to `out`.
fn deflate_piece(z: &mut Compress, text: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    z.reset();
    let base = z.total_in();
    loop {
        out.reserve(text.len() / 2 + 1024);
        let done = (z.total_in() - base) as usize;
        z.compress_vec(&text[done..], out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        if (z.total_in() - base) as usize == text.len() && out.len() < out.capacity() {
            return Ok(());
        }
    }
}

/// Inflates all of `input` into `out`, which may hold at most `limit` bytes. `last`: the input
/// must end the stream; otherwise it must stop short of the end with nothing left pending.
fn inflate_into(
    d: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
    last: bool,
) -> io::Result<()> {
    let base = d.total_in();
    loop {
        if out.len() == out.capacity() {
            if out.len() >= limit {
                return Err(io::Error::other("larger than the limit"));
            }
            out.reserve((input.len() * 4).max(4096).min(limit - out.len()));
        }
        let progress = (d.total_in(), out.len());
        let done = (d.total_in() - base) as usize;
        let status = d
            .decompress_vec(&input[done..], out, FlushDecompress::None)
            .map_err(io::Error::other)?;
        if out.len() > limit {
            return Err(io::Error::other("larger than the limit"));
        }
        let all_in = (d.total_in() - base) as usize == input.len();
        match status {
            Status::StreamEnd if last && all_in => return Ok(()),
            Status::StreamEnd => return Err(io::Error::other("the stream ends early")),
            // Everything read and room left: nothing is pending.
            _ if all_in && out.len() < out.capacity() => {
                return if last {
                    Err(io::Error::other("the stream is cut short"))
                } else {
                    Ok(())
                };
            }
            _ if progress == (d.total_in(), out.len()) && out.len() < out.capacity() => {
                return Err(io::Error::other("the stream is damaged"));
            }
            _ => {}
        }
    }
}

/// Two bytes that start a zlib stream compressed at `level` (as zlib writes them).
fn zlib_header(level: u32) -> [u8; 2] {
    let flevel: u16 = match level {
        0 | 1 => 0,
        2..=5 => 1,
        6 => 2,
        _ => 3,
    };
    let head = 0x7800u16 | (flevel << 6);
    let head = head + (31 - head % 31) % 31;
    head.to_be_bytes()
}

fn zlib_header_ok(cmf: u8, flg: u8) -> bool {
    cmf & 0x0f == 8 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0 && flg & 0x20 == 0
}

/// The length of `blob <size>\0` at the start of a loose object's stream.
fn header_len(stream: &[u8]) -> io::Result<usize> {
    stream
        .iter()
        .take(32)
        .position(|&b| b == 0)
        .map(|i| i + 1)
        .ok_or_else(|| io::Error::other("no object header"))
}

fn declared_size(header: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(header.strip_suffix(b"\0")?).ok()?;
    text.strip_prefix("blob ")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob's header and content: `n` manifest-like lines, line `changed` edited.
    fn blob(n: usize, changed: Option<usize>) -> (Vec<u8>, Vec<u8>) {
        let body: String = (0..n)
            .map(|i| {
                let tag = if Some(i) == changed { "changed" } else { "as before" };
                format!(
                    "    {{\"path\":\"tests/task{i:05}\",\"desc\":\"task {i} {tag}\",\"tree\":\"{:040x}\"}},\n",
                    i * 7919
                )
            })
            .collect();
        (
            format!("blob {}\0", body.len()).into_bytes(),
            body.into_bytes(),
        )
    }

    fn inflate(bytes: &[u8]) -> Vec<u8> {
        use std::io::Read as _;
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("a valid zlib stream");
        out
    }

    #[test]
    fn pieces_make_one_ordinary_zlib_stream() {
        let (h, d) = blob(3000, None);
        let c = compress(&h, &d, 1, None).expect("compressed");
        assert_eq!(inflate(&c.bytes), [&h[..], &d[..]].concat());
        assert_eq!(c.reused, 0);
        let p = Previous::read(c.bytes, 1 << 30).expect("read back");
        assert_eq!(p.data(), &d[..]);
        assert!(p.pieces() > 10, "{} pieces", p.pieces());
    }

    #[test]
    fn a_changed_line_recompresses_only_its_piece() {
        // At git's default level for loose objects, with no compression (stored blocks), and
        // at zlib's default.
        for level in [1, 0, 6] {
            let (h, d) = blob(3000, None);
            let prev = Previous::read(compress(&h, &d, level, None).expect("c").bytes, 1 << 30)
                .expect("read back");
            let (h2, d2) = blob(3000, Some(1500));
            let c = compress(&h2, &d2, level, Some(&prev)).expect("compressed");
            assert_eq!(inflate(&c.bytes), [&h2[..], &d2[..]].concat());
            // Only the first piece (its header holds the size) and the edited line's are new.
            assert!(
                c.reused > d2.len() * 9 / 10,
                "level {level}: {} of {}",
                c.reused,
                d2.len()
            );
            let again = Previous::read(c.bytes, 1 << 30).expect("read back");
            assert_eq!(again.data(), &d2[..]);
            assert!(again.pieces() > 10);
        }
    }

    #[test]
    fn a_stream_compressed_whole_is_read_without_pieces() {
        let (h, d) = blob(3000, None);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(1));
        std::io::Write::write_all(&mut z, &[&h[..], &d[..]].concat()).expect("written");
        let p = Previous::read(z.finish().expect("finished"), 1 << 30).expect("read");
        assert_eq!(p.data(), &d[..]);
        assert_eq!(p.pieces(), 0);
        let (h2, d2) = blob(3000, Some(7));
        let c = compress(&h2, &d2, 1, Some(&p)).expect("compressed");
        assert_eq!(inflate(&c.bytes), [&h2[..], &d2[..]].concat());
        assert_eq!(c.reused, 0);
    }

    #[test]
    fn damaged_oversized_or_foreign_files_are_refused() {
        let (h, d) = blob(3000, None);
        let good = compress(&h, &d, 1, None).expect("compressed").bytes;
        assert!(
            Previous::read(good.clone(), d.len() as u64 - 1).is_err(),
            "over the limit"
        );
        assert!(Previous::read(good.clone(), d.len() as u64).is_ok());
        for at in [2, 100, good.len() / 2, good.len() - 5, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x55;
            assert!(Previous::read(bad, 1 << 30).is_err(), "byte {at} damaged");
        }
        let tree = compress(b"tree 12\0", b"not a blob\n\n", 1, None)
            .expect("c")
            .bytes;
        assert!(Previous::read(tree, 1 << 30).is_err());
        assert!(Previous::read(vec![1, 2, 3], 100).is_err());
        assert!(Previous::read(Vec::new(), 100).is_err());
    }

    #[test]
    fn a_run_cut_inside_a_block_is_not_a_piece() {
        // A stream compressed whole, cut anywhere and given a sync mark's bytes, looks like a
        // piece to a byte scan but is not one: it must not be taken for one.
        let (h, d) = blob(3000, None);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(1));
        std::io::Write::write_all(&mut z, &[&h[..], &d[..]].concat()).expect("written");
        let whole = z.finish().expect("finished");
        let mut dec = Decompress::new(false);
        for cut_at in [40, 1000, 5000, whole.len() / 2] {
            let mut run = whole[2..cut_at].to_vec();
            run.extend_from_slice(&SYNC_MARK);
            let mut out = Vec::new();
            assert!(
                decode_piece(&mut dec, &run, &mut out, 1 << 30).is_err(),
                "cut at {cut_at}"
            );
        }
        // A real piece is one.
        let c = compress(&h, &d, 1, None).expect("c").bytes;
        let mark = memchr::memmem::find(&c[2..], &SYNC_MARK).expect("a mark") + 2;
        let mut out = Vec::new();
        decode_piece(&mut dec, &c[2..mark + 4], &mut out, 1 << 30).expect("a piece");
        assert!(out.starts_with(&h));
    }

    #[test]
    fn versions_after_versions_stay_exact() {
        // Lines added, removed and edited at random, each version written after the one
        // before and read back from its file, as pushes do.
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let mut lines: Vec<String> = (0..2000)
            .map(|i| format!("{{\"task\":{i},\"x\":\"{}\"}},\n", "y".repeat(i % 90)))
            .collect();
        let mut prev: Option<Previous> = None;
        let mut reused_any = false;
        for round in 0..40 {
            for _ in 0..1 + next(3) {
                let at = next(lines.len());
                match next(3) {
                    0 => lines[at] = format!("{{\"edited\":{round}}},\n"),
                    1 => lines.insert(at, format!("{{\"new\":{round}}}\n")),
                    _ => {
                        lines.remove(at);
                    }
                }
            }
            let body = lines.concat().into_bytes();
            let h = format!("blob {}\0", body.len()).into_bytes();
            let c = compress(&h, &body, 1, prev.as_ref()).expect("compressed");
            assert_eq!(
                inflate(&c.bytes),
                [&h[..], &body[..]].concat(),
                "round {round}"
            );
            reused_any |= c.reused > body.len() / 2;
            let p = Previous::read(c.bytes, 1 << 30).expect("read back");
            assert_eq!(p.data(), &body[..]);
            prev = Some(p);
        }
        assert!(reused_any);
    }

    #[test]
    fn every_level_writes_a_valid_header() {
        let (h, d) = blob(50, None);
        for level in 0..=9 {
            let c = compress(&h, &d, level, None).expect("compressed");
            assert!(zlib_header_ok(c.bytes[0], c.bytes[1]), "level {level}");
            assert_eq!(
                inflate(&c.bytes),
                [&h[..], &d[..]].concat(),
                "level {level}"
            );
        }
    }

    #[test]
    fn cuts_cover_everything_once_and_come_back_after_an_edit() {
        let (_, d) = blob(3000, None);
        let cuts = cut(&d);
        assert_eq!(cuts.first().map(|r| r.start), Some(0));
        assert_eq!(cuts.last().map(|r| r.end), Some(d.len()));
        assert!(cuts.windows(2).all(|w| w[0].end == w[1].start));
        let (_, d2) = blob(3000, Some(1500));
        let texts = |d: &[u8]| {
            cut(d)
                .into_iter()
                .map(|r| d[r].to_vec())
                .collect::<std::collections::BTreeSet<_>>()
        };
        let (t1, t2) = (texts(&d), texts(&d2));
        assert!(t1.len() > 10);
        assert!(t1.intersection(&t2).count() + 2 >= t1.len());
        assert_eq!(cut(b""), vec![0..0]);
        assert_eq!(cut(b"no newline"), vec![0..10]);
    }
}
