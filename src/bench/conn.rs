//! Raw connections for the native engine: TCP or unix socket, AUTH and SELECT at connect.
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;

use crate::config::{Addr, Config, Target};
use crate::exit::{auth_kind, fail, Kind};
use crate::store::{CONNECT_TIMEOUT, IO_TIMEOUT};

use super::resp;

/// A connected, authenticated, blocking stream.
pub enum Raw {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Raw {
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Raw::Tcp(s) => s,
            Raw::Unix(s) => s,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Refuse what the raw engine cannot do, before any connection.
pub fn check_supported(cfg: &Config) -> anyhow::Result<()> {
    if let Addr::Tcp { tls: true, .. } = cfg.target.addr {
        return Err(fail(
            Kind::Config,
            format!(
                "Redis at {} uses TLS, which the native engine does not speak; use `rbench wrap` \
                 (redis-benchmark --tls) for TLS servers",
                cfg.place()
            ),
        ));
    }
    Ok(())
}

/// Connect, authenticate, select the database and PING; errors name the place and choose
/// 69 (unreachable) or 77 (auth refused).
pub fn connect(cfg: &Config) -> anyhow::Result<Raw> {
    check_supported(cfg)?;
    let t = &cfg.target;
    let unreachable = |e: std::io::Error| {
        fail(
            Kind::Unavailable,
            format!("cannot connect to Redis at {}: {e}", cfg.place()),
        )
    };
    let mut raw = match &t.addr {
        Addr::Tcp { host, port, .. } => {
            let mut last = None;
            let mut stream = None;
            for a in (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(unreachable)?
            {
                match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                    Ok(s) => {
                        stream = Some(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            let s = match stream {
                Some(s) => s,
                None => {
                    return Err(unreachable(last.unwrap_or_else(|| {
                        std::io::Error::other("no address for the host")
                    })))
                }
            };
            // Small requests must leave at once, as hiredis does for redis-benchmark.
            s.set_nodelay(true).map_err(unreachable)?;
            Raw::Tcp(s)
        }
        Addr::Unix(p) => Raw::Unix(UnixStream::connect(p).map_err(unreachable)?),
    };
    match &mut raw {
        Raw::Tcp(s) => s.set_read_timeout(Some(IO_TIMEOUT)),
        Raw::Unix(s) => s.set_read_timeout(Some(IO_TIMEOUT)),
    }
    .map_err(unreachable)?;
    handshake(&mut raw, t, cfg)?;
    Ok(raw)
}

fn handshake(raw: &mut Raw, t: &Target, cfg: &Config) -> anyhow::Result<()> {
    let mut out = Vec::new();
    let mut steps = Vec::new();
    if let Some(pw) = &t.password {
        match &t.username {
            Some(u) => resp::encode(&mut out, &[b"AUTH", u.as_bytes(), pw.as_bytes()]),
            None => resp::encode(&mut out, &[b"AUTH", pw.as_bytes()]),
        }
        steps.push("AUTH");
    }
    if t.db != 0 {
        resp::encode(&mut out, &[b"SELECT", t.db.to_string().as_bytes()]);
        steps.push("SELECT");
    }
    resp::encode(&mut out, &[b"PING"]);
    steps.push("PING");
    let io_err = |e: std::io::Error| {
        fail(
            Kind::Unavailable,
            format!("cannot talk to Redis at {}: {e}", cfg.place()),
        )
    };
    raw.io().write_all(&out).map_err(io_err)?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 4096];
    for step in steps {
        let reply = loop {
            match resp::scan(&buf) {
                Ok(Some(s)) => break buf.drain(..s.len).collect::<Vec<u8>>(),
                Ok(None) => {}
                Err(e) => {
                    return Err(fail(
                        Kind::Unavailable,
                        format!("Redis at {} answered {step} with garbage: {e}", cfg.place()),
                    ))
                }
            }
            let n = raw.io().read(&mut chunk).map_err(io_err)?;
            if n == 0 {
                return Err(fail(
                    Kind::Unavailable,
                    format!("Redis at {} closed the connection at {step}", cfg.place()),
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        if reply.first() == Some(&b'-') {
            let msg = resp::text(&reply);
            let code = msg.split_whitespace().next().unwrap_or("");
            let kind = match auth_kind(code) {
                Some(k) => k,
                // Whatever AUTH's refusal says (`ERR invalid password` before Redis 6).
                None if step == "AUTH" => Kind::NoPerm,
                None => Kind::Unavailable,
            };
            return Err(fail(
                kind,
                format!("Redis at {} refused {step}: {msg}", cfg.place()),
            ));
        }
    }
    Ok(())
}

/// Turn a handshaken blocking stream into a non-blocking mio stream.
pub fn into_mio(raw: Raw) -> std::io::Result<super::engine::Stream> {
    use super::engine::Stream;
    Ok(match raw {
        Raw::Tcp(s) => {
            s.set_read_timeout(None)?;
            s.set_nonblocking(true)?;
            Stream::Tcp(mio::net::TcpStream::from_std(s))
        }
        Raw::Unix(s) => {
            s.set_read_timeout(None)?;
            s.set_nonblocking(true)?;
            Stream::Unix(mio::net::UnixStream::from_std(s))
        }
    })
}

/// Check that the server is reachable and accepts our credentials (before `wrap` starts a child
/// whose errors are less clear). A TLS server is left to redis-benchmark --tls: this is not the
/// check `connect` makes, which refuses TLS because the native engine cannot speak it.
pub fn probe(cfg: &Config) -> anyhow::Result<()> {
    if let Addr::Tcp { tls: true, .. } = cfg.target.addr {
        return Ok(());
    }
    connect(cfg).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> Config {
        crate::config::load(
            &crate::config::Request {
                config: None,
                url: Some(url.into()),
            },
            &std::collections::HashMap::new(),
        )
        .unwrap()
    }

    #[test]
    fn tls_is_refused_by_the_engine_but_left_to_redis_benchmark() {
        // Port 1 on loopback: nothing listens, so only a skipped connect can succeed.
        let tls = config("rediss://127.0.0.1:1");
        assert_eq!(crate::exit::code_for(&connect(&tls).err().unwrap()), 78);
        probe(&tls).unwrap();
        let plain = config("redis://127.0.0.1:1");
        let e = probe(&plain).unwrap_err();
        assert_eq!(crate::exit::code_for(&e), 69);
        assert!(e.to_string().contains("127.0.0.1:1 (from --url)"), "{e}");
    }
}
