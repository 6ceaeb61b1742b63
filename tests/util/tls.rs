//! A TLS-only redis-server for the TLS tests, and the certificates it and its clients use: a
//! test CA, a server certificate for localhost/127.0.0.1 and client certificates it signed.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::TestEnv;

/// A redis-server with TLS only, on a free port, with the certificates of [`make_certs`] in
/// its own directory; Drop kills and waits, then removes the certificates.
pub struct TlsRedis {
    child: Child,
    pub port: u16,
    pub certs: tempfile::TempDir,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsRedis {
    /// New certificates and a server on them; with `auth_clients` it refuses clients without
    /// a certificate the CA signed (`tls-auth-clients yes`). None (after [`super::missing`],
    /// which fails under CI=true) when redis-server, redis-cli or openssl is absent.
    pub fn start(auth_clients: bool) -> Option<TlsRedis> {
        for tool in ["redis-server", "redis-cli"] {
            if which::which(tool).is_err() {
                super::missing(tool);
                return None;
            }
        }
        Some(start(TlsRedis::certs_only()?, auth_clients))
    }

    /// The test certificates alone, for servers a test starts itself (a TLS cluster); None as
    /// in [`TlsRedis::start`] when openssl is absent.
    pub fn certs_only() -> Option<tempfile::TempDir> {
        if which::which("openssl").is_err() {
            super::missing("openssl");
            return None;
        }
        let certs = tempfile::tempdir().unwrap();
        make_certs(certs.path());
        Some(certs)
    }

    /// The directory of the CA, server and client certificates and keys.
    pub fn certs(&self) -> &Path {
        self.certs.path()
    }

    /// A redis.json for this server by the name `localhost`, trusting the test CA
    /// (`"tls_ca": "ca.pem"`) and with `extra` fields (`, "tls_cert": …`), beside copies of
    /// the certificate files the tests name (the client's key of mode 0600, as it should be).
    pub fn env(&self, extra: &str) -> TestEnv {
        let port = self.port;
        let env = env_for(
            port,
            &format!(
                r#"{{"host": "localhost", "port": {port}, "tls": true, "tls_ca": "ca.pem"{extra}}}"#
            ),
        );
        for f in [
            "ca.pem",
            "client.pem",
            "client-v1.pem",
            "client.key",
            "srv.key",
        ] {
            std::fs::copy(self.certs().join(f), env.path().join(f)).unwrap();
        }
        super::set_mode(&env.path().join("client.key"), 0o600);
        env
    }

    /// redis-cli over TLS with the test CA and client certificate; stdout, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = cli_command(self.certs(), self.port)
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// redis-cli to the TLS port `port` with the CA and client certificate in `certs`.
fn cli_command(certs: &Path, port: u16) -> Command {
    let mut c = Command::new("redis-cli");
    c.args(["--tls", "--cacert"])
        .arg(certs.join("ca.pem"))
        .arg("--cert")
        .arg(certs.join("client.pem"))
        .arg("--key")
        .arg(certs.join("client.key"))
        .args(["-p", &port.to_string()]);
    c
}

/// Run openssl in `dir`; a failure shows its output.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A self-signed CA named `cn` in `dir`: `ca.key`, `ca.pem`.
pub fn new_ca(dir: &Path, cn: &str) {
    let subject = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", &subject,
        ],
    );
}

/// A new key `<name>.key` and a certificate request `<name>.csr` for `cn`, in `dir`.
fn new_request(dir: &Path, name: &str, cn: &str) {
    let (key, csr, subject) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("/CN={cn}"),
    );
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
            &subject,
        ],
    );
}

/// The request `csr` signed by the CA in `dir` into `out`, with the extensions in the file
/// `ext`; without one the certificate is an X.509 v1 certificate.
fn sign(dir: &Path, csr: &str, out: &str, ext: Option<&str>) {
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        out,
        "-days",
        "2",
    ];
    if let Some(ext) = ext {
        args.extend(["-extfile", ext]);
    }
    openssl(dir, &args);
}

/// A CA and a server certificate for localhost/127.0.0.1 signed by it, in `dir` (`srv.pem`,
/// `srv.key`); and a client certificate signed by it (`client.pem`, `client.key`).
fn make_certs(dir: &Path) {
    new_ca(dir, "rj-test-ca");
    new_request(dir, "srv", "localhost");
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    sign(dir, "srv.csr", "srv.pem", Some("ext"));
    std::fs::write(dir.join("client-ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    new_request(dir, "client", "rj-test-client");
    sign(dir, "client.csr", "client.pem", Some("client-ext"));
    // The same request signed without extensions: an X.509 v1 certificate, which rustls refuses.
    sign(dir, "client.csr", "client-v1.pem", None);
}

/// A TLS-only redis-server on the certificates in `certs`, on a free port (tried again when
/// another process took the port first).
fn start(certs: tempfile::TempDir, auth_clients: bool) -> TlsRedis {
    let dir = certs.path();
    for _ in 0..5 {
        let port = super::free_port();
        let mut child = Command::new("redis-server")
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
            .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients"])
            .arg(if auth_clients { "yes" } else { "no" })
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let ready = || {
            cli_command(dir, port)
                .arg("PING")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
        };
        for _ in 0..100 {
            if ready() {
                return TlsRedis { child, port, certs };
            }
            if let Ok(Some(_)) = child.try_wait() {
                break; // port taken
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("could not start a TLS redis-server");
}

/// A TestEnv whose redis.json is `json` (for the TLS server on `port`), in a new temp dir.
pub fn env_for(port: u16, json: &str) -> TestEnv {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("redis.json");
    std::fs::write(&config, json).unwrap();
    TestEnv {
        dir,
        tag: super::unique_tag("tls"),
        config,
        port,
    }
}
