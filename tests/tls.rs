//! rediss:// through rustls against a real TLS redis-server whose certificate a site CA signed
//! (redis.json "tls_ca"), one that also asks for a client certificate ("tls_cert", "tls_key"),
//! and the errors when the CA is not trusted, a file is not readable, or no certificate is sent.
use crate::util::check::{self, fails, ok, run};
use crate::util::tls::{env_for, TlsRedis};

#[test]
fn rediss_with_a_site_ca_records_and_reads() {
    let Some(server) = TlsRedis::start(false) else {
        return;
    };
    let port = server.port;

    // tls_ca relative to redis.json's directory.
    let env = env_for(
        port,
        &format!(r#"{{"host": "localhost", "port": {port}, "tls": true, "tls_ca": "ca.pem"}}"#),
    );
    std::fs::copy(server.certs().join("ca.pem"), env.path().join("ca.pem")).unwrap();
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
    use std::os::unix::fs::PermissionsExt;
    let Some(server) = TlsRedis::start(true) else {
        return;
    };
    let port = server.port;

    // With the certificate: recorded and read back, no warning.
    let env = server.env(r#", "tls_cert": "client.pem", "tls_key": "client.key""#);
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
    let bare = server.env("");
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
    let key_text = std::fs::read_to_string(server.certs().join("client.key")).unwrap();
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
        let env = server.env(extra);
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
