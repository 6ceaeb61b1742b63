//! redis.json + environment → [`Config`]: where Redis is (a server, or the sentinels that know
//! its master), how to log in, and the default tag. What rj cannot use as written (data after
//! the object, port 0, a `tls_ca` without a certificate, a client key that does not fit its
//! certificate, other clients' lists of Cluster nodes) is refused here as a configuration error,
//! before any connection, so that it is never mistaken for an unreachable server. A Redis
//! Cluster needs no setting: `store.rs` finds it from the server.
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::exit::{fail, Kind};
use crate::keys::Tag;

/// The redis.json fields rj understands; unknown fields (`"__info__"`) are ignored, except other
/// clients' spellings of a Cluster's nodes or of a Sentinel setup, which must not silently
/// become 127.0.0.1. `Debug` hides the passwords and the URL (which may hold one).
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
    /// Unsigned, so that serde refuses `-1` at the number, naming the field and its line.
    pub db: Option<u32>,
    pub tls: Option<bool>,
    /// PEM file of the CA that signed the server's certificate, when it is not in the system's
    /// trust store (a site CA); relative to the redis.json's directory.
    pub tls_ca: Option<PathBuf>,
    /// PEM certificate (chain) and private key rj presents to a server with
    /// `tls-auth-clients yes`; relative to the redis.json's directory.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub url: Option<String>,
    pub job_tag: Option<String>,
    /// `"host:port"` of each sentinel (or `{"host": …, "port": …}`), asked in this order.
    #[serde(default, deserialize_with = "sentinel_nodes")]
    pub sentinels: Option<Vec<(String, u16)>>,
    /// The name the sentinels monitor the master by (`sentinel monitor NAME …`).
    pub master: Option<String>,
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<String>,
    /// WAIT for this many replicas after a write that must survive a failover; 0 or absent: no.
    pub min_replicas_acked: Option<u32>,
    /// How long that WAIT may take, in milliseconds (default [`WAIT_TIMEOUT_DEFAULT`]).
    #[serde(default, deserialize_with = "wait_timeout")]
    pub min_replicas_timeout_ms: Option<u64>,
    #[serde(default, rename = "sentinel", deserialize_with = "sentinel")]
    _sentinel: (),
    #[serde(default, rename = "master_name", deserialize_with = "sentinel")]
    _master_name: (),
    /// `"cluster": true` (or false) changes nothing: a Cluster is detected from the server.
    #[serde(default, rename = "cluster", deserialize_with = "cluster_flag")]
    _cluster: (),
    #[serde(default, rename = "cluster_nodes", deserialize_with = "cluster")]
    _cluster_nodes: (),
    #[serde(default, rename = "startup_nodes", deserialize_with = "cluster")]
    _startup_nodes: (),
}

const SENTINEL: &str = "rj spells a Sentinel setup \"sentinels\": [\"host:port\", …] with \
     \"master\": \"NAME\" (or a redis+sentinel://host:port,host:port/NAME URL)";
const SENTINEL_URL: &str = "not a valid Sentinel URL (expected \
     redis+sentinel://[user:password@]host:port[,host:port…]/MASTER[/db], or rediss+sentinel:// \
     for TLS)";

/// The port a sentinel listens on when a `"sentinels"` entry or a URL names none.
pub const SENTINEL_PORT: u16 = 26379;

/// How long a WAIT for `min_replicas_acked` replicas may take, by default and at most: well
/// under the per-call bound of `store::IO_TIMEOUT`, so the WAIT's own answer comes back.
pub const WAIT_TIMEOUT_DEFAULT: u64 = 1000;
pub const WAIT_TIMEOUT_MAX: u64 = 10_000;
const CLUSTER: &str = "rj finds the nodes of a Redis Cluster itself, from any one of them: name \
     one node with \"host\" and \"port\" or a redis://host:port URL (the cluster is detected \
     from the server)";

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

