//! redis.json + environment → [`Config`]: where Redis is, how to log in, and the default tag.
//! What rj cannot use as written (data after the object, port 0, a `tls_ca` without a
//! certificate, Sentinel or Cluster settings) is refused here as a configuration error, before
//! any connection, so that it is never mistaken for an unreachable server.
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::exit::{fail, Kind};
use crate::keys::Tag;

/// The redis.json fields rj understands; unknown fields (`"__info__"`) are ignored, except those
/// of a Sentinel or Cluster setup, which rj cannot follow and must not silently replace by
/// 127.0.0.1. `Debug` hides the password and the URL (which may hold one).
#[derive(Default, Deserialize)]
pub struct RawConfig {
    /// Without brackets: `"[::1]"` is read as `::1`, the form a socket address lookup takes.
    #[serde(default, deserialize_with = "host")]
    pub host: Option<String>,
    #[serde(default, deserialize_with = "port")]
    pub port: Option<u16>,
    pub namespace: Option<String>,
    pub password: Option<String>,
    pub username: Option<String>,
    pub db: Option<i64>,
    pub tls: Option<bool>,
    /// PEM file of the CA that signed the server's certificate, when it is not in the system's
    /// trust store (a site CA); relative to the redis.json's directory.
    pub tls_ca: Option<PathBuf>,
    pub url: Option<String>,
    pub job_tag: Option<String>,
    #[serde(default, rename = "sentinels", deserialize_with = "sentinel")]
    _sentinels: (),
    #[serde(default, rename = "sentinel", deserialize_with = "sentinel")]
    _sentinel: (),
    #[serde(default, rename = "master", deserialize_with = "sentinel")]
    _master: (),
    #[serde(default, rename = "master_name", deserialize_with = "sentinel")]
    _master_name: (),
    #[serde(default, rename = "cluster", deserialize_with = "cluster")]
    _cluster: (),
    #[serde(default, rename = "cluster_nodes", deserialize_with = "cluster")]
    _cluster_nodes: (),
    #[serde(default, rename = "startup_nodes", deserialize_with = "cluster")]
    _startup_nodes: (),
}

const SENTINEL: &str = "Redis Sentinel is not supported yet; point rj at the current master: \
     its \"host\" and \"port\" or a redis://host:port URL (`SENTINEL get-master-addr-by-name NAME` \
     on a sentinel shows it)";
const CLUSTER: &str = "Redis Cluster is not supported yet; point rj at a standalone Redis server \
     or a master with replicas: its \"host\" and \"port\" or a redis://host:port URL";

fn host<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(h) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if !h.starts_with('[') && !h.ends_with(']') {
        return Ok(Some(h));
    }
    // A zone (`fe80::1%eth0`) is not part of the address proper; getaddrinfo takes it.
    match h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(inner)
            if inner
                .split('%')
                .next()
                .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok()) =>
        {
            Ok(Some(inner.to_string()))
        }
        _ => Err(D::Error::custom(format!(
            "{h:?}: brackets belong only around an IPv6 address (\"[::1]\" or \"::1\")"
        ))),
    }
}

fn port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    Ok(Option::<Port>::deserialize(d)?.map(|p| p.0))
}

/// A TCP port, 1 to 65535. Refused inside the number's visitor, so that the error's line and
/// column are the number's, not those of whatever follows it.
struct Port(u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Port, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port from 1 to 65535")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Port, E> {
                match u16::try_from(v) {
                    Ok(p) if p > 0 => Ok(Port(p)),
                    _ => Err(E::custom(format!(
                        "{v} is not a port (expected 1 to 65535)"
                    ))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Port, E> {
                Err(E::custom(format!(
                    "{v} is not a port (expected 1 to 65535)"
                )))
            }
        }
        d.deserialize_u16(V)
    }
}

/// Refuse a field unless its value turns the feature off (`false`, `null`, empty).
fn unsupported<'de, D: Deserializer<'de>>(d: D, why: &str) -> Result<(), D::Error> {
    use serde_json::Value;
    let off = match Value::deserialize(d)? {
        Value::Null | Value::Bool(false) => true,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(true) => false,
    };
    if off {
        Ok(())
    } else {
        Err(D::Error::custom(why))
    }
}

