//! RESP2 for the native engine: command encoding into a reused buffer, and a reply scanner that
//! finds where a reply ends (and whether it is an error) without allocating.
use std::fmt;

/// Append `*N\r\n$len\r\narg\r\n…` to `out`.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    header(out, b'*', args.len());
    for a in args {
        bulk(out, a);
    }
}

/// Append one bulk string.
pub fn bulk(out: &mut Vec<u8>, a: &[u8]) {
    header(out, b'$', a.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b"\r\n");
}

/// Append `<tag><n>\r\n`.
pub fn header(out: &mut Vec<u8>, tag: u8, n: usize) {
    out.push(tag);
    let mut digits = [0u8; 20];
    let s = fmt_u64(n as u64, &mut digits);
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}

fn fmt_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Write `n` as exactly `dst.len()` zero-padded decimal digits (the key number in a template).
#[inline]
pub fn write_digits(dst: &mut [u8], mut n: u64) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The server sent something that is not RESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// A complete reply at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Bytes the reply takes.
    pub len: usize,
    /// A top-level error reply (`-ERR …`).
    pub error: bool,
    /// Nil replies in it (`$-1`, `*-1`, `_`): GET's miss, or MGET's missing keys.
    pub nils: u32,
}

/// Find the end of the reply that starts at `buf[0]`: `Ok(None)` when more bytes are needed.
#[inline]
pub fn scan(buf: &[u8]) -> Result<Option<Scanned>, ProtocolError> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    // Fast paths for the replies of SET and GET.
    if tag == b'+' && buf.len() >= 5 && &buf[..5] == b"+OK\r\n" {
        return Ok(Some(Scanned {
            len: 5,
            error: false,
            nils: 0,
        }));
    }
    Ok(skip(buf, 0)?.map(|(len, nils)| Scanned {
        len,
        error: tag == b'-' || tag == b'!',
        nils,
    }))
}

/// The end of the reply at `buf[at..]`, as an absolute offset. A loop with a count of replies
/// still to skip, not recursion: a hostile server's deeply nested array must not overflow the
/// stack, and a huge element count must not overflow the count.
fn skip(buf: &[u8], at: usize) -> Result<Option<(usize, u32)>, ProtocolError> {
    let mut pos = at;
    let mut pending: u64 = 1;
    let mut nils = 0u32;
    while pending > 0 {
        pending -= 1;
        let Some(&tag) = buf.get(pos) else {
            return Ok(None);
        };
        if !b"+-:_,#($!=*~>%".contains(&tag) {
            return Err(ProtocolError(format!(
                "unexpected reply type byte {:?}",
                tag as char
            )));
        }
        let Some(eol) = find_crlf(buf, pos + 1)? else {
            return Ok(None);
        };
        let line = &buf[pos + 1..eol];
        pos = eol + 2;
        match tag {
            b'_' => nils = nils.saturating_add(1),
            b'$' | b'!' | b'=' => {
                let n = parse_int(line)?;
                if n < 0 {
                    nils = nils.saturating_add(1);
                    continue;
                }
                let end = pos.saturating_add(n as usize);
                match buf.get(end..end.saturating_add(2)) {
                    Some(b"\r\n") => pos = end + 2,
                    None if buf.len() <= end || buf[end] == b'\r' => return Ok(None),
                    _ => {
                        return Err(ProtocolError(format!(
                            "bulk reply of {n} bytes not followed by CRLF"
                        )))
                    }
                }
            }
            b'*' | b'~' | b'>' | b'%' => {
                let n = parse_int(line)?;
                if n < 0 {
                    nils = nils.saturating_add(1);
                }
                if n > 0 {
                    let items = if tag == b'%' {
                        (n as u64).saturating_mul(2)
                    } else {
                        n as u64
                    };
                    pending = pending.saturating_add(items);
                }
            }
            _ => {}
        }
    }
    Ok(Some((pos, nils)))
}

/// The CR of the CRLF that ends the line at `buf[from..]`; a CR followed by anything else is not
/// RESP (waiting for more bytes would wait for ever).
#[inline]
fn find_crlf(buf: &[u8], from: usize) -> Result<Option<usize>, ProtocolError> {
    let mut i = from;
    while i < buf.len() {
        match buf[i] {
            b'\r' => {
                return match buf.get(i + 1) {
                    None => Ok(None),
                    Some(b'\n') => Ok(Some(i)),
                    Some(_) => Err(ProtocolError("CR without LF in a reply line".into())),
                }
            }
            _ => i += 1,
        }
    }
    Ok(None)
}

fn parse_int(line: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            ProtocolError(format!(
                "bad length {:?}",
                String::from_utf8_lossy(line).into_owned()
            ))
        })
}

