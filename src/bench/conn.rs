//! Raw connections for the native engine: TCP, TLS (rustls) or unix socket, AUTH and SELECT at
//! connect, and the non-blocking TLS stream the engine drives.
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::config::{Addr, Config, Target};
use crate::exit::{auth_kind, fail, Kind};
use crate::store::{tls_files, tls_files_unusable, tls_why, CONNECT_TIMEOUT, IO_TIMEOUT};

use super::resp;

/// A connected, authenticated, blocking stream.
pub enum Raw {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Raw {
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Raw::Tcp(s) => s,
            Raw::Unix(s) => s,
            Raw::Tls(s) => &mut **s,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// What every client of a run connects with: for a TLS server the rustls configuration, built
/// once from redis.json's `tls_ca`, `tls_cert` and `tls_key` (the files rj's own connections
/// read, `store::tls_files`) and shared by the connections.
pub struct Dialer {
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl Dialer {
    pub fn new(cfg: &Config) -> anyhow::Result<Dialer> {
        let Addr::Tcp {
            host, tls: true, ..
        } = &cfg.target.addr
        else {
            return Ok(Dialer { tls: None });
        };
        let name = ServerName::try_from(host.clone()).map_err(|_| {
            fail(
                Kind::Config,
                format!(
                    "{host} ({}) is neither a host name nor an IP address TLS can check the \
                     server's certificate against",
                    cfg.source
                ),
            )
        })?;
        Ok(Dialer {
            tls: Some((tls_config(&cfg.target, cfg)?, name)),
        })
    }

    /// Connect, authenticate, select the database and PING; errors name the place and choose
    /// 69 (unreachable, or a TLS handshake refused over a certificate) or 77 (auth refused).
    pub fn connect(&self, cfg: &Config) -> anyhow::Result<Raw> {
        let t = &cfg.target;
        let unreachable = |e: io::Error| {
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
                        return Err(unreachable(
                            last.unwrap_or_else(|| io::Error::other("no address for the host")),
                        ))
                    }
                };
                // Small requests must leave at once, as hiredis does for redis-benchmark.
                s.set_nodelay(true).map_err(unreachable)?;
                s.set_read_timeout(Some(IO_TIMEOUT)).map_err(unreachable)?;
                match &self.tls {
                    None => Raw::Tcp(s),
                    Some((config, name)) => {
                        s.set_write_timeout(Some(IO_TIMEOUT)).map_err(unreachable)?;
                        let conn = ClientConnection::new(config.clone(), name.clone())
                            .map_err(|e| unreachable(io::Error::other(e)))?;
                        let mut tls = StreamOwned::new(conn, s);
                        // The handshake now, so that a certificate refused is said as such.
                        while tls.conn.is_handshaking() {
                            tls.conn
                                .complete_io(&mut tls.sock)
                                .map_err(|e| io_failure(cfg, "cannot connect to", e))?;
                        }
                        Raw::Tls(Box::new(tls))
                    }
                }
            }
            Addr::Unix(p) => {
                let s = UnixStream::connect(p).map_err(unreachable)?;
                s.set_read_timeout(Some(IO_TIMEOUT)).map_err(unreachable)?;
                Raw::Unix(s)
            }
        };
        handshake(&mut raw, t, cfg)?;
        Ok(raw)
    }
}