fn sentinel<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    unsupported(d, SENTINEL)
}

fn cluster<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    unsupported(d, CLUSTER)
}

impl fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |o: &Option<String>| o.as_ref().map(|_| "***");
        f.debug_struct("RawConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("namespace", &self.namespace)
            .field("password", &hidden(&self.password))
            .field("username", &self.username)
            .field("db", &self.db)
            .field("tls", &self.tls)
            .field("tls_ca", &self.tls_ca)
            .field("url", &hidden(&self.url))
            .field("job_tag", &self.job_tag)
            .finish()
    }
}

/// Where a Redis server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Tcp { host: String, port: u16, tls: bool },
    Unix(PathBuf),
}

/// Everything needed to open a connection. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: Addr,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
    /// CA certificate (PEM) to trust for TLS instead of the system's roots.
    pub tls_ca: Option<PathBuf>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls_ca", &self.tls_ca)
            .finish()
    }
}

impl Default for Target {
    fn default() -> Target {
        Target {
            addr: Addr::Tcp {
                host: "127.0.0.1".into(),
                port: 6379,
                tls: false,
            },
            db: 0,
            username: None,
            password: None,
            tls_ca: None,
        }
    }
}

impl fmt::Display for Target {
    /// `host:port` or `unix:/path`: safe for messages, never holds the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.addr {
            Addr::Tcp { host, port, .. } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Addr::Tcp { host, port, .. } => write!(f, "{host}:{port}"),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Where the connection settings came from, for messages (`… (from ./redis.json)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    UrlOption,
    UrlEnv,
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "from {}", p.display()),
            Source::UrlOption => f.write_str("from --url"),
            Source::UrlEnv => f.write_str("from REDIS_URL"),
            Source::Default => f.write_str("the default; no redis.json found"),
        }
    }
}

/// What the user asked for on the command line.
#[derive(Debug, Default, Clone)]
pub struct Request {
    pub config: Option<PathBuf>,
    pub url: Option<String>,
}

/// A source of environment variables, so that tests need not touch the process environment.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for std::collections::HashMap<&str, &str> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    pub source: Source,
    /// The redis.json that was read, absolute, if any (passed to jobs as `RJ_CONFIG`).
    pub file: Option<PathBuf>,
    pub job_tag: Option<String>,
    pub namespace: Option<String>,
    /// Non-fatal findings (a world-readable file with a password); the caller prints them.
    pub warnings: Vec<String>,
}

impl Config {
    /// `host:port (from …)`: where rj connects and why, for messages; never the password.
    pub fn place(&self) -> String {
        format!("{} ({})", self.target, self.source)
    }

    /// Resolve the tag: `--tag`, then `$JOB_TAG`, then `$job_tag`, then redis.json `job_tag`.
    pub fn tag(&self, option: Option<&str>, env: &dyn Env) -> anyhow::Result<Tag> {
        let (value, from) = if let Some(t) = option {
            (t.to_string(), "--tag".to_string())
        } else if let Some(t) = env.var("JOB_TAG") {
            (t, "JOB_TAG".to_string())
        } else if let Some(t) = env.var("job_tag") {
            (t, "job_tag".to_string())
        } else if let Some(t) = &self.job_tag {
            let f = self.file.as_deref().unwrap_or(Path::new("redis.json"));
            (t.clone(), format!("\"job_tag\" in {}", f.display()))
        } else {
            return Err(fail(
                Kind::Config,
                "no job tag: pass --tag TAG, export JOB_TAG=TAG, or set \"job_tag\" in redis.json",
            ));
        };
        Tag::new(&value).with_context(|| format!("tag from {from}"))
    }
}

/// The redis.json search path: `--config`, `$RJ_CONFIG`, `./redis.json`,
/// `$XDG_CONFIG_HOME/rj/redis.json` (`~/.config/rj/redis.json`).
pub fn find_file(req: &Request, env: &dyn Env) -> anyhow::Result<Option<PathBuf>> {
    if let Some(p) = &req.config {
        return Ok(Some(p.clone()));
    }
    if let Some(p) = env.var("RJ_CONFIG") {
        return Ok(Some(PathBuf::from(p)));
    }
    let local = PathBuf::from("redis.json");
    if local.is_file() {
        return Ok(Some(local));
    }
    if let Some(p) = xdg_dir(env, "XDG_CONFIG_HOME", ".config").map(|d| d.join("rj/redis.json")) {
        if p.is_file() {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// `$VAR` or `$HOME/<fallback>`.
pub fn xdg_dir(env: &dyn Env, var: &str, fallback: &str) -> Option<PathBuf> {
    env.var(var)
        .map(PathBuf::from)
        .or_else(|| env.var("HOME").map(|h| Path::new(&h).join(fallback)))
}

/// Parse redis.json text; errors name the file, the field and the line/column.
pub fn parse(text: &str, path: &Path) -> anyhow::Result<RawConfig> {
    // Windows editors (Notepad) save UTF-8 with a byte-order mark; JSON forbids one, but a
    // file that looks right in every editor should work rather than fail at "line 1 column 1".
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut de = serde_json::Deserializer::from_str(text);
    let raw = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        // A syntax error has no field (serde_path_to_error says "?" for the key being read).
        let what = if inner.is_syntax() || inner.is_eof() || field == "." || field.is_empty() {
            String::new()
        } else {
            format!(" field \"{field}\":")
        };
        fail(
            Kind::Config,
            format!("invalid config {}:{what} {inner}", path.display()),
        )
    })?;
    // Deserializing stops after the first value: without this a second object or garbage
    // after the closing brace would pass unread (and a half-merged file look valid).
    de.end().map_err(|e| {
        fail(
            Kind::Config,
            format!(
                "invalid config {}: data after the JSON object: {e}",
                path.display()
            ),
        )
    })?;
    Ok(raw)
}

/// Check that a `tls_ca` file holds CA certificates rustls accepts, so that a wrong file (a
/// key, notes, an empty file) is reported as the configuration's fault before any connection,
/// not as an unreachable server. The reason never quotes the file's bytes (it may be a key).
fn check_ca(ca: &Path) -> Result<(), String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let pem = std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|_| format!("{} holds a malformed PEM section", ca.display()))?;
        roots.add(cert).map_err(|_| {
            format!(
                "{} holds a CERTIFICATE block that is not an X.509 certificate",
                ca.display()
            )
        })?;
    }
    if roots.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            ca.display()
        ));
    }
    Ok(())
}

/// Load the configuration: the file (if any), then `REDIS_URL`/`--url` on top.
pub fn load(req: &Request, env: &dyn Env) -> anyhow::Result<Config> {
    let file = find_file(req, env)?;
    let (raw, mut warnings) = match &file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                fail(
                    Kind::Config,
                    format!("cannot read config {}: {e}", p.display()),
                )
            })?;
            let raw = parse(&text, p)?;
            let mut w = Vec::new();
            // The password may also sit in the file's "url" (redis://:pw@host).
            let url_pw = raw
                .url
                .as_deref()
                .and_then(|u| parse_url(u).ok())
                .is_some_and(|t| t.password.is_some());
            if (raw.password.is_some() || url_pw) && world_readable(p) {
                w.push(format!(
                    "{} holds a password and is readable by every user; run: chmod 600 {}",
                    p.display(),
                    p.display()
                ));
            }
            (raw, w)
        }
        None => (RawConfig::default(), Vec::new()),
    };
    let abs = file
        .as_ref()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    let mut source = match &abs {
        Some(p) => Source::File(file.clone().unwrap_or_else(|| p.clone())),
        None => Source::Default,
    };

    let mut target = Target::default();
    if let Addr::Tcp { host, port, tls } = &mut target.addr {
        if let Some(h) = &raw.host {
            *host = h.clone();
        }
        if let Some(p) = raw.port {
            *port = p;
        }
        *tls = raw.tls.unwrap_or(false);
    }
    target.db = raw.db.unwrap_or(0);
    target.username = raw.username.clone();
    target.password = raw.password.clone();
    target.tls_ca = match (&raw.tls_ca, &abs) {
        (Some(ca), Some(file)) if ca.is_relative() => {
            Some(file.parent().unwrap_or(Path::new("/")).join(ca))
        }
        (ca, _) => ca.clone(),
    };

    let url = if let Some(u) = &req.url {
        Some((u.clone(), Source::UrlOption))
    } else if let Some(u) = env.var("REDIS_URL") {
        Some((u, Source::UrlEnv))
    } else {
        raw.url.clone().map(|u| (u, source.clone()))
    };
    if let Some((u, from)) = url {
        let t = parse_url(&u).with_context(|| match &from {
            Source::File(p) => format!("invalid config {}: field \"url\"", p.display()),
            _ => format!("Redis URL ({from})"),
        })?;
        // A URL without credentials keeps the file's, as redis-cli keeps REDISCLI_AUTH.
        target = Target {
            username: t.username.or(target.username),
            password: t.password.or(target.password),
            tls_ca: target.tls_ca,
            ..t
        };
        source = from;
    }
    // Only a TLS connection reads the CA, so only then is a wrong file an error.
    if let (Addr::Tcp { tls: true, .. }, Some(ca)) = (&target.addr, &target.tls_ca) {
        check_ca(ca).map_err(|why| {
            let f = file.as_deref().unwrap_or(Path::new("redis.json"));
            fail(
                Kind::Config,
                format!("invalid config {}: field \"tls_ca\": {why}", f.display()),
            )
        })?;
    }
    if target.password.is_none() {
        if let Some(p) = env.var("REDISCLI_AUTH") {
            target.password = Some(p);
        }
    }
    warnings.shrink_to_fit();
    Ok(Config {
        target,
        source,
        file: abs,
        job_tag: raw.job_tag,
        namespace: raw.namespace,
        warnings,
    })
}

fn world_readable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

/// Parse `redis://[user[:pass]@]host[:port][/db]`, `rediss://…`, `unix:///path[?db=N]`.
/// Errors never repeat the URL, which may hold a password.
pub fn parse_url(url: &str) -> anyhow::Result<Target> {
    use redis::IntoConnectionInfo;
    let bad = || {
        fail(
            Kind::Config,
            "not a valid Redis URL (expected redis://host:port/db, rediss://… or unix:///path)",
        )
    };
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    if scheme.contains("sentinel") {
        return Err(fail(Kind::Config, SENTINEL));
    }
    if scheme.contains("cluster") {
        return Err(fail(Kind::Config, CLUSTER));
    }
    let info = url.into_connection_info().map_err(|_| bad())?;
    let addr = match info.addr() {
        redis::ConnectionAddr::Tcp(h, p) => Addr::Tcp {
            host: h.clone(),
            port: *p,
            tls: false,
        },
        redis::ConnectionAddr::TcpTls { host, port, .. } => Addr::Tcp {
            host: host.clone(),
            port: *port,
            tls: true,
        },
        redis::ConnectionAddr::Unix(p) => Addr::Unix(p.clone()),
        _ => return Err(bad()),
    };
    if let Addr::Tcp { port: 0, .. } = addr {
        return Err(fail(
            Kind::Config,
            "port 0 is not a port (expected 1 to 65535)",
        ));
    }
    let r = info.redis_settings();
    if r.db() < 0 {
        return Err(fail(
            Kind::Config,
            "the database number in the Redis URL is negative",
        ));
    }
    Ok(Target {
        addr,
        db: r.db(),
        username: r.username().map(str::to_string),
        password: r.password().map(str::to_string),
        tls_ca: None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("redis.json");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn original_file_with_info_field_is_read() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            r#"{"__info__": "x", "host": "app-test", "port": 6378, "namespace": "rlmol"}"#,
        );
        let req = Request {
            config: Some(p.clone()),
            url: None,
        };
        let c = load(&req, &env(&[])).unwrap();
        assert_eq!(c.target.to_string(), "app-test:6378");
        assert_eq!(c.namespace.as_deref(), Some("rlmol"));
        assert_eq!(c.source, Source::File(p));
    }

    #[test]
    fn wrong_type_names_file_field_and_position() {
        let e = parse("{\n  \"port\": \"6378\"\n}", Path::new("/x/redis.json")).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("/x/redis.json"), "{msg}");
        assert!(msg.contains("\"port\""), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        assert_eq!(crate::exit::code_for(&e), 78);
    }

    #[test]
    fn malformed_json_is_config_error() {
        let e = parse("{\"host\": ", Path::new("r.json")).unwrap_err();
        assert_eq!(crate::exit::code_for(&e), 78);
        assert!(format!("{e:#}").contains("r.json"));
    }

    #[test]
    fn url_overrides_file_and_env_order() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            r#"{"host": "h", "port": 1, "password": "filepw", "db": 3}"#,
        );
        let req = Request {
            config: Some(p),
            url: None,
        };
        let c = load(&req, &env(&[("REDIS_URL", "redis://other:7000/5")])).unwrap();
        assert_eq!(c.target.to_string(), "other:7000");
        assert_eq!(c.target.db, 5);
        assert_eq!(c.target.password.as_deref(), Some("filepw"));
        assert_eq!(c.source, Source::UrlEnv);
        let req2 = Request {
            url: Some("rediss://u:pw@tls-host:6380".into()),
            ..req
        };
        let c = load(&req2, &env(&[("REDIS_URL", "redis://other:7000/5")])).unwrap();
        assert_eq!(
            c.target.addr,
            Addr::Tcp {
                host: "tls-host".into(),
                port: 6380,
                tls: true
            }
        );
        assert_eq!(c.target.username.as_deref(), Some("u"));
        assert_eq!(c.target.password.as_deref(), Some("pw"));
        assert_eq!(c.source, Source::UrlOption);
    }

