//! A minimal client for git's `upload-archive` service over the git protocol (`git://`), so the
//! trigger fetches a manifest without starting a git process per event. It speaks what
//! `git archive --remote` speaks: the daemon request, `argument` lines, ACK/NACK, then the
//! archive on side-band 1 with messages on bands 2 and 3.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::error::FetchError;

/// What the server sent: the archive bytes, or the reason it refused.
pub struct Archive {
    pub ok: bool,
    pub data: Vec<u8>,
    pub message: String,
}

const DEFAULT_PORT: u16 = 9418;

/// Fetches an archive from `host[:port]/path` (the part of a `git://` URL after the scheme).
pub fn fetch(
    rest: &str,
    args: &[&str],
    timeout: Duration,
    max: usize,
) -> Result<Archive, FetchError> {
    let url = format!("git://{rest}");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => {
            return Err(FetchError::Unreachable(format!(
                "{url}: no repository path"
            )))
        }
    };
    let (host, port) = split_host_port(authority)
        .ok_or_else(|| FetchError::Unreachable(format!("{url}: bad host")))?;
    let deadline = Instant::now() + timeout;
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| FetchError::Unreachable(format!("{url}: cannot resolve {host}: {e}")))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut stream = stream.ok_or_else(|| {
        FetchError::Unreachable(format!(
            "cannot connect: {}",
            last.map_or("no address".to_string(), |e| e.to_string())
        ))
    })?;
    let _ = stream.set_nodelay(true);
    let io = |e: std::io::Error| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            FetchError::Timeout(timeout.as_secs(), url.clone())
        } else {
            FetchError::Unreachable(format!("{url}: {e}"))
        }
    };
    let mut request = Vec::new();
    pkt(
        &mut request,
        format!("git-upload-archive {path}\0host={authority}\0").as_bytes(),
    );
    for a in args {
        pkt(&mut request, format!("argument {a}\n").as_bytes());
    }
    request.extend_from_slice(b"0000");
    set_timeouts(&stream, deadline).map_err(io)?;
    stream.write_all(&request).map_err(io)?;

    let mut reader = PktReader {
        stream: &mut stream,
        arm: |s: &TcpStream| set_timeouts(s, deadline),
    };
    read_response(&mut reader, &url, max).map_err(|e| match e {
        Response::Io(e) => io(e),
        Response::Failed(f) => f,
    })
}

/// Reads what a server answers to an upload-archive request from `bytes` (a recorded or
/// crafted answer): the same parser the network client uses, for tests and fuzzing.
pub fn parse_response(bytes: &[u8], max: usize) -> Result<Archive, FetchError> {
    let mut slice = bytes;
    let mut reader = PktReader {
        stream: &mut slice,
        arm: |_: &&[u8]| Ok(()),
    };
    read_response(&mut reader, "git://recorded", max).map_err(|e| match e {
        Response::Io(e) => FetchError::Unreachable(e.to_string()),
        Response::Failed(f) => f,
    })
}

enum Response {
    Io(std::io::Error),
    Failed(FetchError),
}

impl From<std::io::Error> for Response {
    fn from(e: std::io::Error) -> Self {
        Response::Io(e)
    }
}

/// ACK or NACK, a flush, then the archive on side-band 1 with messages on bands 2 and 3.
fn read_response<R: Read, A: Fn(&R) -> std::io::Result<()>>(
    reader: &mut PktReader<'_, R, A>,
    url: &str,
    max: usize,
) -> Result<Archive, Response> {
    let fail = |e: FetchError| Response::Failed(e);
    match reader.next()? {
        Some(line) => {
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if let Some(reason) = text.strip_prefix("ERR ") {
                // git daemon's answer for a repository it does not have (or does not export).
                if reason.contains("repository not exported") {
                    return Err(fail(FetchError::NoRepository(format!(
                        "remote error: {reason} (git daemon answers so too when it runs no upload-archive; taskhook then fetches instead, into its cache)"
                    ))));
                }
                return Err(fail(FetchError::Unreachable(format!(
                    "remote error: {reason}"
                ))));
            }
            if let Some(reason) = text.strip_prefix("NACK ") {
                return Ok(Archive {
                    ok: false,
                    data: Vec::new(),
                    message: reason.to_string(),
                });
            }
            if text != "ACK" {
                return Err(fail(FetchError::Unreachable(format!(
                    "{url}: protocol error: unexpected {text:?}"
                ))));
            }
        }
        None => {
            return Err(fail(FetchError::Unreachable(
                "the remote closed the connection".to_string(),
            )))
        }
    }
    if reader.next()?.is_some() {
        return Err(fail(FetchError::Unreachable(format!(
            "{url}: protocol error: expected a flush"
        ))));
    }
    let mut data = Vec::new();
    let mut message = String::new();
    let mut failed = false;
    while let Some(p) = reader.next()? {
        let Some((&band, payload)) = p.split_first() else {
            continue;
        };
        match band {
            1 => {
                if data.len() + payload.len() > max {
                    return Err(fail(FetchError::TooLarge(max)));
                }
                data.extend_from_slice(payload);
            }
            2 => message.push_str(&String::from_utf8_lossy(payload)),
            3 => {
                failed = true;
                message.push_str(&String::from_utf8_lossy(payload));
            }
            _ => {
                return Err(fail(FetchError::Unreachable(format!(
                    "{url}: protocol error: side-band {band}"
                ))))
            }
        }
        if message.len() > 64 * 1024 {
            message.truncate(64 * 1024);
        }
    }
    // git's archiver reports failure as "fatal: ..." on the progress band and sends no data.
    if message.contains("fatal:") && data.is_empty() {
        failed = true;
    }
    Ok(Archive {
        ok: !failed,
        data,
        message,
    })
}

fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => DEFAULT_PORT,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h, p.parse().ok()?)),
        None => Some((authority, DEFAULT_PORT)),
    }
    .filter(|(h, _)| !h.is_empty())
}

fn pkt(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(format!("{:04x}", payload.len() + 4).as_bytes());
    out.extend_from_slice(payload);
}

fn set_timeouts(stream: &TcpStream, deadline: Instant) -> std::io::Result<()> {
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))?;
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))
}

/// pkt-line reader over a stream; `arm` runs before every read (for the network: the socket's
/// timeouts set to what is left of the request's deadline).
struct PktReader<'s, R, A> {
    stream: &'s mut R,
    arm: A,
}

impl<R: Read, A: Fn(&R) -> std::io::Result<()>> PktReader<'_, R, A> {
    /// The next packet's payload; `None` for a flush packet or the end of the stream.
    fn next(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut len = [0u8; 4];
        match self.read_full(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let text = std::str::from_utf8(&len).map_err(|_| bad("bad packet length"))?;
        let n = usize::from_str_radix(text, 16).map_err(|_| bad("bad packet length"))?;
        if n == 0 {
            return Ok(None);
        }
        if !(4..=65520).contains(&n) {
            return Err(bad("bad packet length"));
        }
        let mut payload = vec![0u8; n - 4];
        self.read_full(&mut payload)?;
        Ok(Some(payload))
    }

    /// `read_exact` under the request's deadline: each read may wait only for what is left, so
    /// a server sending one byte at a time cannot stretch the request.
    fn read_full(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            (self.arm)(self.stream)?;
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port() {
        assert_eq!(split_host_port("127.0.0.1:9000"), Some(("127.0.0.1", 9000)));
        assert_eq!(
            split_host_port("pkgs.example.org"),
            Some(("pkgs.example.org", 9418))
        );
        assert_eq!(split_host_port("[::1]:9000"), Some(("::1", 9000)));
        assert_eq!(split_host_port(":9000"), None);
    }

    #[test]
    fn answers_are_read_as_git_sends_them() {
        let ok = parse_response(b"0008ACK\n0000000a\x01hello0009\x02note0000", 100).expect("ok");
        assert!(ok.ok);
        assert_eq!(ok.data, b"hello");
        assert_eq!(ok.message, "note");
        let nack = parse_response(b"0017NACK unknown option", 100).expect("nack");
        assert!(!nack.ok);
        assert_eq!(nack.message, "unknown option");
        for (bytes, wanted) in [
            (&b"000eERR denied"[..], "remote error: denied"),
            (b"0008ACK\n0000000a\x07hello", "side-band 7"),
            (b"0008ACK\n0005x", "expected a flush"),
            (b"0008ACK\n0000zzzz", "bad packet length"),
            (b"0008ACK\n00000003", "bad packet length"),
            (b"0008ACK\n0000fff0\x01", "end of file"),
            (b"", "closed the connection"),
        ] {
            let e = parse_response(bytes, 100)
                .err()
                .expect("refused")
                .to_string();
            assert!(e.contains(wanted), "{bytes:?}: {e}");
        }
        let big = parse_response(b"0008ACK\n0000000a\x01hello", 3)
            .err()
            .expect("too large");
        assert!(matches!(big, FetchError::TooLarge(3)));
        let fatal = parse_response(b"0008ACK\n00000013\x02fatal: no path0000", 10).expect("read");
        assert!(!fatal.ok);
    }
}
