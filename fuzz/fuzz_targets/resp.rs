//! rbench's RESP reply scanner (`bench::resp::scan`): it must never read past the buffer, never
//! claim a reply of zero bytes (a caller's loop would not progress), agree with itself when the
//! same bytes arrive in pieces, and agree with a plain validating model of RESP2/RESP3 written
//! here for comparison.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rj::bench::resp::{scan, text, Scanned};

#[derive(Debug, PartialEq)]
enum Model {
    Complete(usize),
    Incomplete,
    Invalid,
}

/// One header line at `at`: the end of its text, or why not. A CR without LF is not RESP (a lone
/// LF is tolerated, as rj always did).
fn line(buf: &[u8], at: usize) -> Result<usize, Model> {
    let mut i = at;
    loop {
        match (buf.get(i), buf.get(i + 1)) {
            (None, _) | (Some(b'\r'), None) => return Err(Model::Incomplete),
            (Some(b'\r'), Some(b'\n')) => return Ok(i),
            (Some(b'\r'), Some(_)) => return Err(Model::Invalid),
            _ => i += 1,
        }
    }
}

/// Validate the replies in `buf[at..]`, iteratively: `pending` replies are still to be read.
fn model(buf: &[u8]) -> Model {
    let mut pos = 0usize;
    let mut pending: u128 = 1;
    while pending > 0 {
        pending -= 1;
        let Some(&tag) = buf.get(pos) else {
            return Model::Incomplete;
        };
        let eol = match line(buf, pos + 1) {
            Ok(e) => e,
            Err(m) => {
                return if b"+-:_,#($!=*~>%".contains(&tag) {
                    m
                } else {
                    Model::Invalid
                }
            }
        };
        let int = || {
            std::str::from_utf8(&buf[pos + 1..eol])
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
        };
        let next = eol + 2;
        match tag {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => pos = next,
            b'$' | b'!' | b'=' => {
                let Some(n) = int() else {
                    return Model::Invalid;
                };
                if n < 0 {
                    pos = next;
                    continue;
                }
                let end = next as u128 + n as u128;
                if (buf.len() as u128) < end + 2 {
                    return if (buf.len() as u128) == end + 1 && buf[end as usize] != b'\r' {
                        Model::Invalid
                    } else {
                        Model::Incomplete
                    };
                }
                if &buf[end as usize..end as usize + 2] != b"\r\n" {
                    return Model::Invalid;
                }
                pos = end as usize + 2;
            }
            b'*' | b'~' | b'>' | b'%' => {
                let Some(n) = int() else {
                    return Model::Invalid;
                };
                pos = next;
                if n > 0 {
                    pending += if tag == b'%' {
                        2 * n as u128
                    } else {
                        n as u128
                    };
                }
            }
            _ => return Model::Invalid,
        }
    }
    Model::Complete(pos)
}

fn as_model(r: &Result<Option<Scanned>, rj::bench::resp::ProtocolError>) -> Model {
    match r {
        Ok(Some(s)) => Model::Complete(s.len),
        Ok(None) => Model::Incomplete,
        Err(_) => Model::Invalid,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, buf)) = data.split_first() else {
        return;
    };
    let got = scan(buf);
    assert_eq!(
        as_model(&got),
        model(buf),
        "scan disagrees with the model on {buf:?}"
    );
    match got {
        Ok(Some(s)) => {
            assert!(
                s.len > 0 && s.len <= buf.len(),
                "reply of {} bytes in {}",
                s.len,
                buf.len()
            );
            assert_eq!(s.error, buf[0] == b'-' || buf[0] == b'!');
            assert_eq!(
                scan(&buf[..s.len]),
                Ok(Some(s)),
                "the reply alone scans differently"
            );
            // A reply cut short is "need more bytes", never a reply or an error.
            let k = cut as usize % s.len;
            assert_eq!(
                scan(&buf[..k]),
                Ok(None),
                "prefix of {k} of {} bytes",
                s.len
            );
            let _ = text(&buf[..s.len]);
        }
        Ok(None) => {
            let k = cut as usize % (buf.len() + 1);
            assert_eq!(scan(&buf[..k]), Ok(None), "a shorter prefix is complete");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    // The engine's loop: consume replies until one is incomplete.
    let mut pos = 0;
    let mut n = 0;
    while let Ok(Some(s)) = scan(&buf[pos..]) {
        assert!(s.len > 0);
        pos += s.len;
        n += 1;
        assert!(pos <= buf.len() && n <= buf.len());
    }
});
