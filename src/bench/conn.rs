//! Raw connections for the native engine: TCP or unix socket, AUTH and SELECT at connect.
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::config::{Addr, Config, Target};
use crate::exit::{fail, Kind};

use super::resp;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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

/// `host:port (from …)`: where we connect, for messages; never the password.
pub fn place(cfg: &Config) -> String {
    format!("{} ({})", cfg.target, cfg.source)
}

/// Refuse what the raw engine cannot do, before any connection.
pub fn check_supported(cfg: &Config) -> anyhow::Result<()> {
    if let Addr::Tcp { tls: true, .. } = cfg.target.addr {
        return Err(fail(
            Kind::Config,
            format!(
                "Redis at {} uses TLS, which the native engine does not speak; use `rbench wrap` \
                 (redis-benchmark --tls) for TLS servers",
                place(cfg)
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
            format!("cannot connect to Redis at {}: {e}", place(cfg)),
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
        Raw::Tcp(s) => {
            s.set_read_timeout(Some(CONNECT_TIMEOUT * 3))
                .map_err(unreachable)?;
        }
        Raw::Unix(s) => {
            s.set_read_timeout(Some(CONNECT_TIMEOUT * 3))
                .map_err(unreachable)?;
        }
    }
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
            format!("cannot talk to Redis at {}: {e}", place(cfg)),
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
                        format!("Redis at {} answered {step} with garbage: {e}", place(cfg)),
                    ))
                }
            }
            let n = raw.io().read(&mut chunk).map_err(io_err)?;
            if n == 0 {
                return Err(fail(
                    Kind::Unavailable,
                    format!("Redis at {} closed the connection at {step}", place(cfg)),
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        if reply.first() == Some(&b'-') {
            let msg = resp::text(&reply);
            let kind = if msg.starts_with("WRONGPASS")
                || msg.starts_with("NOAUTH")
                || msg.starts_with("NOPERM")
                || step == "AUTH"
            {
                Kind::NoPerm
            } else {
                Kind::Unavailable
            };
            return Err(fail(
                kind,
                format!("Redis at {} refused {step}: {msg}", place(cfg)),
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
/// whose errors are less clear).
pub fn probe(cfg: &Config) -> anyhow::Result<()> {
    if let Addr::Tcp { tls: true, .. } = cfg.target.addr {
        return Ok(()); // redis-benchmark --tls checks for itself
    }
    connect(cfg).map(drop)
}