    /// A self-signed CA certificate (ed25519, valid until 2126), made by
    /// `openssl req -x509 -newkey ed25519 -nodes -days 36500 -subj /CN=rj-unit-test-ca`.
    pub(crate) const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBSjCB/aADAgECAhQ1UsAVk2GDzpbNuYcPEFp3m/MjKjAFBgMrZXAwGjEYMBYG\n\
A1UEAwwPcmotdW5pdC10ZXN0LWNhMCAXDTI2MTIwMjAyMzUzOVoYDzIxMjYxMTA4\n\
MDIzNTM5WjAaMRgwFgYDVQQDDA9yai11bml0LXRlc3QtY2EwKjAFBgMrZXADIQDl\n\
Sc4Srx2eaoc82LisI/Gp3lM+Ab/Fca2XF6CcnLjGrKNTMFEwHQYDVR0OBBYEFElh\n\
Z6muWI7I16MAOdbE7YWoIbrTMB8GA1UdIwQYMBaAFElhZ6muWI7I16MAOdbE7YWo\n\
IbrTMA8GA1UdEwEB/wQFMAMBAf8wBQYDK2VwA0EAcxhZOj0FnvGRKjhNv0YbT9ee\n\
Yok4qtK2yrNGmwfC+PRxLgRlGDFXZg77RNElvz4VkFJYTunE/c5VjYO3YxmkAg==\n\
-----END CERTIFICATE-----\n\
";