/// The text of a simple reply (`+OK`, `-ERR …`) or bulk string, for the handshake and for the
/// first error message of a run.
pub fn text(reply: &[u8]) -> String {
    let body = reply.strip_suffix(b"\r\n").unwrap_or(reply);
    let body = match reply.first() {
        Some(b'$') => match body.iter().position(|&b| b == b'\n') {
            Some(i) => &body[i + 1..],
            None => body,
        },
        Some(_) => &body[1..],
        None => body,
    };
    String::from_utf8_lossy(body).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands() {
        let mut out = Vec::new();
        encode(&mut out, &[b"SET", b"k", b"hello"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n");
        out.clear();
        encode(&mut out, &[b"GET", b""]);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
    }

    #[test]
    fn digits_are_zero_padded() {
        let mut d = *b"xxxxxx";
        write_digits(&mut d, 42);
        assert_eq!(&d, b"000042");
        write_digits(&mut d, 1234567);
        assert_eq!(&d, b"234567", "wraps to the width");
    }

    fn ok(buf: &[u8]) -> Option<(usize, bool)> {
        scan(buf).unwrap().map(|s| (s.len, s.error))
    }

    #[test]
    fn scans_simple_replies() {
        assert_eq!(ok(b"+OK\r\n"), Some((5, false)));
        assert_eq!(ok(b"+OK\r\n+OK\r\n"), Some((5, false)));
        assert_eq!(ok(b"+PONG\r\n"), Some((7, false)));
        assert_eq!(ok(b":1000\r\nxx"), Some((7, false)));
        let wrongtype = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
        assert_eq!(ok(wrongtype), Some((wrongtype.len(), true)));
    }

    #[test]
    fn scans_bulk_and_nil() {
        assert_eq!(ok(b"$5\r\nhello\r\n"), Some((11, false)));
        assert_eq!(ok(b"$-1\r\n"), Some((5, false)));
        assert_eq!(ok(b"$0\r\n\r\n"), Some((6, false)));
        // A bulk whose payload holds CRLF is skipped by its length.
        assert_eq!(ok(b"$4\r\n\r\n\r\n\r\n"), Some((10, false)));
    }

    #[test]
    fn partial_replies_need_more() {
        for cut in [
            b"".as_slice(),
            b"+O",
            b"+OK\r",
            b"$5\r\nhel",
            b"$5\r\nhello\r",
            b"$5",
        ] {
            assert_eq!(ok(cut), None, "{:?}", String::from_utf8_lossy(cut));
        }
        assert_eq!(ok(b"*2\r\n$1\r\na\r\n"), None);
    }

    #[test]
    fn scans_nested_arrays() {
        assert_eq!(ok(b"*2\r\n$1\r\na\r\n$-1\r\n"), Some((16, false)));
        assert_eq!(ok(b"*0\r\n"), Some((4, false)));
        assert_eq!(ok(b"*-1\r\n"), Some((5, false)));
        assert_eq!(ok(b"*2\r\n*1\r\n:1\r\n+x\r\n"), Some((16, false)));
        // An error inside an array (EXEC) is not a top-level error.
        assert_eq!(ok(b"*1\r\n-ERR x\r\n"), Some((12, false)));
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert!(scan(b"HTTP/1.1 400\r\n").is_err());
        assert!(scan(b"$x\r\n").is_err());
    }

    #[test]
    fn a_cr_without_lf_is_a_protocol_error() {
        // Found by fuzz/fuzz_targets/resp.rs: "need more bytes" here would wait for ever.
        assert!(scan(b"+O\rK\n").is_err());
        assert!(scan(b"*1\r:1\r\n").is_err());
        assert_eq!(ok(b"+O\r"), None, "the LF may still come");
    }

    #[test]
    fn an_unknown_type_byte_fails_before_the_line_ends() {
        assert!(scan(b"HTTP/1.1").is_err());
        assert!(scan(b"*1\r\nX").is_err());
    }

    #[test]
    fn a_bulk_reply_must_end_in_crlf() {
        assert!(scan(b"$3\r\nfooXY").is_err());
        assert!(scan(b"$3\r\nfooX").is_err());
        assert!(scan(b"*1\r\n$1\r\nab\r\n").is_err());
    }

    #[test]
    fn a_huge_count_is_not_a_complete_reply() {
        // 2^62 pairs: counting them as 2 * 2^62 items overflowed.
        assert_eq!(ok(b"%4611686018427387904\r\n"), None);
        assert_eq!(ok(b"%9223372036854775807\r\n"), None);
        assert_eq!(
            ok(b"*9223372036854775807\r\n*9223372036854775807\r\n"),
            None
        );
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        // A server may send any depth (rbench's read buffer grows to fit the reply).
        let depth = 100_000;
        let mut buf = b"*1\r\n".repeat(depth);
        buf.extend_from_slice(b":1\r\n");
        let len = buf.len();
        let got = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || scan(&buf).unwrap())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(got.map(|s| s.len), Some(len));
    }

    #[test]
    fn reply_text() {
        assert_eq!(
            text(b"-ERR value is not an integer\r\n"),
            "ERR value is not an integer"
        );
        assert_eq!(text(b"+OK\r\n"), "OK");
        assert_eq!(text(b"$5\r\nhello\r\n"), "hello");
    }
}
