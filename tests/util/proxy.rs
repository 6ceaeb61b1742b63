//! A TCP proxy in front of a real redis-server that drops one connection at a chosen moment:
//! after it has passed on a command but before the server's reply reaches the client. Real
//! Redis cannot be made to lose one reply on demand; this is the one fault it injects.
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct CutProxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
}

impl CutProxy {
    /// Forward 127.0.0.1:`port` to 127.0.0.1:`target`. The first time a client sends bytes that
    /// contain `marker`, they are passed on, the server is given `grace` to run the command, and
    /// that connection is closed both ways with the reply held back. Every other connection,
    /// and every later one, is forwarded untouched.
    pub fn start(target: u16, marker: &'static [u8], grace: Duration) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let armed = Arc::clone(&cut);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                connect(client, server, marker, grace, Arc::clone(&armed));
            }
        });
        CutProxy { port, cut }
    }

    /// Whether the connection was cut.
    pub fn cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

fn connect(
    client: TcpStream,
    server: TcpStream,
    marker: &'static [u8],
    grace: Duration,
    cut: Arc<AtomicBool>,
) {
    let holding = Arc::new(AtomicBool::new(false));
    // Server to client: stops passing bytes on once this connection is being cut.
    {
        let (mut from, mut to) = (server.try_clone().unwrap(), client.try_clone().unwrap());
        let holding = Arc::clone(&holding);
        std::thread::spawn(move || {
            let mut buf = [0u8; 64 * 1024];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                if holding.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Both);
        });
    }
    // Client to server: watches for the marker (also across two reads).
    std::thread::spawn(move || {
        let (mut from, mut to) = (client, server);
        let mut buf = [0u8; 64 * 1024];
        let mut tail: Vec<u8> = Vec::new();
        while let Ok(n @ 1..) = from.read(&mut buf) {
            tail.extend_from_slice(&buf[..n]);
            let hit =
                !cut.load(Ordering::SeqCst) && tail.windows(marker.len()).any(|w| w == marker);
            if hit && !cut.swap(true, Ordering::SeqCst) {
                holding.store(true, Ordering::SeqCst);
                let _ = to.write_all(&buf[..n]);
                std::thread::sleep(grace);
                break;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            let keep = tail.len().saturating_sub(marker.len());
            tail.drain(..keep);
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