    #[test]
    fn tls_ca_is_relative_to_the_config_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("certs")).unwrap();
        std::fs::write(d.path().join("certs/ca.pem"), TEST_CA).unwrap();
        let p = write(d.path(), r#"{"tls": true, "tls_ca": "certs/ca.pem"}"#);
        let req = Request {
            config: Some(p),
            url: Some("rediss://h:1".into()),
        };
        let c = load(&req, &env(&[])).unwrap();
        let want = std::path::absolute(d.path()).unwrap().join("certs/ca.pem");
        assert_eq!(c.target.tls_ca, Some(want), "kept under a URL too");
    }

    #[test]
    fn unix_url() {
        let t = parse_url("unix:///run/redis.sock?db=2").unwrap();
        assert_eq!(t.addr, Addr::Unix("/run/redis.sock".into()));
        assert_eq!(t.db, 2);
    }

    #[test]
    fn negative_database_in_url_is_a_config_error() {
        // Found by fuzz/fuzz_targets/url.rs: the server would only refuse SELECT -1 later.
        for url in [
            "redis://h/-1",
            "redis://:pw@h:6380/-3",
            "unix:///run/redis.sock?db=-1",
        ] {
            let e = parse_url(url).unwrap_err();
            assert_eq!(crate::exit::code_for(&e), 78, "{url}");
            let msg = format!("{e:#}");
            assert!(msg.contains("database"), "{msg}");
            assert!(!msg.contains("pw"), "{msg}");
        }
        assert_eq!(parse_url("redis://h/0").unwrap().db, 0);
    }

    #[test]
    fn bad_url_error_hides_password() {
        let e = parse_url("http://u:secretpw@h").unwrap_err();
        let msg = format!("{e:#}");
        assert!(!msg.contains("secretpw"), "{msg}");
        assert_eq!(crate::exit::code_for(&e), 78);
    }

    #[test]
    fn no_file_means_default_target() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().to_str().unwrap().to_string();
        let home: &'static str = Box::leak(home.into_boxed_str());
        let c = load(&Request::default(), &env(&[("HOME", home)])).unwrap();
        assert_eq!(c.target.to_string(), "127.0.0.1:6379");
        assert_eq!(c.source, Source::Default);
    }

    #[test]
    fn tag_resolution_order() {
        let c = Config {
            target: Target::default(),
            source: Source::Default,
            file: None,
            job_tag: Some("fromfile".into()),
            namespace: None,
            warnings: vec![],
        };
        let both = env(&[("JOB_TAG", "upper"), ("job_tag", "lower")]);
        assert_eq!(c.tag(Some("opt"), &both).unwrap().as_str(), "opt");
        assert_eq!(c.tag(None, &both).unwrap().as_str(), "upper");
        assert_eq!(
            c.tag(None, &env(&[("job_tag", "lower")])).unwrap().as_str(),
            "lower"
        );
        assert_eq!(c.tag(None, &env(&[])).unwrap().as_str(), "fromfile");
        let none = Config {
            job_tag: None,
            ..c.clone()
        };
        let e = none.tag(None, &env(&[])).unwrap_err();
        assert_eq!(crate::exit::code_for(&e), 78);
        assert!(format!("{e:#}").contains("JOB_TAG"));
        let e = c.tag(Some("a b"), &env(&[])).unwrap_err();
        assert!(format!("{e:#}").contains("--tag"), "{e:#}");
    }

    #[test]
    fn world_readable_password_warns() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), r#"{"password": "s3cret-file-pw"}"#);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let req = Request {
            config: Some(p.clone()),
            url: None,
        };
        let c = load(&req, &env(&[])).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("chmod 600"), "{}", c.warnings[0]);
        assert!(
            !c.warnings[0].contains("s3cret-file-pw"),
            "{}",
            c.warnings[0]
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load(&req, &env(&[])).unwrap().warnings.is_empty());
    }

    #[test]
    fn world_readable_password_in_file_url_warns() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), r#"{"url": "redis://:urlpw@h:1"}"#);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let req = Request {
            config: Some(p.clone()),
            url: None,
        };
        let c = load(&req, &env(&[])).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(!c.warnings[0].contains("urlpw"));
        assert_eq!(c.target.password.as_deref(), Some("urlpw"));
        std::fs::write(&p, r#"{"url": "redis://h:1"}"#).unwrap();
        assert!(load(&req, &env(&[])).unwrap().warnings.is_empty());
    }

    fn load_file(text: &str) -> anyhow::Result<Config> {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), text);
        let req = Request {
            config: Some(p),
            url: None,
        };
        load(&req, &env(&[]))
    }

    /// The message of a configuration error (exit 78), asserted to be one.
    fn config_error<T: fmt::Debug>(r: anyhow::Result<T>) -> String {
        let e = r.unwrap_err();
        assert_eq!(crate::exit::code_for(&e), 78, "{e:#}");
        let msg = format!("{e:#}");
        assert!(!msg.contains('\n'), "one line: {msg}");
        msg
    }

    #[test]
    fn trailing_data_after_the_object_is_refused() {
        for text in [
            "{\"host\": \"h\"} {\"port\": 1}",
            "{\"host\": \"h\"}\ngarbage",
            "{\"host\": \"h\"}}",
        ] {
            let msg = config_error(parse(text, Path::new("/x/redis.json")));
            assert!(msg.contains("/x/redis.json"), "{msg}");
            assert!(msg.contains("trailing"), "{msg}");
            assert!(msg.contains("line ") && msg.contains("column "), "{msg}");
            assert!(
                !msg.contains("field"),
                "a syntax error names no field: {msg}"
            );
        }
        // Whitespace after the object is not data.
        let raw = parse("{\"port\": 6380}\n\n  \t\n", Path::new("r.json")).unwrap();
        assert_eq!(raw.port, Some(6380));
    }

    #[test]
    fn a_leading_byte_order_mark_is_skipped() {
        let raw = parse("\u{feff}{\"port\": 6380}\n", Path::new("r.json")).unwrap();
        assert_eq!(raw.port, Some(6380));
        // Only at the start: a BOM elsewhere is still an error.
        config_error(parse("{\"port\": 6380}\u{feff}", Path::new("r.json")));
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("redis.json");
        std::fs::write(
            &p,
            b"\xef\xbb\xbf{\"host\": \"bom-host\", \"port\": 6381}\r\n",
        )
        .unwrap();
        let req = Request {
            config: Some(p),
            url: None,
        };
        let c = load(&req, &env(&[])).unwrap();
        assert_eq!(c.target.to_string(), "bom-host:6381");
    }

    #[test]
    fn port_zero_is_refused_naming_the_field() {
        let msg = config_error(parse("{\n  \"port\": 0\n}", Path::new("/x/redis.json")));
        assert!(msg.contains("/x/redis.json"), "{msg}");
        assert!(msg.contains("field \"port\""), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        let msg = config_error(parse_url("redis://:pw0@h:0/1"));
        assert!(msg.contains("port 0"), "{msg}");
        assert!(!msg.contains("pw0"), "{msg}");
        config_error(parse_url("rediss://h:0"));
        let msg = config_error(load(
            &Request::default(),
            &env(&[("REDIS_URL", "redis://h:0"), ("HOME", "/nonexistent")]),
        ));
        assert!(msg.contains("REDIS_URL") && msg.contains("port 0"), "{msg}");
        let msg = config_error(load_file(r#"{"url": "redis://h:0"}"#));
        assert!(
            msg.contains("\"url\"") && msg.contains("redis.json"),
            "{msg}"
        );
        // The ordinary ports still are ports.
        assert_eq!(parse_url("redis://h:1").unwrap().to_string(), "h:1");
        assert_eq!(parse_url("redis://h").unwrap().to_string(), "h:6379");
    }

    #[test]
    fn ipv6_hosts_are_shown_in_brackets_once() {
        for host in ["[::1]", "::1"] {
            let c = load_file(&format!(r#"{{"host": "{host}", "port": 6390}}"#)).unwrap();
            assert_eq!(c.target.to_string(), "[::1]:6390", "host {host}");
            assert_eq!(
                c.target.addr,
                Addr::Tcp {
                    host: "::1".into(),
                    port: 6390,
                    tls: false
                },
                "the host rj connects to has no brackets"
            );
        }
        assert_eq!(
            parse_url("redis://[::1]:6379").unwrap().to_string(),
            "[::1]:6379"
        );
        assert_eq!(
            parse_url("rediss://[fd00::2]").unwrap().to_string(),
            "[fd00::2]:6379"
        );
        let msg = config_error(load_file(r#"{"host": "[not-v6]"}"#));
        assert!(
            msg.contains("field \"host\"") && msg.contains("IPv6"),
            "{msg}"
        );
    }

    #[test]
    fn sentinel_and_cluster_urls_say_not_supported() {
        for url in [
            "redis-sentinel://:pw9@s1:26379/mymaster",
            "redis+sentinel://s1:26379,s2:26379/mymaster",
            "rediss+sentinel://s1:26379/mymaster",
        ] {
            let msg = config_error(parse_url(url));
            assert!(msg.contains("Sentinel is not supported yet"), "{msg}");
            assert!(msg.contains("master"), "{msg}");
            assert!(!msg.contains("pw9"), "{msg}");
        }
        for url in ["redis-cluster://n1:7000", "redis+cluster://n1:7000"] {
            let msg = config_error(parse_url(url));
            assert!(msg.contains("Cluster is not supported yet"), "{msg}");
        }
    }

    #[test]
    fn sentinel_and_cluster_fields_say_not_supported() {
        for (text, field, what) in [
            (
                r#"{"sentinels": ["s1:26379", "s2:26379"], "master": "mymaster"}"#,
                "sentinels",
                "Sentinel",
            ),
            (r#"{"master": "mymaster"}"#, "master", "Sentinel"),
            (r#"{"master_name": "mymaster"}"#, "master_name", "Sentinel"),
            (r#"{"sentinel": {"host": "s1"}}"#, "sentinel", "Sentinel"),
            (r#"{"cluster": true}"#, "cluster", "Cluster"),
            (
                r#"{"startup_nodes": [{"host": "n1", "port": 7000}]}"#,
                "startup_nodes",
                "Cluster",
            ),
            (
                r#"{"cluster_nodes": ["n1:7000"]}"#,
                "cluster_nodes",
                "Cluster",
            ),
        ] {
            let msg = config_error(parse(text, Path::new("/x/redis.json")));
            assert!(msg.contains("/x/redis.json"), "{msg}");
            assert!(msg.contains(&format!("field \"{field}\"")), "{msg}");
            assert!(
                msg.contains(&format!("{what} is not supported yet")),
                "{msg}"
            );
            assert!(
                msg.contains("\"host\"") && msg.contains("redis://"),
                "{msg}"
            );
        }
        // Settings that turn them off are harmless.
        for text in [
            r#"{"cluster": false}"#,
            r#"{"sentinels": null}"#,
            r#"{"sentinels": []}"#,
        ] {
            parse(text, Path::new("r.json")).unwrap_or_else(|e| panic!("{text}: {e:#}"));
        }
    }

    #[test]
    fn tls_ca_that_is_not_a_certificate_is_a_config_error() {
        let d = tempfile::tempdir().unwrap();
        let cases: &[(&str, &[u8])] = &[
            ("text.pem", b"this is not a certificate\n"),
            ("empty.pem", b""),
            (
                "key.pem",
                b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n",
            ),
            (
                "notder.pem",
                b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
            ),
            (
                "badbase64.pem",
                b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            ),
        ];
        for (name, bytes) in cases {
            std::fs::write(d.path().join(name), bytes).unwrap();
            let p = write(
                d.path(),
                &format!(r#"{{"host": "h", "tls": true, "tls_ca": "{name}"}}"#),
            );
            let req = Request {
                config: Some(p.clone()),
                url: None,
            };
            let msg = config_error(load(&req, &env(&[])));
            assert!(msg.contains(p.to_str().unwrap()), "names the file: {msg}");
            assert!(msg.contains("\"tls_ca\""), "names the field: {msg}");
            assert!(msg.contains(name), "names the CA file: {msg}");
            // Under a rediss:// URL too, since the file's CA is kept.
            let req = Request {
                config: Some(p),
                url: Some("rediss://h:1".into()),
            };
            config_error(load(&req, &env(&[])));
        }
        // A real CA, alone or after other sections (a bundle with notes or a key), is kept.
        let bundle = format!(
            "# site CA\n{TEST_CA}{}",
            std::str::from_utf8(cases[2].1).unwrap()
        );
        for text in [TEST_CA, &bundle] {
            std::fs::write(d.path().join("ca.pem"), text).unwrap();
            let p = write(
                d.path(),
                r#"{"host": "h", "tls": true, "tls_ca": "ca.pem"}"#,
            );
            let req = Request {
                config: Some(p),
                url: None,
            };
            load(&req, &env(&[])).unwrap_or_else(|e| panic!("{e:#}"));
        }
        // Without TLS the CA is not read, so it cannot be wrong.
        let p = write(d.path(), r#"{"host": "h", "tls_ca": "text.pem"}"#);
        let req = Request {
            config: Some(p),
            url: None,
        };
        load(&req, &env(&[])).unwrap();
        // A CA file that is not there: still named, still 78.
        let p = write(d.path(), r#"{"tls": true, "tls_ca": "missing.pem"}"#);
        let req = Request {
            config: Some(p),
            url: None,
        };
        let msg = config_error(load(&req, &env(&[])));
        assert!(
            msg.contains("missing.pem") && msg.contains("\"tls_ca\""),
            "{msg}"
        );
    }
}