/// `host:port`, `[v6]:port`, or `host` alone (port [`SENTINEL_PORT`]) of one sentinel.
pub fn sentinel_node(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: an IPv6 address needs its closing bracket"))?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(format!("{s:?} is not host:port")),
        }
    } else {
        match s.rsplit_once(':') {
            // Two colons and no brackets: an IPv6 address without a port.
            Some((h, _)) if h.contains(':') => (s, None),
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == ',')
    {
        return Err(format!("{s:?} is not host:port"));
    }
    let port = match port {
        None => SENTINEL_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("{s:?}: {p:?} is not a port (expected 1 to 65535)")),
        },
    };
    Ok((host.to_string(), port))
}

fn sentinel_nodes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<(String, u16)>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Node {
        Text(String),
        Parts {
            #[serde(deserialize_with = "host")]
            host: Option<String>,
            #[serde(default, deserialize_with = "port")]
            port: Option<u16>,
        },
    }
    let Some(nodes) = Option::<Vec<Node>>::deserialize(d)? else {
        return Ok(None);
    };
    nodes
        .into_iter()
        .map(|n| match n {
            Node::Text(s) => sentinel_node(&s).map_err(D::Error::custom),
            Node::Parts {
                host: Some(h),
                port,
            } => Ok((h, port.unwrap_or(SENTINEL_PORT))),
            Node::Parts { host: None, .. } => Err(D::Error::custom(
                "a sentinel is \"host:port\" or {\"host\": …, \"port\": …}",
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn wait_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<u64>::deserialize(d)? {
        Some(ms) if ms == 0 || ms > WAIT_TIMEOUT_MAX => Err(D::Error::custom(format!(
            "{ms} ms is out of range (1 to {WAIT_TIMEOUT_MAX}: a WAIT must end well within \
             rj's 15 s bound on each Redis call)"
        ))),
        v => Ok(v),
    }
}

fn sentinel<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    unsupported(d, SENTINEL)
}

fn cluster<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    unsupported(d, CLUSTER)
}

/// `"cluster"`: a boolean is harmless (the server says whether it is a cluster node); a list or
/// an object of nodes is another client's setting.
fn cluster_flag<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(_) | serde_json::Value::Null => Ok(()),
        _ => Err(D::Error::custom(CLUSTER)),
    }
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
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("url", &hidden(&self.url))
            .field("job_tag", &self.job_tag)
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("sentinel_username", &self.sentinel_username)
            .field("sentinel_password", &hidden(&self.sentinel_password))
            .field("min_replicas_acked", &self.min_replicas_acked)
            .field("min_replicas_timeout_ms", &self.min_replicas_timeout_ms)
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
    /// Client certificate (chain) and key (PEM) for a server that asks for one; both or none.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Ask these sentinels for the master instead of connecting to `addr` (whose `tls` still
    /// says whether to speak TLS, to the sentinels and the master alike).
    pub sentinel: Option<Sentinel>,
    /// Writes that must survive a failover are followed by `WAIT n timeout` (0: not).
    pub min_replicas_acked: u32,
    pub min_replicas_timeout: std::time::Duration,
}

/// A master found through Redis Sentinel (ARCHITECTURE.md §3). `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Sentinel {
    /// Asked in this order; the first that names the master is believed.
    pub nodes: Vec<(String, u16)>,
    /// The name the sentinels monitor the master by.
    pub master: String,
    /// The sentinels' own login (`requirepass`/ACL of the sentinels), not the master's.
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for Sentinel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sentinel")
            .field("nodes", &self.nodes)
            .field("master", &self.master)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Sentinel {
    /// `s1:26379,[::1]:26380`: the sentinels, for messages.
    pub fn list(&self) -> String {
        self.nodes
            .iter()
            .map(|(h, p)| host_port(h, *p))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `host:port`, with brackets around an IPv6 host.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("sentinel", &self.sentinel)
            .field("min_replicas_acked", &self.min_replicas_acked)
            .field("min_replicas_timeout", &self.min_replicas_timeout)
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
            tls_cert: None,
            tls_key: None,
            sentinel: None,
            min_replicas_acked: 0,
            min_replicas_timeout: std::time::Duration::from_millis(WAIT_TIMEOUT_DEFAULT),
        }
    }
}

