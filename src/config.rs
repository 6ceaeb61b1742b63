//! redis.json + environment → [`Config`]: where Redis is, how to log in, and the default tag.
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::exit::{fail, Kind};
use crate::keys::Tag;

/// The redis.json fields rj understands; unknown fields (`"__info__"`) are ignored. `Debug`
/// hides the password and the URL (which may hold one).
#[derive(Default, Deserialize)]
pub struct RawConfig {
    pub host: Option<String>,
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
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
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
    })
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
        let t = parse_url(&u).with_context(|| format!("Redis URL ({from})"))?;
        // A URL without credentials keeps the file's, as redis-cli keeps REDISCLI_AUTH.
        target = Target {
            username: t.username.or(target.username),
            password: t.password.or(target.password),
            tls_ca: target.tls_ca,
            ..t
        };
        source = from;
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
mod tests {
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

    #[test]
    fn tls_ca_is_relative_to_the_config_file() {
        let d = tempfile::tempdir().unwrap();
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
}
