//! rediss:// through rustls against a real TLS redis-server whose certificate a site CA signed
//! (redis.json "tls_ca"), and the errors when the CA is not trusted or not readable.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::check::run;
use crate::util::{self, TestEnv};

/// A redis-server with TLS only, on a free port; Drop kills and waits.
struct TlsRedis {
    child: Child,
    port: u16,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA and a server certificate for localhost/127.0.0.1 signed by it, in `dir`.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=rj-test-ca",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
}

fn start(dir: &Path) -> TlsRedis {
    for _ in 0..5 {
        let port = util::free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .args(["--tls-port", &port.to_string()])
            .args(["--tls-cert-file", "srv.pem", "--tls-key-file", "srv.key"])
            .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let mut server = TlsRedis { child, port };
        let ready = || {
            Command::new("redis-cli")
                .args(["--tls", "--cacert"])
                .arg(dir.join("ca.pem"))
                .args(["-p", &port.to_string(), "PING"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
        };
        for _ in 0..100 {
            if ready() {
                return server;
            }
            if let Ok(Some(_)) = server.child.try_wait() {
                break; // port taken
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = server.child.kill();
    }
    panic!("could not start a TLS redis-server");
}

fn env_for(port: u16, json: &str) -> TestEnv {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("redis.json");
    std::fs::write(&config, json).unwrap();
    TestEnv {
        dir,
        tag: util::unique_tag("tls"),
        config,
        port,
    }
}

#[test]
fn rediss_with_a_site_ca_records_and_reads() {
    for tool in ["redis-server", "redis-cli", "openssl"] {
        if which::which(tool).is_err() {
            util::missing(tool);
            return;
        }
    }
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let server = start(certs.path());
    let port = server.port;

    // tls_ca relative to redis.json's directory.
    let env = env_for(
        port,
        &format!(r#"{{"host": "localhost", "port": {port}, "tls": true, "tls_ca": "ca.pem"}}"#),
    );
    std::fs::copy(certs.path().join("ca.pem"), env.path().join("ca.pem")).unwrap();
    assert_eq!(
        env.run("rj-launch", &["--record", "41", "42"]).ok(),
        "41\n42\n"
    );
    assert_eq!(
        env.run(
            "rj-status",
            &["--state", "PENDING_AND_RUNNING", "--format", "plain"]
        )
        .ok(),
        "41\n42\n"
    );
    // The same server through REDIS_URL=rediss://…, keeping the file's CA.
    let out = run(env
        .cmd("rj-status")
        .env("REDIS_URL", format!("rediss://127.0.0.1:{port}"))
        .args(["--count", "--state", "ALL", "--format", "plain"]));
    assert_eq!(out.ok(), "2\n");

    // Without the CA the system's roots do not know the server: 69, naming the server.
    let untrusted = env_for(
        port,
        &format!(r#"{{"host": "localhost", "port": {port}, "tls": true}}"#),
    );
    let line = untrusted.run("rj-status", &[]).fails(69);
    assert!(line.contains(&format!("localhost:{port}")), "{line}");

    // A CA file that is not there is a configuration error naming it.
    let missing = env_for(
        port,
        &format!(
            r#"{{"host": "localhost", "port": {port}, "tls": true, "tls_ca": "/nonexistent/ca.pem"}}"#
        ),
    );
    let line = missing.run("rj-status", &[]).fails(78);
    assert!(line.contains("/nonexistent/ca.pem"), "{line}");
}