impl fmt::Display for Target {
    /// `host:port`, `unix:/path` or `master NAME via sentinels h:p,h:p`: safe for messages,
    /// never holds a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.sentinel {
            return write!(f, "master {} via sentinels {}", s.master, s.list());
        }
        match &self.addr {
            Addr::Tcp { host, port, .. } => f.write_str(&host_port(host, *port)),
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
            let any_pw = raw.password.is_some() || raw.sentinel_password.is_some() || url_pw;
            if any_pw && world_readable(p) {
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
    let shown = file
        .as_deref()
        .unwrap_or(Path::new("redis.json"))
        .to_path_buf();
    let invalid = |field: &str, why: &str| {
        fail(
            Kind::Config,
            format!(
                "invalid config {}: field \"{field}\": {why}",
                shown.display()
            ),
        )
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
    target.db = i64::from(raw.db.unwrap_or(0));
    target.username = raw.username.clone();
    target.password = raw.password.clone();
    let beside = |p: &Option<PathBuf>| match (p, &abs) {
        (Some(f), Some(file)) if f.is_relative() => {
            Some(file.parent().unwrap_or(Path::new("/")).join(f))
        }
        (f, _) => f.clone(),
    };
    target.tls_ca = beside(&raw.tls_ca);
    target.tls_cert = beside(&raw.tls_cert);
    target.tls_key = beside(&raw.tls_key);
    target.min_replicas_acked = raw.min_replicas_acked.unwrap_or(0);
    target.min_replicas_timeout = std::time::Duration::from_millis(
        raw.min_replicas_timeout_ms.unwrap_or(WAIT_TIMEOUT_DEFAULT),
    );
    let nodes = raw.sentinels.clone().unwrap_or_default();
    match (nodes.is_empty(), &raw.master) {
        (true, None) => {}
        (false, Some(m)) if !m.is_empty() => {
            if raw.url.is_some() {
                return Err(invalid(
                    "url",
                    "\"url\" and \"sentinels\" both say where the server is; keep one",
                ));
            }
            target.sentinel = Some(Sentinel {
                nodes,
                master: m.clone(),
                username: None,
                password: None,
            });
        }
        (false, _) => {
            return Err(invalid(
                "sentinels",
                "the sentinels need the name of the master they monitor: \"master\": \"NAME\"",
            ))
        }
        (true, Some(_)) => {
            return Err(invalid(
                "master",
                "a master name needs the sentinels to ask: \"sentinels\": [\"host:port\", …]",
            ))
        }
    }

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
        // A URL without credentials keeps the file's, as redis-cli keeps REDISCLI_AUTH; the
        // file's certificates, durability and sentinel login stay too.
        target = Target {
            username: t.username.or(target.username),
            password: t.password.or(target.password),
            tls_ca: target.tls_ca,
            tls_cert: target.tls_cert,
            tls_key: target.tls_key,
            min_replicas_acked: target.min_replicas_acked,
            min_replicas_timeout: target.min_replicas_timeout,
            ..t
        };
        source = from;
    }
    if let Some(s) = &mut target.sentinel {
        s.username = raw.sentinel_username.clone();
        s.password = raw.sentinel_password.clone();
    }
    // Only a TLS connection reads the certificates, so only then is a wrong file an error.
    if let Addr::Tcp { tls: true, .. } = &target.addr {
        if let Some(ca) = &target.tls_ca {
            check_ca(ca).map_err(|why| invalid("tls_ca", &why))?;
        }
        match (&target.tls_cert, &target.tls_key) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                check_client_cert(cert, key).map_err(|(field, why)| invalid(field, &why))?;
                if world_readable(key) {
                    warnings.push(format!(
                        "{} holds a private key and is readable by every user; run: chmod 600 {}",
                        key.display(),
                        key.display()
                    ));
                }
            }
            (Some(_), None) => {
                return Err(invalid(
                    "tls_cert",
                    "a client certificate needs its private key: \"tls_key\"",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "tls_key",
                    "a client key needs its certificate: \"tls_cert\"",
                ))
            }
        }
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

/// Check that a client certificate and key are PEM rustls can present, and belong together, so
/// that a wrong file is the configuration's fault before any connection rather than a TLS
/// handshake the server cuts short. The reason names the field and file, never their bytes.
fn check_client_cert(cert: &Path, key: &Path) -> Result<(), (&'static str, String)> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let read = |field, p: &Path| {
        std::fs::read(p).map_err(|e| (field, format!("cannot read {}: {e}", p.display())))
    };
    let pem = read("tls_cert", cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            (
                "tls_cert",
                format!("{} holds a malformed PEM section", cert.display()),
            )
        })?;
    if chain.is_empty() {
        return Err((
            "tls_cert",
            format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                cert.display()
            ),
        ));
    }
    let pem = read("tls_key", key)?;
    let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        (
            "tls_key",
            format!(
                "{} holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)",
                key.display()
            ),
        )
    })?;
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain, der, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => (
            "tls_key",
            format!(
                "{} is not the key of the certificate in {}",
                key.display(),
                cert.display()
            ),
        ),
        // Certificates are public: the reason may be shown (an X.509 v1 certificate, …).
        rustls::Error::InvalidCertificate(why) => (
            "tls_cert",
            format!(
                "{} holds a certificate rustls cannot present ({why:?}; it needs X.509 v3)",
                cert.display()
            ),
        ),
        _ => (
            "tls_key",
            format!(
                "{} holds a key rustls cannot use (an unsupported algorithm?)",
                key.display()
            ),
        ),
    })?;
    Ok(())
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
    match scheme.as_str() {
        "redis+sentinel" => return parse_sentinel_url(url, false),
        "rediss+sentinel" => return parse_sentinel_url(url, true),
        s if s.contains("sentinel") => return Err(fail(Kind::Config, SENTINEL_URL)),
        _ => {}
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
        ..Target::default()
    })
}