/// The rustls configuration of `t`: its `tls_ca` instead of the system's roots, as rj's own
/// connections do, and its client certificate when it has one.
fn tls_config(t: &Target, cfg: &Config) -> anyhow::Result<Arc<ClientConfig>> {
    let files = tls_files(t, &cfg.source)?;
    let unusable = || tls_files_unusable(&cfg.source);
    let mut roots = RootCertStore::empty();
    match &files.root_cert {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(cert.map_err(|_| unusable())?)
                    .map_err(|_| unusable())?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                if let Some(e) = found.errors.first() {
                    return Err(fail(
                        Kind::Config,
                        format!(
                            "cannot read the system's CA certificates for TLS to {} ({e}); \
                             name the server's CA in \"tls_ca\"",
                            cfg.place()
                        ),
                    ));
                }
            }
            // A malformed certificate among the system's is skipped, as rustls's users do.
            roots.add_parsable_certificates(found.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| unusable())?
        .with_root_certificates(roots);
    let config = match &files.client_tls {
        Some(c) => {
            let chain = CertificateDer::pem_slice_iter(&c.client_cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| unusable())?;
            let key = PrivateKeyDer::from_pem_slice(&c.client_key).map_err(|_| unusable())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|_| unusable())?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// An I/O error at connect: a TLS refusal (a certificate not trusted, none sent) is one line
/// with its hint, as rj's own connections say it, and fails the same way on every retry.
fn io_failure(cfg: &Config, what: &str, e: io::Error) -> anyhow::Error {
    if let Some(t) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return fail(
            Kind::Unavailable,
            format!("{what} Redis at {}: TLS: {}", cfg.place(), tls_why(t)),
        );
    }
    fail(
        Kind::Unavailable,
        format!("{what} Redis at {}: {e}", cfg.place()),
    )
}

/// Connect one client (see [`Dialer::connect`]).
pub fn connect(cfg: &Config) -> anyhow::Result<Raw> {
    Dialer::new(cfg)?.connect(cfg)
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
    // With TLS 1.3 a server that wants a client certificate says so after the handshake, at
    // the first reply.
    let io_err = |e: io::Error| io_failure(cfg, "cannot talk to", e);
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

/// Send one command on a connected blocking stream and read its whole reply (an error reply
/// is returned as it came, `-ERR …`), for the questions rbench asks before a run.
pub fn call(raw: &mut Raw, cfg: &Config, args: &[&[u8]]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    resp::encode(&mut out, args);
    let name = String::from_utf8_lossy(args.first().copied().unwrap_or(b"?")).into_owned();
    let io_err = |e: io::Error| io_failure(cfg, "cannot talk to", e);
    raw.io().write_all(&out).map_err(io_err)?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match resp::scan(&buf) {
            Ok(Some(s)) => {
                buf.truncate(s.len);
                return Ok(buf);
            }
            Ok(None) => {}
            Err(e) => {
                return Err(fail(
                    Kind::Unavailable,
                    format!("Redis at {} answered {name} with garbage: {e}", cfg.place()),
                ))
            }
        }
        let n = raw.io().read(&mut chunk).map_err(io_err)?;
        if n == 0 {
            return Err(fail(
                Kind::Unavailable,
                format!("Redis at {} closed the connection at {name}", cfg.place()),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Turn a handshaken blocking stream into a non-blocking mio stream.
pub fn into_mio(raw: Raw) -> io::Result<super::engine::Stream> {
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
        Raw::Tls(s) => {
            let StreamOwned { conn, sock } = *s;
            sock.set_read_timeout(None)?;
            sock.set_write_timeout(None)?;
            sock.set_nonblocking(true)?;
            Stream::Tls(Box::new(TlsStream {
                conn,
                sock: mio::net::TcpStream::from_std(sock),
            }))
        }
    })
}

/// A rustls client connection over a non-blocking socket, read and written the way the engine
/// reads and writes a plain socket (ARCHITECTURE.md §4, rbench).
pub struct TlsStream {
    conn: ClientConnection,
    pub(super) sock: mio::net::TcpStream,
}

impl TlsStream {
    /// Plaintext into `buf`. Fewer bytes than `buf` holds only once the socket would block (or
    /// is at its end), as a plain socket's short read: the engine's edge-triggered poll reads
    /// again only after a full buffer. Ciphertext is read only when no plaintext is left, so
    /// rustls's received-plaintext limit is never reached.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        loop {
            match self.conn.reader().read(&mut buf[got..]) {
                // close_notify: the end, after what came.
                Ok(0) => return Ok(got),
                Ok(n) => {
                    got += n;
                    if got == buf.len() {
                        return Ok(got);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) if got > 0 => return Ok(got),
                Err(e) => return Err(e),
            }
            match self.conn.read_tls(&mut self.sock) {
                Ok(0) => return Ok(got),
                Ok(_) => {
                    if let Err(e) = self.conn.process_new_packets() {
                        // Send the alert rustls queued; the connection is over either way.
                        let _ = self.push();
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return if got > 0 { Ok(got) } else { Err(e) };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Take plaintext and send its records. WouldBlock, with nothing taken, while records of
    /// an earlier write still wait for room; records this write leaves behind are sent by
    /// [`TlsStream::push`], which the engine calls once everything is taken.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push()?;
        let n = self.conn.writer().write(buf)?;
        match self.push() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(n),
        }
    }

    /// Send the records rustls holds; WouldBlock while the socket has no room for them.
    pub fn push(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Check that the server is reachable and accepts our credentials (before `wrap` starts a child
/// whose errors are less clear). A TLS server is left to redis-benchmark --tls, whose
/// certificates are its own (OpenSSL's trust store, its --cacert), not redis.json's.
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
    fn tls_is_spoken_by_the_engine_but_left_to_redis_benchmark() {
        // Port 1 on loopback: nothing listens, so only a skipped connect can succeed. The
        // engine tries TLS servers as any other (unreachable: 69), wrap's probe leaves them.
        let tls = config("rediss://127.0.0.1:1");
        let e = connect(&tls).err().unwrap();
        assert_eq!(crate::exit::code_for(&e), 69);
        assert!(e.to_string().contains("127.0.0.1:1 (from --url)"), "{e}");
        probe(&tls).unwrap();
        let plain = config("redis://127.0.0.1:1");
        let e = probe(&plain).unwrap_err();
        assert_eq!(crate::exit::code_for(&e), 69);
        assert!(e.to_string().contains("127.0.0.1:1 (from --url)"), "{e}");
    }
}
