//! rediss:// through rustls against a real TLS redis-server whose certificate a site CA signed
//! (redis.json "tls_ca"), one that also asks for a client certificate ("tls_cert", "tls_key"),
//! and the errors when the CA is not trusted, a file is not readable, or no certificate is sent.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::check::{self, fails, ok, run};
use crate::util::{self, TestEnv};

/// A redis-server with TLS only, on a free port; Drop kills and waits.
pub(crate) struct TlsRedis {
    child: Child,
    pub(crate) port: u16,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA and a server certificate for localhost/127.0.0.1 signed by it, in `dir`; and a client
/// certificate signed by it (`client.pem`, `client.key`).
pub(crate) fn make_certs(dir: &Path) {
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
    std::fs::write(dir.join("client-ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=rj-test-client",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.pem",
            "-days",
            "2",
            "-extfile",
            "client-ext",
        ],
    );
    // The same request signed without extensions: an X.509 v1 certificate, which rustls refuses.
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client-v1.pem",
            "-days",
            "2",
        ],
    );
}

/// A TLS-only redis-server; with `auth_clients` it refuses clients without a certificate the
/// CA signed (`tls-auth-clients yes`).
pub(crate) fn start(dir: &Path, auth_clients: bool) -> TlsRedis {
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
            .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients"])
            .arg(if auth_clients { "yes" } else { "no" })
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
                .arg("--cert")
                .arg(dir.join("client.pem"))
                .arg("--key")
                .arg(dir.join("client.key"))
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

pub(crate) fn env_for(port: u16, json: &str) -> TestEnv {
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
    let server = start(certs.path(), false);
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

/// The tools present "tls_cert"/"tls_key" to a server with `tls-auth-clients yes`; without them
/// the server's refusal is one permanent line naming the server; bad files are 78 naming the
/// file, never quoting the key; a key every user can read gets a warning.
#[test]
fn client_certificates_for_a_server_that_asks_for_them() {
    for tool in ["redis-server", "redis-cli", "openssl"] {
        if which::which(tool).is_err() {
            util::missing(tool);
            return;
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let server = start(certs.path(), true);
    let port = server.port;
    let with = |extra: &str| {
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
            std::fs::copy(certs.path().join(f), env.path().join(f)).unwrap();
        }
        let mode = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(env.path().join("client.key"), mode).unwrap();
        env
    };

    // With the certificate: recorded and read back, no warning.
    let env = with(r#", "tls_cert": "client.pem", "tls_key": "client.key""#);
    let out = run(env.cmd("rj-launch").args(["--record", "51"]));
    assert_eq!(ok(&out), "51\n");
    assert_eq!(check::stderr(&out), "", "no warning for a key of mode 0600");
    assert_eq!(
        ok(&run(env
            .cmd("rj-status")
            .args(["--count", "--state", "ALL", "--format", "plain"]))),
        "1\n"
    );
    // Under REDIS_URL=rediss://… the file's certificate is kept.
    let out = run(env
        .cmd("rj-status")
        .env("REDIS_URL", format!("rediss://localhost:{port}"))
        .args(["--count", "--state", "ALL", "--format", "plain"]));
    assert_eq!(ok(&out), "1\n");

    // A key readable by every user: a warning naming it, and the tool still works.
    std::fs::set_permissions(
        env.path().join("client.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = run(env.cmd("rj-status").args(["--count", "--format", "plain"]));
    ok(&out);
    let err = check::stderr(&out);
    assert!(
        err.contains("client.key") && err.contains("private key") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!err.contains("PRIVATE KEY-----"), "{err}");

    // Without a certificate the server ends the handshake: 69 naming it, permanent (rj-launch
    // spools the ID but says a retry will not do), one line.
    let bare = with("");
    let line = fails(&run(&mut bare.cmd("rj-status")), 69, "rj-status");
    assert!(line.contains(&format!("localhost:{port}")), "{line}");
    assert!(
        line.contains("CertificateRequired") && line.contains("\"tls_cert\""),
        "{line}"
    );
    let out = run(bare.cmd("rj-launch").args(["--record", "53"]));
    assert_eq!(
        check::stdout(&out),
        "53\n",
        "the ID is printed (and spooled)"
    );
    let line = fails(&out, 69, "rj-launch");
    assert!(line.contains("CertificateRequired"), "{line}");

    // Files that are not what they should be: 78, one line naming the field and the file, and
    // never any of the key's bytes.
    let key_text = std::fs::read_to_string(certs.path().join("client.key")).unwrap();
    let key_line = key_text.lines().nth(1).unwrap().to_string();
    for (extra, field, file) in [
        (r#", "tls_cert": "client.pem""#, "tls_cert", "tls_key"),
        (r#", "tls_key": "client.key""#, "tls_key", "tls_cert"),
        (
            r#", "tls_cert": "client.pem", "tls_key": "missing.key""#,
            "tls_key",
            "missing.key",
        ),
        (
            r#", "tls_cert": "/nonexistent/c.pem", "tls_key": "client.key""#,
            "tls_cert",
            "/nonexistent/c.pem",
        ),
        // The key where the certificate should be, and the other way round.
        (
            r#", "tls_cert": "client.key", "tls_key": "client.key""#,
            "tls_cert",
            "client.key",
        ),
        (
            r#", "tls_cert": "client.pem", "tls_key": "client.pem""#,
            "tls_key",
            "client.pem",
        ),
        (
            r#", "tls_cert": "client-v1.pem", "tls_key": "client.key""#,
            "tls_cert",
            "client-v1.pem",
        ),
        // The server's key with the client's certificate.
        (
            r#", "tls_cert": "client.pem", "tls_key": "srv.key""#,
            "tls_key",
            "srv.key",
        ),
    ] {
        let env = with(extra);
        for bin in ["rj-status", "rj-launch"] {
            let mut cmd = env.cmd(bin);
            if bin == "rj-launch" {
                cmd.args(["--record", "52"]);
            }
            let out = run(&mut cmd);
            let line = fails(&out, 78, bin);
            assert!(
                line.contains(&format!("field \"{field}\"")),
                "{extra}: {line}"
            );
            assert!(line.contains(file), "{extra}: {line}");
            assert!(line.contains("redis.json"), "{extra}: {line}");
            assert!(!line.contains(&key_line), "{extra}: {line}");
            assert!(!check::stdout(&out).contains(&key_line));
        }
    }
}