/// `redis+sentinel://[user[:password]@]host:port[,host:port…]/MASTER[/db]`: the login is the
/// master's (the sentinels' own is `"sentinel_username"`/`"sentinel_password"` in redis.json).
/// Errors never repeat the URL.
fn parse_sentinel_url(url: &str, tls: bool) -> anyhow::Result<Target> {
    use redis::IntoConnectionInfo;
    let bad = |why: &str| fail(Kind::Config, format!("{SENTINEL_URL}: {why}"));
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or_default();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (login, hosts) = match authority.rsplit_once('@') {
        Some((l, h)) => (Some(l), h),
        None => (None, authority),
    };
    let nodes = hosts
        .split(',')
        .map(sentinel_node)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad("a sentinel is not host:port"))?;
    let mut parts = path.split('/');
    let master = parts.next().unwrap_or_default();
    if master.is_empty() || master.contains(['?', '#']) {
        return Err(bad("no master name after the sentinels"));
    }
    let db = match parts.next() {
        None | Some("") => 0,
        Some(d) => match d.parse::<i64>() {
            Ok(n) if n >= 0 => n,
            _ => return Err(bad("the database is not a number from 0")),
        },
    };
    if parts.any(|p| !p.is_empty()) {
        return Err(bad("more after /MASTER/db"));
    }
    // The login is percent-encoded as in any Redis URL: let the client library decode it.
    let (username, password) = match login {
        None => (None, None),
        Some(l) => {
            let info = format!("redis://{l}@h/")
                .into_connection_info()
                .map_err(|_| bad("the login is not user:password"))?;
            let r = info.redis_settings();
            (
                r.username().map(str::to_string),
                r.password().map(str::to_string),
            )
        }
    };
    Ok(Target {
        addr: Addr::Tcp {
            host: nodes[0].0.clone(),
            port: nodes[0].1,
            tls,
        },
        db,
        username,
        password,
        sentinel: Some(Sentinel {
            nodes,
            master: master.to_string(),
            username: None,
            password: None,
        }),
        ..Target::default()
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
    fn a_negative_db_is_refused_naming_the_field() {
        let msg = config_error(parse("{\n  \"db\": -1\n}", Path::new("/x/redis.json")));
        assert!(msg.contains("/x/redis.json"), "{msg}");
        assert!(msg.contains("field \"db\""), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        let raw = parse(r#"{"db": 15}"#, Path::new("/x/redis.json")).unwrap();
        assert_eq!(raw.db, Some(15));
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
    fn sentinel_urls_name_the_sentinels_and_the_master() {
        let t = parse_url("redis+sentinel://u:p%40w9@s1:26380,[::1]:26381,s3/mymaster/4").unwrap();
        let s = t.sentinel.clone().unwrap();
        assert_eq!(
            s.nodes,
            [
                ("s1".to_string(), 26380),
                ("::1".to_string(), 26381),
                ("s3".to_string(), SENTINEL_PORT)
            ]
        );
        assert_eq!(s.master, "mymaster");
        assert_eq!(t.db, 4);
        assert_eq!(t.username.as_deref(), Some("u"), "the master's login");
        assert_eq!(t.password.as_deref(), Some("p@w9"));
        assert_eq!(s.password, None, "the sentinels' own login is the file's");
        assert!(matches!(t.addr, Addr::Tcp { tls: false, .. }));
        assert_eq!(
            t.to_string(),
            "master mymaster via sentinels s1:26380,[::1]:26381,s3:26379"
        );
        let t = parse_url("rediss+sentinel://s1/m").unwrap();
        assert!(matches!(t.addr, Addr::Tcp { tls: true, .. }));
        assert_eq!(t.db, 0);
        for url in [
            "redis+sentinel://:pw9@s1:26379",
            "redis+sentinel://:pw9@s1:26379/",
            "redis+sentinel://:pw9@s1:0/m",
            "redis+sentinel://:pw9@s1:26379,/m",
            "redis+sentinel://:pw9@s1:26379/m/-1",
            "redis+sentinel://:pw9@s1:26379/m/x",
            "redis+sentinel://:pw9@s1:26379/m/0/more",
            "redis-sentinel://:pw9@s1:26379/mymaster",
        ] {
            let msg = config_error(parse_url(url));
            assert!(msg.contains("redis+sentinel://"), "{url}: {msg}");
            assert!(!msg.contains("pw9"), "{url}: {msg}");
        }
        for url in ["redis-cluster://n1:7000", "redis+cluster://n1:7000"] {
            let msg = config_error(parse_url(url));
            assert!(msg.contains("finds the nodes of a Redis Cluster"), "{msg}");
            assert!(msg.contains("redis://host:port"), "{msg}");
        }
    }

    #[test]
    fn sentinel_fields_are_read_and_checked() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            r#"{"sentinels": ["s1:26380", {"host": "s2"}, "[::1]"], "master": "m",
                "sentinel_username": "su", "sentinel_password": "spw", "password": "mpw",
                "host": "ignored", "db": 2, "min_replicas_acked": 1, "min_replicas_timeout_ms": 250}"#,
        );
        let req = Request {
            config: Some(p.clone()),
            url: None,
        };
        let c = load(&req, &env(&[])).unwrap();
        let s = c.target.sentinel.clone().unwrap();
        assert_eq!(
            s.nodes,
            [
                ("s1".to_string(), 26380),
                ("s2".to_string(), SENTINEL_PORT),
                ("::1".to_string(), SENTINEL_PORT)
            ]
        );
        assert_eq!(
            (s.username.as_deref(), s.password.as_deref()),
            (Some("su"), Some("spw"))
        );
        assert_eq!(c.target.password.as_deref(), Some("mpw"));
        assert_eq!(c.target.db, 2);
        assert_eq!(c.target.min_replicas_acked, 1);
        assert_eq!(c.target.min_replicas_timeout.as_millis(), 250);
        assert!(!format!("{:?}", c.target).contains("spw"), "Debug hides it");
        assert!(!c.place().contains("spw") && c.place().contains("master m via sentinels"));
        // A sentinel URL keeps the file's sentinel login; a plain URL leaves the sentinels.
        let c = load(&req, &env(&[("REDIS_URL", "redis+sentinel://t1/other")])).unwrap();
        let s = c.target.sentinel.unwrap();
        assert_eq!(
            (s.master.as_str(), s.password.as_deref()),
            ("other", Some("spw"))
        );
        assert_eq!(c.target.min_replicas_acked, 1);
        let c = load(&req, &env(&[("REDIS_URL", "redis://h:1")])).unwrap();
        assert!(c.target.sentinel.is_none());
        assert_eq!(c.target.to_string(), "h:1");

        for (text, field) in [
            (r#"{"sentinels": ["s1"]}"#, "sentinels"),
            (r#"{"sentinels": ["s1"], "master": ""}"#, "sentinels"),
            (r#"{"master": "m"}"#, "master"),
            (r#"{"sentinels": ["s1:0"], "master": "m"}"#, "sentinels"),
            (r#"{"sentinels": ["s1:x"], "master": "m"}"#, "sentinels"),
            (r#"{"sentinels": "s1", "master": "m"}"#, "sentinels"),
            (
                r#"{"sentinels": ["s1"], "master": "m", "url": "redis://h"}"#,
                "url",
            ),
            (r#"{"sentinel": {"host": "s1"}}"#, "sentinel"),
            (r#"{"master_name": "m"}"#, "master_name"),
            (
                r#"{"min_replicas_timeout_ms": 0}"#,
                "min_replicas_timeout_ms",
            ),
            (
                r#"{"min_replicas_timeout_ms": 60000}"#,
                "min_replicas_timeout_ms",
            ),
            (r#"{"min_replicas_acked": -1}"#, "min_replicas_acked"),
        ] {
            let msg = config_error(load_file(text));
            assert!(msg.contains(&format!("field \"{field}\"")), "{text}: {msg}");
            assert!(msg.contains("redis.json"), "{text}: {msg}");
        }
        // Settings that turn it off are harmless.
        for text in [r#"{"sentinels": null}"#, r#"{"sentinels": []}"#] {
            let c = load_file(text).unwrap_or_else(|e| panic!("{text}: {e:#}"));
            assert!(c.target.sentinel.is_none());
        }
    }

    #[test]
    fn a_world_readable_sentinel_password_warns() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            r#"{"sentinels": ["s1"], "master": "m", "sentinel_password": "s3cret"}"#,
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let req = Request {
            config: Some(p),
            url: None,
        };
        let c = load(&req, &env(&[])).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(!c.warnings[0].contains("s3cret"), "{}", c.warnings[0]);
    }

    #[test]
    fn other_clients_cluster_nodes_say_what_rj_reads() {
        for (text, field) in [
            (r#"{"cluster": {"nodes": ["n1:7000"]}}"#, "cluster"),
            (
                r#"{"startup_nodes": [{"host": "n1", "port": 7000}]}"#,
                "startup_nodes",
            ),
            (r#"{"cluster_nodes": ["n1:7000"]}"#, "cluster_nodes"),
        ] {
            let msg = config_error(parse(text, Path::new("/x/redis.json")));
            assert!(msg.contains("/x/redis.json"), "{msg}");
            assert!(msg.contains(&format!("field \"{field}\"")), "{msg}");
            assert!(msg.contains("finds the nodes of a Redis Cluster"), "{msg}");
            assert!(
                msg.contains("\"host\"") && msg.contains("redis://"),
                "{msg}"
            );
        }
        // A flag changes nothing: the server says whether it is a cluster node.
        for flag in [
            r#"{"cluster": false}"#,
            r#"{"cluster": true}"#,
            r#"{"cluster": null}"#,
        ] {
            parse(flag, Path::new("r.json")).unwrap();
        }
    }

    #[test]
    fn client_certificate_paths_are_relative_to_the_config_file() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            r#"{"tls_cert": "c/client.pem", "tls_key": "/abs/client.key"}"#,
        );
        let req = Request {
            config: Some(p),
            url: Some("redis://h:1".into()),
        };
        // Without TLS the files are not read, so they need not exist.
        let c = load(&req, &env(&[])).unwrap();
        let base = std::path::absolute(d.path()).unwrap();
        assert_eq!(c.target.tls_cert, Some(base.join("c/client.pem")));
        assert_eq!(c.target.tls_key, Some(PathBuf::from("/abs/client.key")));
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
