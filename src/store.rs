//! The Redis connection (timeouts, auth, TLS, the master named by Sentinel, the master of each
//! slot of a Redis Cluster, WAIT for replicas) and the operations on a tag's sets and hashes.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use redis::{
    Connection, ConnectionAddr, ConnectionInfo, ConnectionLike, IntoConnectionInfo, Value,
};

use crate::config::{Addr, Config, Target};
use crate::exit::{fail, fail_transient, redis_failure, Kind};
use crate::keys::{IdKey, Keys, Set, Tag};
use crate::redis_cluster::{self as rc, Redirect, SlotMap};

/// How long to wait for a TCP connect, and for any single reply.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// Keys per SCAN/SSCAN step and per UNLINK batch.
pub const BATCH: usize = 1000;

pub struct Store {
    conn: Connection,
    /// `host:port (from …)`, for error messages.
    pub place: String,
    /// A call ran out of time or lost the connection half-way through its replies: the replies
    /// still to come would be read as answers to the next commands, so none is sent.
    broken: bool,
    /// `"min_replicas_acked"` and the WAIT's timeout ([`Store::wait_replicas`]).
    min_replicas: (u32, Duration),
    /// On a Redis Cluster: the slot map and the connections to its other nodes; `conn` is then
    /// the connection to the node of the last call (ARCHITECTURE.md §3).
    cluster: Option<Box<Cluster>>,
    /// The user may not run INFO, so a cluster node was not told from a plain server: a MOVED
    /// then means a missing permission, not a resharding ([`Store::error`]).
    info_refused: bool,
}

/// A Redis Cluster as a [`Store`] sees it: where each slot is, and a connection per node used so
/// far. Each command goes to the master of its key's slot; a MOVED corrects the map and the
/// command is sent again there, an ASK is followed for that one command (ASKING first).
struct Cluster {
    /// To open connections to other nodes: the same login, TLS files and durability.
    cfg: Config,
    map: SlotMap,
    /// The node of `Store::conn`.
    current: usize,
    /// Connections not in use, by node, each with its `broken` flag.
    idle: HashMap<usize, (Connection, bool)>,
    /// The node where a WATCH waits for its transaction, and the WATCHed slot: a transaction on
    /// that slot, and EXEC, DISCARD and UNWATCH, go there whatever the map says now, so that a
    /// transaction never runs without its WATCH (a slot moved since is refused there, MOVED).
    watching: Option<(usize, Option<u16>)>,
    /// The place of a node the last call could not reach, for its error message.
    unreached: Option<String>,
    /// The place of node 0, the one connected first.
    first_place: String,
}

/// Every node of the Redis Cluster that the last slot map of this process named (replicas
/// too), by the configured server it was reached from: when that server is down (a master
/// that died, before or during its failover), the next connection of a long-running tool
/// (rj-track, rj-wait, rj-put's retries) starts from one of them instead.
static SEEN: std::sync::Mutex<Vec<(String, Nodes)>> = std::sync::Mutex::new(Vec::new());

/// Nodes as host and port.
type Nodes = Vec<(String, u16)>;

fn seen_nodes(cfg: &Config) -> Vec<(String, u16)> {
    let key = cfg.target.to_string();
    let seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    seen.iter()
        .find(|(k, _)| *k == key)
        .map(|(_, n)| n.clone())
        .unwrap_or_default()
}

fn remember_nodes(cfg: &Config, nodes: Vec<(String, u16)>) {
    let key = cfg.target.to_string();
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    match seen.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n = nodes,
        None => seen.push((key, nodes)),
    }
}

/// How many times one command follows a MOVED or an ASK before its reply stands.
const REDIRECTS: usize = 3;

/// A connection whose every call, pipelines and MULTI/EXEC included, ends within one
/// [`IO_TIMEOUT`] from the moment it was sent (a read may overrun it by at most [`REARM`]). redis-rs bounds each socket read, but reads the
/// rest of a pipeline's replies after a timeout, each with the full timeout again; under
/// `CLIENT PAUSE WRITE` (what a failover does) a transaction then blocks for the whole pause.
/// It also turns a refused EXEC (an ACL user without `+exec`) into a parser complaint; here
/// the server's own error comes back.
struct Bounded<'a> {
    conn: &'a mut Connection,
    deadline: std::time::Instant,
    /// Replies are still owed by the server: the connection must not be used again.
    lost: bool,
    /// When the socket's read timeout was last set (to what was left until the deadline then).
    armed: Option<std::time::Instant>,
}

/// How far one read may overrun the deadline: the socket's timeout is set again only when it
/// is this much older, not for every reply (a transaction of 1,000 jobs has 1,000 replies, and a
/// setsockopt each cost more than the replies).
const REARM: Duration = Duration::from_secs(1);

impl<'a> Bounded<'a> {
    fn new(conn: &'a mut Connection) -> Bounded<'a> {
        Bounded {
            conn,
            deadline: std::time::Instant::now() + IO_TIMEOUT,
            lost: false,
            armed: None,
        }
    }

    /// Write commands already in RESP; a failed write leaves the connection unusable.
    fn send(&mut self, bytes: &[u8]) -> redis::RedisResult<()> {
        let r = self.conn.send_packed_command(bytes);
        if r.is_err() {
            self.lost = true;
        }
        r
    }

    /// The next reply that is not a RESP3 push.
    fn reply(&mut self) -> redis::RedisResult<Value> {
        loop {
            let v = self.recv()?;
            if !matches!(v, Value::Push { .. }) {
                return Ok(v);
            }
        }
    }

    fn recv(&mut self) -> redis::RedisResult<Value> {
        let now = std::time::Instant::now();
        let left = self.deadline.saturating_duration_since(now);
        let stale = self.armed.is_none_or(|t| now.duration_since(t) >= REARM);
        let r = if left.is_zero() {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out").into())
        } else if stale {
            self.armed = Some(now);
            self.conn
                .set_read_timeout(Some(left))
                .and_then(|_| self.conn.recv_response())
        } else {
            self.conn.recv_response()
        };
        if r.as_ref().is_err_and(|e| e.is_io_error() || e.is_timeout()) {
            self.lost = true;
        }
        r
    }
}

impl Drop for Bounded<'_> {
    fn drop(&mut self) {
        if self.armed.is_some() {
            let _ = self.conn.set_read_timeout(Some(IO_TIMEOUT));
        }
    }
}

impl redis::ConnectionLike for Bounded<'_> {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<Value> {
        self.conn.send_packed_command(cmd)?;
        self.recv()
    }

    /// `offset` replies to skip (MULTI and the QUEUED of a transaction), then `count` to keep.
    /// A timeout ends the call at once; a server error in the skipped part (a command refused
    /// while queueing) or in EXEC's own reply is the transaction's error, with the number of
    /// commands refused when more than one was.
    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<Value>> {
        let mut kept = Vec::with_capacity(count);
        let mut refused: Option<redis::ServerError> = None;
        let mut n_refused = 0usize;
        let mut idx = 0;
        // MULTI goes alone, and the commands only once it is accepted: a user refused MULTI
        // (no +multi) would otherwise have every queued command run at once, outside any
        // transaction, while the call reports a failure.
        let multi = redis::cmd("MULTI").get_packed_command();
        let cmd = match cmd.strip_prefix(multi.as_slice()) {
            Some(rest) if offset > 0 => {
                self.conn.send_packed_command(&multi)?;
                if let Value::ServerError(e) = self.recv()? {
                    return Err(e.into());
                }
                idx = 1;
                rest
            }
            _ => cmd,
        };
        self.conn.send_packed_command(cmd)?;
        while idx < offset + count {
            let v = self.recv()?;
            if matches!(v, Value::Push { .. }) {
                continue;
            }
            match v {
                // EXECABORT only repeats that something queued was refused.
                Value::ServerError(e) if refused.is_some() && e.code() == "EXECABORT" => {}
                Value::ServerError(e) if offset > 0 => {
                    n_refused += 1;
                    refused.get_or_insert(e);
                }
                v if idx >= offset => kept.push(v),
                _ => {}
            }
            idx += 1;
        }
        match transaction_error(refused, n_refused, offset.saturating_sub(1)) {
            None => Ok(kept),
            Some(e) => Err(e),
        }
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }

    fn check_connection(&mut self) -> bool {
        self.conn.check_connection()
    }

    fn is_open(&self) -> bool {
        !self.lost && self.conn.is_open()
    }
}

/// The error of a transaction from its first refused command (`refused`, one of `n_refused`,
/// of `queued` commands): a command refused at EXEC time (an ACL user without +exec) comes back
/// as `EXECABORT Transaction discarded because of: NOPERM …`, whose inner code is the cause;
/// several refusals are one line with their count, never a list of every command.
fn transaction_error(
    refused: Option<redis::ServerError>,
    n_refused: usize,
    queued: usize,
) -> Option<redis::RedisError> {
    let e = refused?;
    let e = match e
        .details()
        .and_then(|d| d.strip_prefix("Transaction discarded because of: "))
        .and_then(|d| d.split_once(' '))
    {
        Some((code, rest)) if e.code() == "EXECABORT" => {
            redis::make_extension_error(code.to_string(), Some(rest.to_string()))
                .try_into()
                .unwrap_or(e)
        }
        _ => e,
    };
    Some(if n_refused > 1 {
        redis::make_extension_error(
            e.code().to_string(),
            Some(format!(
                "{} ({n_refused} of {queued} commands of the transaction refused)",
                e.details().unwrap_or_default()
            )),
        )
    } else {
        e.into()
    })
}

/// The connection a [`Store`] on a Redis Cluster hands to redis-rs: `Cmd::query` and
/// `Pipeline::query` come through here with the command (or the pipeline, in `pipe`), which
/// the store routes to the master of its slot ([`Store::cluster_command`]).
struct Routed<'s, 'p> {
    store: &'s mut Store,
    pipe: Option<&'p redis::Pipeline>,
}

impl redis::ConnectionLike for Routed<'_, '_> {
    /// Bytes without their command: the node in use.
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<Value> {
        self.store.bounded(|b| b.req_packed_command(cmd))
    }

    fn req_command(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<Value> {
        self.store.cluster_command(cmd)
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<Value>> {
        match self.pipe {
            Some(p) => self.store.cluster_pipeline(p, cmd, offset, count),
            None => self
                .store
                .bounded(|b| b.req_packed_commands(cmd, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        0
    }

    fn check_connection(&mut self) -> bool {
        self.store.conn.check_connection()
    }

    fn is_open(&self) -> bool {
        !self.store.broken && self.store.conn.is_open()
    }
}

/// A connection to another node of the cluster of `cfg`: the same login and TLS files, the
/// same timeouts, PING answered. Its errors are redis-rs's, for [`Store::error`] to name.
fn open_node(cfg: &Config, host: &str, port: u16) -> redis::RedisResult<Connection> {
    let tls = matches!(cfg.target.addr, Addr::Tcp { tls: true, .. });
    let target = Target {
        addr: Addr::Tcp {
            host: host.to_string(),
            port,
            tls,
        },
        db: 0,
        sentinel: None,
        ..cfg.target.clone()
    };
    let client = client_for(&target, &cfg.source)
        .map_err(|e| redis::RedisError::from(std::io::Error::other(format!("{e:#}"))))?;
    let mut conn = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    redis::cmd("PING").query::<()>(&mut conn)?;
    Ok(conn)
}

pub fn connection_info(t: &Target) -> anyhow::Result<ConnectionInfo> {
    let addr = match &t.addr {
        Addr::Tcp {
            host,
            port,
            tls: false,
        } => ConnectionAddr::Tcp(host.clone(), *port),
        Addr::Tcp {
            host,
            port,
            tls: true,
        } => {
            // rustls needs one process-wide crypto provider; a second install is a no-op error.
            let _ = rustls::crypto::ring::default_provider().install_default();
            ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: false,
                tls_params: None,
            }
        }
        Addr::Unix(p) => ConnectionAddr::Unix(p.clone()),
    };
    let mut redis = redis::RedisConnectionInfo::default()
        .set_db(t.db)
        .set_skip_set_lib_name();
    if let Some(u) = &t.username {
        redis = redis.set_username(u);
    }
    if let Some(p) = &t.password {
        redis = redis.set_password(p);
    }
    Ok(addr.into_connection_info()?.set_redis_settings(redis))
}

/// A client for `t`, with its site CA and client certificate when it speaks TLS.
fn client_for(t: &Target, source: &crate::config::Source) -> anyhow::Result<redis::Client> {
    let info = connection_info(t)?;
    let Addr::Tcp { tls: true, .. } = t.addr else {
        return redis::Client::open(info).map_err(|e| redis_failure(&e, redis_message(&e)));
    };
    let certs = tls_files(t, source)?;
    if certs.root_cert.is_none() && certs.client_tls.is_none() {
        return redis::Client::open(info).map_err(|e| redis_failure(&e, redis_message(&e)));
    }
    // The library's own words about a bad PEM may quote it: say which files instead.
    redis::Client::build_with_tls(info, certs).map_err(|_| tls_files_unusable(source))
}

/// The PEM bytes of `t`'s `tls_ca` and `tls_cert`/`tls_key`, for rj's connections and rbench's
/// engine alike. A file that cannot be read (gone since the configuration was checked) is the
/// configuration's fault, named with its field; its content is never quoted.
pub fn tls_files(
    t: &Target,
    source: &crate::config::Source,
) -> anyhow::Result<redis::TlsCertificates> {
    let read = |field: &str, p: &std::path::Path| {
        std::fs::read(p).map_err(|e| {
            fail(
                Kind::Config,
                format!("cannot read {field} {} ({source}): {e}", p.display()),
            )
        })
    };
    let root_cert = t.tls_ca.as_deref().map(|p| read("tls_ca", p)).transpose()?;
    let client_tls = match (&t.tls_cert, &t.tls_key) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read("tls_cert", cert)?,
            client_key: read("tls_key", key)?,
        }),
        _ => None,
    };
    Ok(redis::TlsCertificates {
        client_tls,
        root_cert,
    })
}

/// The TLS files are there but rustls cannot use them.
pub fn tls_files_unusable(source: &crate::config::Source) -> anyhow::Error {
    fail(
        Kind::Config,
        format!(
            "the TLS files of the configuration ({source}: \"tls_ca\", \"tls_cert\", \
             \"tls_key\") are not PEM rustls can use"
        ),
    )
}

/// Why a TLS handshake failed, when it was over certificates (rustls's error inside the I/O
/// error): the server's certificate not trusted, or the server asking for a client certificate
/// rj did not send or that it does not trust. None for network trouble, which may pass.
fn tls_refusal(e: &redis::RedisError) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        // redis-rs keeps the I/O error behind an Arc, and io::Error's source() skips the
        // rustls error it carries: look inside both.
        type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
        let io = c.downcast_ref::<std::io::Error>().or_else(|| {
            c.downcast_ref::<Shared>()
                .and_then(|a| (**a).downcast_ref::<std::io::Error>())
        });
        let tls = c.downcast_ref::<rustls::Error>().or_else(|| {
            io.and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(t) = tls {
            return Some(tls_why(t));
        }
        cause = c.source();
    }
    None
}

/// A handshake's rustls error with what to do about it: a `tls_ca`, a client certificate, or
/// one the server trusts. rbench's engine says it the same way.
pub fn tls_why(t: &rustls::Error) -> String {
    let hint = match t {
        rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired) => {
            "; the server asks for a client certificate: set \"tls_cert\" and \"tls_key\""
        }
        rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure) => {
            "; if the server asks for a client certificate, set \"tls_cert\" and \"tls_key\""
        }
        rustls::Error::AlertReceived(
            rustls::AlertDescription::UnknownCA
            | rustls::AlertDescription::BadCertificate
            | rustls::AlertDescription::CertificateUnknown,
        ) => "; the server does not trust rj's client certificate (\"tls_cert\")",
        rustls::Error::InvalidCertificate(_) => {
            "; the server's certificate is not trusted (a site CA goes in \"tls_ca\")"
        }
        _ => "",
    };
    format!("{t}{hint}")
}

/// How long a sentinel may take to accept a connection and to answer: sentinels answer from
/// memory, and a dead one must not hold up asking the next for long.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(2);

/// What one sentinel said when asked for the master.
enum Answer {
    Master(String, u16),
    /// The sentinel does not monitor a master of that name.
    Unknown,
    /// It could not be asked: why, with the kind and transience of the cause.
    Failed(anyhow::Error),
}

/// Ask one sentinel `SENTINEL get-master-addr-by-name`. Its login is the sentinels' own
/// (`sentinel_username`/`sentinel_password`), its TLS settings the master's.
fn ask_sentinel(cfg: &Config, node: &(String, u16)) -> Answer {
    let s = cfg
        .target
        .sentinel
        .as_ref()
        .expect("asked only with sentinels");
    let tls = matches!(cfg.target.addr, Addr::Tcp { tls: true, .. });
    let t = Target {
        addr: Addr::Tcp {
            host: node.0.clone(),
            port: node.1,
            tls,
        },
        db: 0,
        username: s.username.clone(),
        password: s.password.clone(),
        sentinel: None,
        ..cfg.target.clone()
    };
    let reply = client_for(&t, &cfg.source).and_then(|client| {
        let asked = || -> redis::RedisResult<Option<(String, String)>> {
            let mut conn = client.get_connection_with_timeout(SENTINEL_TIMEOUT)?;
            conn.set_read_timeout(Some(SENTINEL_TIMEOUT))?;
            conn.set_write_timeout(Some(SENTINEL_TIMEOUT))?;
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&s.master)
                .query(&mut conn)
        };
        asked().map_err(|e| {
            let why = match crate::exit::server_code(&e).as_deref() {
                // A plain server has no SENTINEL command.
                Some("ERR") if redis_message(&e).contains("unknown command") => {
                    "is not a Redis Sentinel (it has no SENTINEL command)".to_string()
                }
                _ => redis_message(&e),
            };
            redis_failure(&e, why)
        })
    });
    match reply {
        Ok(None) => Answer::Unknown,
        Ok(Some((host, port))) => match port.parse::<u16>() {
            Ok(p) if p > 0 => Answer::Master(host, p),
            _ => Answer::Failed(fail(
                Kind::DataErr,
                format!("named the master at port {port:?}, which is not a port"),
            )),
        },
        Err(e) => Answer::Failed(e),
    }
}

/// For a tool that dials the server itself (rbench): with sentinels, the same configuration
/// naming the master they report, and a line saying which master that is; without, the
/// configuration as it is. The master is asked for once, at start: a benchmark measures one
/// server, and a failover during it ends it with the connection errors it causes.
pub fn at_master(cfg: Config) -> anyhow::Result<(Config, Option<String>)> {
    let Some(s) = &cfg.target.sentinel else {
        return Ok((cfg, None));
    };
    let (target, via) = master_target(&cfg)?;
    let said = format!("master {:?} is {target} (by sentinel {via})", s.master);
    Ok((Config { target, ..cfg }, Some(said)))
}

/// redis.json's settings aimed at the master the sentinels name now (TLS as configured), and
/// the sentinel that named it.
fn master_target(cfg: &Config) -> anyhow::Result<(Target, String)> {
    let (host, port, via) = find_master(cfg)?;
    let tls = matches!(cfg.target.addr, Addr::Tcp { tls: true, .. });
    let target = Target {
        addr: Addr::Tcp { host, port, tls },
        sentinel: None,
        ..cfg.target.clone()
    };
    Ok((target, via))
}

/// The master's address from the first sentinel that knows it, and that sentinel
/// (ARCHITECTURE.md §3). None knowing the name is a configuration error; none answering is
/// unavailable, transient when every cause was (sentinels restarting, a network cut).
fn find_master(cfg: &Config) -> anyhow::Result<(String, u16, String)> {
    let s = cfg
        .target
        .sentinel
        .as_ref()
        .expect("asked only with sentinels");
    let mut unknown = Vec::new();
    let mut failed: Vec<(String, anyhow::Error)> = Vec::new();
    for node in &s.nodes {
        let at = crate::config::host_port(&node.0, node.1);
        match ask_sentinel(cfg, node) {
            Answer::Master(h, p) => return Ok((h, p, at)),
            Answer::Unknown => unknown.push(at),
            Answer::Failed(e) => failed.push((at, e)),
        }
    }
    let reasons = failed
        .iter()
        .map(|(at, e)| format!("{at}: {e:#}"))
        .collect::<Vec<_>>()
        .join("; ");
    if !unknown.is_empty() {
        let mut msg = format!(
            "no sentinel knows a master named {:?} ({}; asked {}); `SENTINEL masters` on a \
             sentinel lists the names it monitors",
            s.master,
            cfg.source,
            unknown.join(",")
        );
        if !reasons.is_empty() {
            msg.push_str(&format!("; not answering: {reasons}"));
        }
        return Err(fail(Kind::Config, msg));
    }
    let msg = format!(
        "cannot find master {:?}: no sentinel of {} answered ({}): {reasons}",
        s.master,
        s.list(),
        cfg.source
    );
    // A retry can help only if it could for every sentinel; otherwise the first lasting cause
    // (a refused login, a node that is no sentinel) chooses the status.
    match failed
        .iter()
        .find(|(_, e)| !crate::exit::is_transient(e))
        .and_then(|(_, e)| crate::exit::kind_of(e))
    {
        Some(kind) => Err(fail(kind, msg)),
        None => Err(fail_transient(Kind::Unavailable, msg)),
    }
}

impl Store {
    /// Connect and PING, so that a wrong password or a dead server fails here, with the place.
    /// With sentinels, ask them for the master first, and make sure it still is one.
    pub fn connect(cfg: &Config) -> anyhow::Result<Store> {
        let Some(s) = &cfg.target.sentinel else {
            let at = match &cfg.target.addr {
                Addr::Tcp { host, port, .. } => (host.clone(), *port),
                // A cluster over a unix socket: its other nodes on this host.
                Addr::Unix(_) => ("127.0.0.1".to_string(), 0),
            };
            let ((mut store, cluster), at) = match Self::connect_to(cfg, &cfg.target, cfg.place()) {
                Ok(s) => (s, at),
                Err(e) if crate::exit::is_transient(&e) => match Self::connect_seen(cfg) {
                    Some(s) => s,
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            };
            if cluster {
                store.join_cluster(cfg, at)?;
            }
            return Ok(store);
        };
        let (target, via) = master_target(cfg)?;
        let place = format!(
            "{target} (master {} by sentinel {via}, {})",
            s.master, cfg.source
        );
        let (mut store, cluster) = Self::connect_to(cfg, &target, place)?;
        if cluster {
            return Err(fail(
                Kind::Config,
                format!(
                    "the sentinels ({}) name {target} as master {:?}, which is a Redis Cluster \
                     node: a cluster fails over by itself; drop \"sentinels\" and name any node \
                     of the cluster in \"host\"/\"port\" or a redis:// URL",
                    cfg.source, s.master
                ),
            ));
        }
        store.check_master()?;
        Ok(store)
    }

    /// [`Store::connect`] for the tools that work on one tag: on a Redis Cluster, refuse a tag
    /// without a hash tag and connect to the master of the tag's slot at once, so that
    /// [`Store::conn`] and [`Store::record_jobs`], which write on the connection as it is,
    /// reach it.
    pub fn connect_tag(cfg: &Config, keys: &Keys) -> anyhow::Result<Store> {
        let mut store = Self::connect(cfg)?;
        store.route(keys)?;
        if let Some(slot) = keys.tag().slot().filter(|_| store.is_cluster()) {
            crate::cli::info(&format!(
                "tag {} is in hash slot {slot}, served by Redis {}",
                keys.tag(),
                store.place
            ));
        }
        Ok(store)
    }

    /// Is the server a Redis Cluster?
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// On a Redis Cluster a tag must hold a hash tag, so that its six sets share one slot: SMOVE,
    /// the recording transaction and the scripts work on several of them at once
    /// (ARCHITECTURE.md §2). One line saying so otherwise; Ok on a plain server.
    pub fn check_tag(&self, tag: &Tag) -> anyhow::Result<()> {
        let Some(c) = &self.cluster else {
            return Ok(());
        };
        if tag.hash_tag().is_some() {
            return Ok(());
        }
        Err(fail(
            Kind::Config,
            format!(
                "tag {tag} has no hash tag, and Redis {} is a Redis Cluster: a tag's six sets \
                 must share one hash slot for SMOVE and the recording transaction; use the tag \
                 {{{tag}}} ({{{tag}}}_ALL, {{{tag}}}_PENDING_AND_RUNNING, {{{tag}}}-<id>:* are \
                 all in one slot)",
                c.cfg.place()
            ),
        ))
    }

    /// A tag found by SCAN (`--all-tags`) that rj can work on here: on a Redis Cluster, only one
    /// with a hash tag; the others are skipped, with one warning per process each.
    pub fn fits(&self, tag: &Tag) -> bool {
        static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let Err(e) = self.check_tag(tag) else {
            return true;
        };
        let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
        if !warned.iter().any(|t| t == tag.as_str()) {
            warned.push(tag.to_string());
            crate::cli::warn(&format!("skipping tag {tag}: {e:#}"));
        }
        false
    }

    /// On a Redis Cluster, make the connection to the master of the tag's slot the one in use
    /// (after checking the tag, [`Store::check_tag`]); nothing on a plain server. A transaction
    /// that writes on the connection as it is ([`Store::record_jobs`]) is sent after this.
    pub fn route(&mut self, keys: &Keys) -> anyhow::Result<()> {
        if self.cluster.is_none() {
            return Ok(());
        }
        self.check_tag(keys.tag())?;
        let slot = keys.tag().slot().expect("checked: the tag has a hash tag");
        let c = self.cluster.as_ref().expect("a cluster");
        let to = c.map.owner(slot).unwrap_or(c.current);
        self.switch(to)
            .map_err(|e| self.error(e, &keys.set(Set::All)))
    }

    /// The configured server does not answer: another node of its cluster that this process
    /// saw before, the first that does (a cluster node, as it was).
    fn connect_seen(cfg: &Config) -> Option<((Store, bool), (String, u16))> {
        let tls = matches!(cfg.target.addr, Addr::Tcp { tls: true, .. });
        seen_nodes(cfg).into_iter().find_map(|(host, port)| {
            let target = Target {
                addr: Addr::Tcp {
                    host: host.clone(),
                    port,
                    tls,
                },
                db: 0,
                ..cfg.target.clone()
            };
            let place = format!(
                "{} (a node of the Redis Cluster at {}, which does not answer, {})",
                crate::config::host_port(&host, port),
                cfg.target,
                cfg.source
            );
            let s = Self::connect_to(cfg, &target, place)
                .ok()
                .filter(|(_, cluster)| *cluster)?;
            crate::cli::note(&format!("reached Redis {}", s.0.place));
            Some((s, (host, port)))
        })
    }

    /// The server is a cluster node: read where each slot is (`CLUSTER SLOTS`).
    fn join_cluster(&mut self, cfg: &Config, (host, port): (String, u16)) -> anyhow::Result<()> {
        let mut map = SlotMap::empty();
        let current = map.index_of(&host, port);
        self.cluster = Some(Box::new(Cluster {
            cfg: cfg.clone(),
            map,
            current,
            idle: HashMap::new(),
            watching: None,
            unreached: None,
            first_place: self.place.clone(),
        }));
        self.refresh_slots()?;
        let c = self.cluster.as_ref().expect("a cluster");
        crate::cli::info(&format!(
            "Redis {} is a Redis Cluster node: {} masters serve its slots",
            self.place,
            c.map.masters().len()
        ));
        Ok(())
    }

    /// Read `CLUSTER SLOTS` again from the node in use.
    fn refresh_slots(&mut self) -> anyhow::Result<()> {
        let reply: Value = match self.bounded(|b| redis::cmd("CLUSTER").arg("SLOTS").query(b)) {
            Ok(v) => v,
            Err(e) if crate::exit::redis_kind(&e) == Kind::NoPerm => {
                return Err(fail(
                    Kind::NoPerm,
                    format!(
                        "Redis {} is a Redis Cluster node and refused CLUSTER SLOTS ({}), which \
                         rj needs to find the master of each slot; grant the user +cluster|slots",
                        self.place,
                        redis_message(&e)
                    ),
                ))
            }
            Err(e) => return Err(self.error(e, "CLUSTER SLOTS")),
        };
        let place = self.place.clone();
        let c = self.cluster.as_mut().expect("a cluster");
        let host = c.map.node(c.current).0.to_string();
        c.map.update(&reply, &host).map_err(|why| {
            fail(
                Kind::DataErr,
                format!("Redis {place} sent a CLUSTER SLOTS reply rj cannot read: {why}"),
            )
        })?;
        remember_nodes(&c.cfg, rc::every_node(&reply, &host));
        Ok(())
    }

    /// Make the connection to node `i` of the cluster the one in use, opening it when there is
    /// none (or the one there was given up). On failure the connection in use stays, and
    /// [`Store::error`] names the node that could not be reached.
    fn switch(&mut self, i: usize) -> redis::RedisResult<()> {
        let c = self.cluster.as_mut().expect("a cluster");
        if c.current == i && !self.broken {
            return Ok(());
        }
        let (host, port) = c.map.node(i);
        // Node 0 is the one connected first, usually the one the configuration names.
        let place = if i == 0 {
            c.first_place.clone()
        } else {
            format!(
                "{} (a node of the Redis Cluster at {}, {})",
                crate::config::host_port(host, port),
                c.cfg.target,
                c.cfg.source
            )
        };
        let conn = match c.idle.remove(&i) {
            Some((conn, false)) => conn,
            _ => match open_node(&c.cfg, host, port) {
                Ok(conn) => conn,
                Err(e) => {
                    c.unreached = Some(place);
                    return Err(e);
                }
            },
        };
        // A connection given up (a reply lost) is dropped, also when it is this node's: on a
        // cluster the store opens another rather than refusing every later call.
        let old = std::mem::replace(&mut self.conn, conn);
        let old_broken = std::mem::replace(&mut self.broken, false);
        if !old_broken && c.current != i {
            c.idle.insert(c.current, (old, false));
        }
        c.current = i;
        self.place = place;
        Ok(())
    }

    /// One command on a cluster: to the master of its key's slot (a command without keys to the
    /// node in use, a transaction's end to the node of its WATCH), following MOVED and ASK.
    fn cluster_command(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<Value> {
        let name = rc::command_name(cmd);
        let ends_watch = matches!(name.as_slice(), b"EXEC" | b"DISCARD" | b"UNWATCH");
        let c = self.cluster.as_ref().expect("a cluster");
        let slot = rc::command_slot(cmd);
        let to = match (c.watching, name.as_slice()) {
            (Some((w, _)), b"MULTI" | b"EXEC" | b"DISCARD" | b"UNWATCH") => w,
            _ => slot.and_then(|s| c.map.owner(s)).unwrap_or(c.current),
        };
        self.switch(to)?;
        let packed = cmd.get_packed_command();
        let mut v = self.bounded(|b| b.req_packed_command(&packed))?;
        for _ in 0..REDIRECTS {
            let Some(r) = self.redirect(&v) else { break };
            v = self.follow(&r, &packed, v)?;
        }
        let c = self.cluster.as_mut().expect("a cluster");
        if ends_watch {
            c.watching = None;
        } else if name == b"WATCH" && !matches!(v, Value::ServerError(_)) {
            c.watching = Some((c.current, slot));
        }
        Ok(v)
    }

    /// The redirection in a reply, read against the node in use.
    fn redirect(&self, v: &Value) -> Option<Redirect> {
        let c = self.cluster.as_ref()?;
        rc::redirect_of(v, c.map.node(c.current).0)
    }

    /// Send one command (`packed`) again where a redirection says: after a MOVED to the slot's
    /// new master, which the map learns; after an ASK to the importing node, behind an ASKING.
    /// An ASKING refused (an ACL without `+asking`) leaves the ASK as the reply, which a retry
    /// outlives.
    fn follow(&mut self, r: &Redirect, packed: &[u8], asked: Value) -> redis::RedisResult<Value> {
        let c = self.cluster.as_mut().expect("a cluster");
        if !r.ask {
            let i = c.map.learn(r.slot, &r.host, r.port);
            crate::cli::info(&format!(
                "hash slot {} moved to {} (MOVED); following it",
                r.slot,
                crate::config::host_port(&r.host, r.port)
            ));
            self.switch(i)?;
            return self.bounded(|b| b.req_packed_command(packed));
        }
        let i = c.map.index_of(&r.host, r.port);
        self.switch(i)?;
        let mut bytes = redis::cmd("ASKING").get_packed_command();
        bytes.extend_from_slice(packed);
        let mut replies = self.bounded(|b| b.req_packed_commands(&bytes, 0, 2))?;
        match (replies.pop(), replies.pop()) {
            (Some(v), Some(ok)) if !matches!(ok, Value::ServerError(_)) => Ok(v),
            _ => Ok(asked),
        }
    }

    /// A pipeline on a cluster. A transaction goes whole to one node (that of its WATCH, or its
    /// first key's master) and is never sent again: a MOVED refused it before anything ran, and
    /// the map learns it for the next call. A plain pipeline is split by node when its keys are
    /// on several, each part sent as one pipeline, and its redirected commands are sent again
    /// where the redirection says, unless it holds a WATCH (which must stay with its
    /// transaction).
    fn cluster_pipeline(
        &mut self,
        p: &redis::Pipeline,
        packed: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<Value>> {
        let c = self.cluster.as_ref().expect("a cluster");
        if p.is_transaction() {
            let slot = p.cmd_iter().find_map(rc::command_slot);
            let to = match c.watching {
                Some((w, watched)) if watched == slot || slot.is_none() => w,
                _ => slot.and_then(|s| c.map.owner(s)).unwrap_or(c.current),
            };
            self.switch(to)?;
            let r = self.bounded(|b| b.req_packed_commands(packed, offset, count));
            let c = self.cluster.as_mut().expect("a cluster");
            c.watching = None;
            if let Err(e) = &r {
                let host = c.map.node(c.current).0.to_string();
                if let Some(m) = rc::redirect_of_error(e, &host).filter(|m| !m.ask) {
                    c.map.learn(m.slot, &m.host, m.port);
                }
            }
            return r;
        }
        let cmds: Vec<&redis::Cmd> = p.cmd_iter().collect();
        let watches = cmds.iter().any(|c| rc::command_name(c) == b"WATCH");
        let to: Vec<usize> = cmds
            .iter()
            .map(|cmd| {
                rc::command_slot(cmd)
                    .and_then(|slot| c.map.owner(slot))
                    .unwrap_or(c.current)
            })
            .collect();
        let mut replies: Vec<Value> = Vec::with_capacity(cmds.len());
        if to.windows(2).all(|w| w[0] == w[1]) {
            if let Some(&first) = to.first() {
                self.switch(first)?;
            }
            replies = self.bounded(|b| b.req_packed_commands(packed, offset, count))?;
        } else {
            replies.resize(cmds.len(), Value::Nil);
            let mut nodes: Vec<usize> = Vec::new();
            for &n in &to {
                if !nodes.contains(&n) {
                    nodes.push(n);
                }
            }
            for n in nodes {
                let part: Vec<usize> = (0..cmds.len()).filter(|&i| to[i] == n).collect();
                let mut bytes = Vec::new();
                for &i in &part {
                    cmds[i].write_packed_command(&mut bytes);
                }
                self.switch(n)?;
                let got = self.bounded(|b| b.req_packed_commands(&bytes, 0, part.len()))?;
                for (i, v) in part.into_iter().zip(got) {
                    replies[i] = v;
                }
            }
        }
        if watches {
            if !replies.iter().any(|v| matches!(v, Value::ServerError(_))) {
                let slot = cmds
                    .iter()
                    .find(|c| rc::command_name(c) == b"WATCH")
                    .and_then(|c| rc::command_slot(c));
                let c = self.cluster.as_mut().expect("a cluster");
                c.watching = Some((c.current, slot));
            }
            return Ok(replies);
        }
        for _ in 0..REDIRECTS {
            let moved: Vec<(usize, Redirect)> = replies
                .iter()
                .enumerate()
                .filter_map(|(i, v)| self.redirect(v).map(|r| (i, r)))
                .collect();
            if moved.is_empty() {
                break;
            }
            for (i, r) in moved {
                let asked = std::mem::replace(&mut replies[i], Value::Nil);
                replies[i] = self.follow(&r, &cmds[i].get_packed_command(), asked)?;
            }
        }
        Ok(replies)
    }

    /// A sentinel's answer can be a moment old: during a failover it still names the demoted
    /// master, which now refuses writes. ROLE says so at once, as a transient failure (the
    /// next attempt asks the sentinels again). A user who may not run ROLE is not refused for
    /// that: its first write would get READONLY, transient as well.
    fn check_master(&mut self) -> anyhow::Result<()> {
        let role: Value = match self.query_raw(&redis::cmd("ROLE")) {
            Ok(v) => v,
            Err(e) if crate::exit::server_code(&e).is_some() => return Ok(()),
            Err(e) => return Err(self.error(e, "ROLE")),
        };
        let first = match &role {
            Value::Array(a) => a
                .first()
                .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok()),
            _ => None,
        };
        match first.as_deref() {
            Some("master") | None => Ok(()),
            Some(other) => Err(fail_transient(
                Kind::Unavailable,
                format!(
                    "Redis {} is a {} now, not the master: a failover is in progress; retry \
                     once the sentinels have promoted a replica",
                    self.place,
                    if other == "slave" { "replica" } else { other }
                ),
            )),
        }
    }

    /// Connect to one server; also whether it is a Redis Cluster node.
    fn connect_to(cfg: &Config, target: &Target, place: String) -> anyhow::Result<(Store, bool)> {
        let wrap = |e: redis::RedisError| {
            if e.to_string().contains("refused to switch database") {
                // A "db" the server does not have is the configuration's fault, not the server's.
                return fail(
                    Kind::Config,
                    format!(
                        "cannot select database {} on Redis at {place}: {}",
                        target.db,
                        e.detail().unwrap_or("refused")
                    ),
                );
            }
            if e.kind() == redis::ErrorKind::Parse {
                // The first reply, to AUTH or PING, is not RESP: something else listens there.
                return fail(
                    Kind::Unavailable,
                    format!(
                        "{place} is not a Redis server (its reply is not the Redis protocol; \
                         is the port right?)"
                    ),
                );
            }
            if let Some(why) = tls_refusal(&e) {
                // A handshake refused over a certificate fails the same way on every retry.
                return fail(
                    Kind::Unavailable,
                    format!("cannot connect to Redis at {place}: TLS: {why}"),
                );
            }
            redis_failure(
                &e,
                format!("cannot connect to Redis at {place}: {}", redis_message(&e)),
            )
        };
        let client = client_for(target, &cfg.source)?;
        let mut conn = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(wrap)?;
        conn.set_read_timeout(Some(IO_TIMEOUT)).map_err(wrap)?;
        conn.set_write_timeout(Some(IO_TIMEOUT)).map_err(wrap)?;
        redis::cmd("PING").query::<()>(&mut conn).map_err(wrap)?;
        // A Sentinel answers PING like a server and fails later with generic errors (an
        // unknown command); say what it is, at once. A Cluster node says so too
        // (`redis_mode:cluster`, which Redis sets exactly when `cluster_enabled:1`): each
        // command then goes to its slot's master. A user who may not run INFO is not refused
        // for that.
        let mut cluster = false;
        let mut info_refused = false;
        match redis::cmd("INFO").arg("server").query::<String>(&mut conn) {
            Ok(info) => {
                if let Some(why) =
                    unsupported_mode(&info, &place).or_else(|| too_old(&info, &place))
                {
                    return Err(fail(Kind::Unavailable, why));
                }
                cluster = is_cluster_node(&info);
            }
            Err(e) => info_refused = crate::exit::server_code(&e).as_deref() == Some("NOPERM"),
        }
        Ok((
            Store {
                conn,
                place,
                broken: false,
                min_replicas: (target.min_replicas_acked, target.min_replicas_timeout),
                cluster: None,
                info_refused,
            },
            cluster,
        ))
    }

    /// After a write that must survive a failover (rj-launch's recording, rj-track's moves):
    /// `WAIT n timeout` for the `"min_replicas_acked"` replicas of redis.json (none: nothing
    /// is sent). Replication is asynchronous, so without it a write the master acknowledged can
    /// die with the master before any replica has it (ARCHITECTURE.md §3). Fewer replicas in
    /// time is a transient failure: the write stands on the master, and the caller treats it
    /// as not yet safe (rj-launch spools the ID; recording again is idempotent).
    pub fn wait_replicas(&mut self) -> anyhow::Result<()> {
        let (n, timeout) = self.min_replicas;
        if n == 0 {
            return Ok(());
        }
        let ms = timeout.as_millis() as u64;
        let acked: u64 = self.query(redis::cmd("WAIT").arg(n).arg(ms), "WAIT")?;
        if acked < u64::from(n) {
            return Err(fail_transient(
                Kind::Unavailable,
                format!(
                    "Redis {}: {acked} of the {n} replicas asked for (\"min_replicas_acked\") \
                     acknowledged the write within {ms} ms; a failover now could lose it",
                    self.place
                ),
            ));
        }
        Ok(())
    }

    /// Warn on stderr, once per process, when the server may evict keys it was not told may
    /// go (`maxmemory-policy allkeys-*`): under memory pressure it would delete the tag's sets
    /// and records, and the ledger would silently lose jobs. Read from `INFO memory`, which
    /// restricted users may run where `CONFIG GET` is refused; a server that refuses INFO too
    /// is not second-guessed.
    pub fn warn_if_evicting(&mut self) {
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if WARNED.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let info: String = match redis::cmd("INFO").arg("memory").query(&mut self.conn) {
            Ok(i) => i,
            Err(e) => {
                crate::cli::info(&format!(
                    "cannot read the eviction policy of Redis {} (INFO memory): {}",
                    self.place,
                    redis_message(&e)
                ));
                return;
            }
        };
        if let Some(w) = eviction_warning(&info, &self.place) {
            WARNED.store(true, std::sync::atomic::Ordering::Relaxed);
            crate::cli::warn(&w);
        }
    }

    pub fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Run a command, naming the server and the key on failure.
    pub fn query<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        what: &str,
    ) -> anyhow::Result<T> {
        self.query_raw(cmd).map_err(|e| self.error(e, what))
    }

    /// Run a command within one [`IO_TIMEOUT`]; the caller names what failed.
    pub fn query_raw<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        if let Some(c) = &mut self.cluster {
            c.unreached = None;
            return cmd.query(&mut Routed {
                store: self,
                pipe: None,
            });
        }
        self.bounded(|c| cmd.query(c))
    }

    /// Run a pipeline (or a MULTI/EXEC, for an atomic one) within one [`IO_TIMEOUT`]; the
    /// caller names what failed.
    pub fn pipe_raw<T: redis::FromRedisValue>(
        &mut self,
        p: &redis::Pipeline,
    ) -> redis::RedisResult<T> {
        if let Some(c) = &mut self.cluster {
            c.unreached = None;
            return p.query(&mut Routed {
                store: self,
                pipe: Some(p),
            });
        }
        self.bounded(|c| p.query(c))
    }

    /// [`Store::pipe_raw`], naming the server and `what` on failure.
    pub fn pipe<T: redis::FromRedisValue>(
        &mut self,
        p: &redis::Pipeline,
        what: &str,
    ) -> anyhow::Result<T> {
        self.pipe_raw(p).map_err(|e| self.error(e, what))
    }

    fn bounded<T>(
        &mut self,
        f: impl FnOnce(&mut Bounded<'_>) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        if self.broken {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "connection given up after a timeout or a dropped connection",
            )
            .into());
        }
        let mut b = Bounded::new(&mut self.conn);
        let r = f(&mut b);
        if b.lost {
            self.broken = true;
        }
        r
    }

    pub fn error(&self, e: redis::RedisError, what: &str) -> anyhow::Error {
        let place = self
            .cluster
            .as_ref()
            .and_then(|c| c.unreached.as_deref())
            .unwrap_or(&self.place);
        let code = crate::exit::server_code(&e);
        if self.info_refused
            && self.cluster.is_none()
            && matches!(code.as_deref(), Some("MOVED" | "ASK"))
        {
            // Not the resharding a MOVED usually means: rj is talking to a cluster node as to
            // a plain server, and will again on every retry.
            return fail(
                Kind::NoPerm,
                format!(
                    "Redis {place} failed at {what}: {} {}: the server is a Redis Cluster node, \
                     and this Redis user may not run INFO, which is how rj tells one; the \
                     user needs +info, +cluster|slots and +asking",
                    code.unwrap_or_default(),
                    first_detail(&e)
                ),
            );
        }
        redis_failure(
            &e,
            format!("Redis {place} failed at {what}: {}", redis_message(&e)),
        )
    }

    /// Record jobs atomically (ARCHITECTURE.md §2): [`Store::record_jobs`] of a list of
    /// (ID, hash fields). The IDs already recorded come back.
    pub fn record(
        &mut self,
        keys: &Keys,
        events_max: u64,
        jobs: &[(String, Vec<(String, String)>)],
    ) -> anyhow::Result<Vec<String>> {
        self.route(keys)?;
        self.record_jobs(keys, events_max, jobs).map_err(|(e, _)| e)
    }

    /// All members of a set, by SSCAN (never one huge SMEMBERS reply), sorted as job IDs.
    pub fn members(&mut self, key: &str) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = self.query(
                redis::cmd("SSCAN")
                    .arg(key)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(BATCH),
                key,
            )?;
            out.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        // SSCAN may return an element more than once.
        out.sort_by_cached_key(|s| IdKey::of(s));
        out.dedup();
        Ok(out)
    }

    pub fn card(&mut self, key: &str) -> anyhow::Result<u64> {
        self.query(redis::cmd("SCARD").arg(key), key)
    }

    /// Job hashes of many jobs in one pipeline, in the order asked.
    pub fn job_hashes(
        &mut self,
        keys: &Keys,
        ids: &[String],
    ) -> anyhow::Result<Vec<BTreeMap<String, String>>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH) {
            let mut p = redis::pipe();
            for id in chunk {
                p.cmd("HGETALL").arg(keys.job_hash(id));
            }
            let part: Vec<BTreeMap<String, String>> = self.pipe_raw(&p).map_err(|e| {
                // Name the one hash that failed (WRONGTYPE), not the whole pattern.
                let at = crate::exit::first_server_error(&e)
                    .and_then(|(i, _)| chunk.get(i))
                    .map(|id| keys.job_hash(id))
                    .unwrap_or_else(|| keys.job_hash_pattern());
                self.error(e, &at)
            })?;
            out.extend(part);
        }
        Ok(out)
    }

    /// UNLINK keys in batches; returns how many existed.
    pub fn unlink(&mut self, keys: &[String]) -> anyhow::Result<u64> {
        let mut n = 0;
        for chunk in keys.chunks(BATCH) {
            n += self.query::<u64>(redis::cmd("UNLINK").arg(chunk), &chunk[0])?;
        }
        Ok(n)
    }
}

/// Is the server whose `INFO server` reply this is a Redis Cluster node?
pub fn is_cluster_node(info: &str) -> bool {
    info.lines()
        .any(|l| l.trim_end().strip_prefix("redis_mode:") == Some("cluster"))
}

/// Why rj cannot work with the server whose `INFO server` reply this is: a Sentinel (named as
/// if it were the server); None for a plain server or a Redis Cluster node.
pub fn unsupported_mode(info: &str, place: &str) -> Option<String> {
    let mode = info
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("redis_mode:"))?;
    match mode {
        "sentinel" => Some(format!(
            "{place} is a Redis Sentinel, not the server: name it in \"sentinels\" with the \
             \"master\" it monitors (or use redis+sentinel://host:port/MASTER) and rj asks it \
             for the master"
        )),
        _ => None,
    }
}

/// The oldest Redis rj works with: 6.2 brought SMISMEMBER, with which every tool reads the
/// sets (Valkey, which says `redis_version:7.2.4`, and KeyDB, 6.3, are newer).
pub const MIN_REDIS: (u32, u32) = (6, 2);

/// Why rj cannot work with the server whose `INFO server` reply this is: a Redis older than
/// [`MIN_REDIS`], said before anything is written; None when it is new enough or says no
/// version.
pub fn too_old(info: &str, place: &str) -> Option<String> {
    let version = info
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("redis_version:"))?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) else {
        return None;
    };
    ((major, minor) < MIN_REDIS).then(|| {
        format!(
            "Redis {place} is version {version}; rj needs Redis {}.{} or later (it reads the job \
             sets with SMISMEMBER); nothing was written to it",
            MIN_REDIS.0, MIN_REDIS.1
        )
    })
}

/// The warning for an `INFO memory` reply whose `maxmemory_policy` evicts any key; None for
/// `noeviction` and the `volatile-*` policies (which only take keys with a TTL).
pub fn eviction_warning(info: &str, place: &str) -> Option<String> {
    let policy = info
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("maxmemory_policy:"))?;
    policy.starts_with("allkeys-").then(|| {
        format!(
            "Redis {place} has maxmemory-policy {policy}: when memory fills it deletes any key, \
             the tag's job sets and records among them; set maxmemory-policy noeviction \
             (or volatile-lru with rj-track --record-ttl, so only expiring records can go)"
        )
    })
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn stream_to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        other => format!("{other:?}"),
    };
    let Value::Array(entries) = v else {
        return J::Null;
    };
    J::Array(
        entries
            .iter()
            .filter_map(|e| match e {
                Value::Array(pair) if pair.len() == 2 => {
                    let mut m = serde_json::Map::new();
                    if let Value::Array(fv) = &pair[1] {
                        for kv in fv.chunks(2) {
                            if let [k, v] = kv {
                                m.insert(text(k), J::String(text(v)));
                            }
                        }
                    }
                    Some(J::Array(vec![J::String(text(&pair[0])), J::Object(m)]))
                }
                _ => None,
            })
            .collect(),
    )
}

/// The server's words without redis-rs's decoration; never holds the password (rj never puts it
/// in a command it could echo).
pub fn redis_message(e: &redis::RedisError) -> String {
    let m = redis_message_raw(e);
    // One line, whatever the client library wraps in it.
    m.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn redis_message_raw(e: &redis::RedisError) -> String {
    if let Some(code) = crate::exit::server_code(e) {
        let hint = match code.as_str() {
            "MOVED" => {
                "; the slot moved to another master (a resharding or a failover): a retry \
                        asks the cluster again"
            }
            "ASK" => "; the slot is being moved to another master: a retry finds it",
            "CROSSSLOT" => {
                "; on a Redis Cluster a tag needs a hash tag, {tag}, so that its keys \
                            share one slot"
            }
            // A server before 6.2 for a user refused INFO, which would have told (`too_old`).
            "ERR"
                if {
                    let d = first_detail(e).to_ascii_lowercase();
                    d.contains("unknown command") && d.contains("smismember")
                } =>
            {
                "; SMISMEMBER came with Redis 6.2: rj needs a server of 6.2 or later"
            }
            _ => "",
        };
        if !hint.is_empty() {
            return format!("{code} {}{hint}", first_detail(e));
        }
        // The server's own words, `CODE detail`, as redis-cli shows them.
        return format!("{code} {}", first_detail(e)).trim_end().to_string();
    }
    if e.is_connection_refusal() {
        if let Some(io) =
            std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>())
        {
            return io.to_string();
        }
    }
    if e.is_timeout() {
        return "timed out".into();
    }
    e.to_string()
}

/// The server's words after the error code, also out of a pipeline's first failure.
fn first_detail(e: &redis::RedisError) -> String {
    if let Some(d) = e.detail() {
        return d.to_string();
    }
    crate::exit::first_server_error(e)
        .and_then(|(_, s)| s.details().map(str::to_string))
        .unwrap_or_default()
}

/// IDs of `ids` that are members of `set` (SMISMEMBER in batches).
pub fn filter_members(
    store: &mut Store,
    set: &str,
    ids: &[String],
) -> anyhow::Result<HashSet<String>> {
    let mut out = HashSet::new();
    for chunk in ids.chunks(BATCH) {
        let hit: Vec<bool> = store.query(redis::cmd("SMISMEMBER").arg(set).arg(chunk), set)?;
        out.extend(
            chunk
                .iter()
                .zip(hit)
                .filter(|(_, h)| *h)
                .map(|(id, _)| id.clone()),
        );
    }
    Ok(out)
}

/// Key names as bytes: jobs name their keys with whatever their language allows, and one name
/// that is not UTF-8 must neither hide the rest of a tag's keys nor survive a deletion because
/// rj could only spell it lossily.
impl Store {
    /// Every key matching a glob, by SCAN, as the server's bytes, sorted and without repeats.
    pub fn scan_bytes(&mut self, pattern: &str) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        self.scan_each(pattern, BATCH, |k| out.push(k))?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// UNLINK keys given as bytes, in batches; returns how many existed.
    pub fn unlink_bytes(&mut self, keys: &[Vec<u8>]) -> anyhow::Result<u64> {
        let mut n = 0;
        for chunk in keys.chunks(BATCH) {
            n += self.query::<u64>(redis::cmd("UNLINK").arg(chunk), &lossy(&chunk[0]))?;
        }
        Ok(n)
    }

    /// Read a key (its name as bytes) of any type as a JSON value: strings as text, hashes as
    /// objects, lists and sets as arrays, sorted sets as `[member, score]` pairs, streams as
    /// `[id, {field: value}]`. Errors name the key lossily.
    pub fn read_value_bytes(&mut self, key: &[u8]) -> anyhow::Result<(String, serde_json::Value)> {
        use serde_json::Value as J;
        let name = lossy(key);
        let ty: String = self.query(redis::cmd("TYPE").arg(key), &name)?;
        let v = match ty.as_str() {
            "string" => {
                let b: Vec<u8> = self.query(redis::cmd("GET").arg(key), &name)?;
                J::String(lossy(&b))
            }
            "hash" => {
                let m: Vec<(Vec<u8>, Vec<u8>)> =
                    self.query(redis::cmd("HGETALL").arg(key), &name)?;
                let m: BTreeMap<String, String> =
                    m.iter().map(|(k, v)| (lossy(k), lossy(v))).collect();
                serde_json::to_value(m)?
            }
            "list" => {
                let l: Vec<Vec<u8>> =
                    self.query(redis::cmd("LRANGE").arg(key).arg(0).arg(-1), &name)?;
                serde_json::to_value(l.iter().map(|b| lossy(b)).collect::<Vec<_>>())?
            }
            "set" => {
                let s: Vec<Vec<u8>> = self.query(redis::cmd("SMEMBERS").arg(key), &name)?;
                let mut s: Vec<String> = s.iter().map(|b| lossy(b)).collect();
                s.sort();
                serde_json::to_value(s)?
            }
            "zset" => {
                let z: Vec<(Vec<u8>, f64)> = self.query(
                    redis::cmd("ZRANGE")
                        .arg(key)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES"),
                    &name,
                )?;
                serde_json::to_value(z.iter().map(|(m, s)| (lossy(m), *s)).collect::<Vec<_>>())?
            }
            "stream" => {
                let raw: Value =
                    self.query(redis::cmd("XRANGE").arg(key).arg("-").arg("+"), &name)?;
                stream_to_json(&raw)
            }
            "none" => J::Null,
            other => J::String(format!("<{other}>")),
        };
        Ok((ty, v))
    }
}

/// Reading the keys of many jobs at once: one SCAN pass whose matches are filtered as they come
/// (the keyspace may hold millions of other keys, and only the wanted names are kept), then
/// typed reads pipelined in batches instead of two round trips per key.
impl Store {
    /// Walk every key matching a glob with SCAN, `count` keys per step, handing each name (the
    /// server's bytes) to `keep` as it comes. SCAN may hand a name more than once: callers dedup.
    pub fn scan_each(
        &mut self,
        pattern: &str,
        count: usize,
        mut keep: impl FnMut(Vec<u8>),
    ) -> anyhow::Result<()> {
        if self.cluster.is_none() {
            return self.scan_node(pattern, count, &mut keep);
        }
        // Each master holds the keys of its own slots: SCAN them all, with the slot map as it
        // is now. The node in use before is the node in use after.
        self.refresh_slots()?;
        let c = self.cluster.as_ref().expect("a cluster");
        let (back, masters) = (c.current, c.map.masters());
        for m in masters {
            self.switch(m).map_err(|e| self.error(e, pattern))?;
            self.scan_node(pattern, count, &mut keep)?;
        }
        // Each later command finds its own node: going back only keeps the raw connection
        // (`Store::conn`) where it was, and is no reason to fail a finished SCAN.
        let _ = self.switch(back);
        Ok(())
    }

    /// SCAN one node (the one in use).
    fn scan_node(
        &mut self,
        pattern: &str,
        count: usize,
        keep: &mut impl FnMut(Vec<u8>),
    ) -> anyhow::Result<()> {
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = self.query(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(count),
                pattern,
            )?;
            batch.into_iter().for_each(&mut *keep);
            cursor = next;
            if cursor == 0 {
                return Ok(());
            }
        }
    }

    /// [`Store::read_value_bytes`] for many keys in two round trips: TYPE for all of them, then
    /// the read each type needs. The values are the same as one by one; a key that vanished in
    /// between is `("none", null)`, and one whose type changed in between is read again alone.
    pub fn read_values_bytes(
        &mut self,
        keys: &[&[u8]],
    ) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = redis::pipe();
        p.ignore_errors();
        for k in keys {
            p.cmd("TYPE").arg(k);
        }
        let types: Vec<Value> = self.pipe(&p, &lossy(keys[0]))?;
        let mut kinds = Vec::with_capacity(keys.len());
        for (k, t) in keys.iter().zip(types) {
            match t {
                Value::ServerError(e) => return Err(self.error(e.into(), &lossy(k))),
                t => kinds.push(redis::from_redis_value::<String>(t).map_err(|e| {
                    fail(
                        Kind::DataErr,
                        format!(
                            "Redis {} sent a TYPE reply for {} that is not a type name: {e}",
                            self.place,
                            lossy(k)
                        ),
                    )
                })?),
            }
        }
        let mut p = redis::pipe();
        p.ignore_errors();
        let mut sent = Vec::with_capacity(keys.len());
        for (i, (k, ty)) in keys.iter().zip(&kinds).enumerate() {
            match ty.as_str() {
                "string" => p.cmd("GET").arg(k),
                "hash" => p.cmd("HGETALL").arg(k),
                "list" => p.cmd("LRANGE").arg(k).arg(0).arg(-1),
                "set" => p.cmd("SMEMBERS").arg(k),
                "zset" => p.cmd("ZRANGE").arg(k).arg(0).arg(-1).arg("WITHSCORES"),
                "stream" => p.cmd("XRANGE").arg(k).arg("-").arg("+"),
                // "none" (gone since SCAN) and module types are shown without a read.
                _ => continue,
            };
            sent.push(i);
        }
        let replies: Vec<Value> = if sent.is_empty() {
            Vec::new()
        } else {
            self.pipe(&p, &lossy(keys[sent[0]]))?
        };
        let mut out: Vec<(String, serde_json::Value)> = kinds
            .iter()
            .map(|ty| {
                let v = match ty.as_str() {
                    "none" => serde_json::Value::Null,
                    other => serde_json::Value::String(format!("<{other}>")),
                };
                (ty.clone(), v)
            })
            .collect();
        for (i, reply) in sent.into_iter().zip(replies) {
            let name = lossy(keys[i]);
            let v = match reply {
                // The key was replaced by one of another type after its TYPE.
                Value::ServerError(e) if e.code() == "WRONGTYPE" => {
                    out[i] = self.read_value_bytes(keys[i])?;
                    continue;
                }
                Value::ServerError(e) => return Err(self.error(e.into(), &name)),
                v => v,
            };
            out[i] = Self::typed_json(&kinds[i], v).map_err(|e| {
                fail(
                    Kind::DataErr,
                    format!(
                        "Redis {} sent a reply for {name} (a {}) that rj cannot read: {e:#}",
                        self.place, kinds[i]
                    ),
                )
            })?;
        }
        Ok(out)
    }

    /// One read reply as [`Store::read_value_bytes`] shows it. Redis has no empty hashes, lists,
    /// sets or streams, so an empty reply means the key expired after its TYPE: `none`.
    fn typed_json(ty: &str, v: Value) -> anyhow::Result<(String, serde_json::Value)> {
        use serde_json::Value as J;
        let gone = match &v {
            Value::Nil => true,
            Value::Array(a) => a.is_empty(),
            Value::Map(m) => m.is_empty(),
            Value::Set(s) => s.is_empty(),
            _ => false,
        };
        if gone {
            return Ok(("none".into(), J::Null));
        }
        let j = match ty {
            "string" => J::String(lossy(&redis::from_redis_value::<Vec<u8>>(v)?)),
            "hash" => {
                let m: Vec<(Vec<u8>, Vec<u8>)> = redis::from_redis_value(v)?;
                let m: BTreeMap<String, String> =
                    m.iter().map(|(k, v)| (lossy(k), lossy(v))).collect();
                serde_json::to_value(m)?
            }
            "list" => {
                let l: Vec<Vec<u8>> = redis::from_redis_value(v)?;
                serde_json::to_value(l.iter().map(|b| lossy(b)).collect::<Vec<_>>())?
            }
            "set" => {
                let s: Vec<Vec<u8>> = redis::from_redis_value(v)?;
                let mut s: Vec<String> = s.iter().map(|b| lossy(b)).collect();
                s.sort();
                serde_json::to_value(s)?
            }
            "zset" => {
                let z: Vec<(Vec<u8>, f64)> = redis::from_redis_value(v)?;
                serde_json::to_value(z.iter().map(|(m, s)| (lossy(m), *s)).collect::<Vec<_>>())?
            }
            "stream" => stream_to_json(&v),
            other => J::String(format!("<{other}>")),
        };
        Ok((ty.to_string(), j))
    }
}

/// Default of `--events-max`: the `T_EVENTS` stream is trimmed to about this many entries
/// (`XADD … MAXLEN ~`); 0 writes no event.
pub const EVENTS_MAX: u64 = 100_000;

/// Jobs to record: each one's ID as stored and its hash's fields. The fields come as two
/// slices (what every job of one invocation shares, then the job's own) so that a million jobs
/// need no copy of the shared ones each.
pub trait Recordable {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn id(&self, i: usize) -> String;
    fn fields(&self, i: usize) -> [&[(String, String)]; 2];
}

impl Recordable for [(String, Vec<(String, String)>)] {
    fn len(&self) -> usize {
        <[_]>::len(self)
    }
    fn id(&self, i: usize) -> String {
        self[i].0.clone()
    }
    fn fields(&self, i: usize) -> [&[(String, String)]; 2] {
        [&self[i].1, &[]]
    }
}

/// RESP encoding straight into one buffer: recording a million jobs builds a million HSETs and
/// XADDs, and a `redis::Cmd` each (with its allocations) cost more than the server's work.
fn resp_array(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    resp_num(out, n);
    out.extend_from_slice(b"\r\n");
}

fn resp_bulk(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.push(b'$');
    resp_num(out, parts.iter().map(|p| p.len()).sum());
    out.extend_from_slice(b"\r\n");
    for p in parts {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b"\r\n");
}

fn resp_num(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn resp_cmd(out: &mut Vec<u8>, words: &[&[u8]]) {
    resp_array(out, words.len());
    for w in words {
        resp_bulk(out, &[w]);
    }
}

/// The key names and constant words of one recording call.
struct Recorder {
    all: String,
    pending: String,
    events: String,
    /// `T_JOB:`, which the ID completes.
    job_prefix: String,
    /// `MAXLEN ~ N` of each XADD, as text; None when no event is written.
    events_max: Option<String>,
    /// `tracked_at` of a job whose fields have no `submitted` time.
    now: String,
    /// A job's XADD to `T_EVENTS` in RESP, but for its ID (after the head) and its time (after
    /// the middle); None when no event is written.
    xadd: Option<[Vec<u8>; 3]>,
    /// Jobs per transaction: [`TX_BATCH`], halved after an EXEC that another writer aborted (a
    /// smaller chunk is WATCHed for less time), grown back after each success.
    size: std::cell::Cell<usize>,
}

/// One chunk of jobs, encoded before its turn so that the client builds it while the server
/// runs the chunk before.
struct Chunk {
    start: usize,
    ids: Vec<String>,
    /// Which jobs get a hash (those with fields): only their `T_JOB:<id>` is written.
    hashed: Vec<bool>,
    /// `WATCH` of every key the chunk may write, the `TYPE` of `T_ALL`, `T_PENDING_AND_RUNNING`
    /// (and `T_EVENTS`), `SMISMEMBER T_ALL <ids>`, then the `TYPE` of each job hash to write.
    look: Vec<u8>,
    /// Replies the look gets.
    look_replies: usize,
    /// Each job's queued commands (its HSET, its XADD), one job after the other.
    body: Vec<u8>,
    /// Where each job's commands end in `body`, and how many there are.
    ends: Vec<(usize, u8)>,
    /// `body` and `ends` are encoded.
    filled: bool,
}

/// What went wrong in a chunk: a server or connection error and the key to name, or a key of the
/// wrong type found before anything was written.
enum Refused {
    Redis(redis::RedisError, String),
    WrongType {
        key: String,
        is: String,
        want: &'static str,
    },
}

/// The type a key must have to be written (`none`: it does not exist yet), or the refusal.
fn want_type(key: &str, v: Option<Value>, want: &'static str) -> Result<(), Refused> {
    match v {
        Some(Value::SimpleString(t)) if t == "none" || t == want => Ok(()),
        Some(Value::SimpleString(t)) => Err(Refused::WrongType {
            key: key.to_string(),
            is: t,
            want,
        }),
        Some(Value::ServerError(e)) => Err(Refused::Redis(e.into(), key.to_string())),
        other => Err(Refused::Redis(
            redis::make_extension_error(
                "PROTOCOL".into(),
                Some(format!("unexpected reply to TYPE: {other:?}")),
            ),
            key.to_string(),
        )),
    }
}

impl Recorder {
    fn new(keys: &Keys, events_max: u64) -> Recorder {
        let events = keys.events();
        let xadd = (events_max > 0).then(|| {
            let words = |ws: &[&[u8]]| {
                let mut out = Vec::new();
                for w in ws {
                    resp_bulk(&mut out, &[w]);
                }
                out
            };
            // The T_EVENTS contract (ARCHITECTURE.md §2): these fields, in this order.
            let mut head = Vec::new();
            resp_array(&mut head, 18);
            head.extend(words(&[
                b"XADD",
                events.as_bytes(),
                b"MAXLEN",
                b"~",
                events_max.to_string().as_bytes(),
                b"*",
                b"job",
            ]));
            let mid = words(&[
                b"set",
                Set::PendingAndRunning.suffix().as_bytes(),
                b"state",
                b"recorded",
                b"exit_code",
                b"",
                b"tracked_at",
            ]);
            let tail = words(&[b"tracker", b"rj-launch"]);
            [head, mid, tail]
        });
        Recorder {
            all: keys.set(Set::All),
            pending: keys.set(Set::PendingAndRunning),
            events,
            job_prefix: keys.job_hash(""),
            events_max: (events_max > 0).then(|| events_max.to_string()),
            now: crate::cmd::now_rfc3339(),
            xadd,
            size: std::cell::Cell::new(TX_BATCH),
        }
    }

    /// The chunk of jobs from `start`: its IDs and its look; [`Recorder::fill`] adds the rest.
    fn chunk(&self, jobs: &(impl Recordable + ?Sized), start: usize) -> Chunk {
        let end = (start + self.size.get()).min(jobs.len());
        let ids: Vec<String> = (start..end).map(|i| jobs.id(i)).collect();
        let hashed: Vec<bool> = (start..end)
            .map(|i| jobs.fields(i).iter().any(|f| !f.is_empty()))
            .collect();
        let n_hashes = hashed.iter().filter(|h| **h).count();
        let prefix = self.job_prefix.as_bytes();
        let mut look = Vec::with_capacity(128 + ids.len() * 40);
        // Everything the transaction may write is WATCHed before its type is read, so that a
        // key changed after the look (a hash made a string) aborts the EXEC instead of
        // failing one command inside it while the others run (ARCHITECTURE.md §2). T_ALL,
        // which other recorders change, comes last: Redis 7.0 takes time linear in the keys
        // already watched for each one (quadratic for the chunk), and T_ALL's window opens
        // only once that is done.
        let mut sets: Vec<&[u8]> = vec![self.all.as_bytes(), self.pending.as_bytes()];
        if self.events_max.is_some() {
            sets.push(self.events.as_bytes());
        }
        resp_array(&mut look, 1 + sets.len() + n_hashes);
        resp_bulk(&mut look, &[b"WATCH"]);
        for (id, _) in ids.iter().zip(&hashed).filter(|(_, h)| **h) {
            resp_bulk(&mut look, &[prefix, id.as_bytes()]);
        }
        for k in sets.iter().rev() {
            resp_bulk(&mut look, &[k]);
        }
        for k in &sets {
            resp_cmd(&mut look, &[b"TYPE", k]);
        }
        resp_array(&mut look, 2 + ids.len());
        resp_bulk(&mut look, &[b"SMISMEMBER"]);
        resp_bulk(&mut look, &[self.all.as_bytes()]);
        for id in &ids {
            resp_bulk(&mut look, &[id.as_bytes()]);
        }
        // One TYPE each (not EXISTS, which rj-launch's least-privilege user does not have): the
        // path of users refused EVAL, whose speed matters less than their ACL.
        for (id, _) in ids.iter().zip(&hashed).filter(|(_, h)| **h) {
            resp_cmd(&mut look, &[b"TYPE", &[prefix, id.as_bytes()].concat()]);
        }
        Chunk {
            start,
            ids,
            look_replies: 1 + sets.len() + 1 + n_hashes,
            hashed,
            look,
            body: Vec::new(),
            ends: Vec::new(),
            filled: false,
        }
    }

    /// Encode the queued commands of each job of the chunk. The fields every job shares are
    /// encoded once (for as long as consecutive jobs hand the same slice), and the XADD's
    /// constant words were encoded by [`Recorder::new`]: a job costs its ID and its own fields.
    fn fill(&self, jobs: &(impl Recordable + ?Sized), chunk: &mut Chunk) {
        if chunk.filled {
            return;
        }
        let mut body = Vec::with_capacity(chunk.ids.len() * 320);
        let mut ends = Vec::with_capacity(chunk.ids.len());
        let mut shared: Option<&[(String, String)]> = None;
        let mut shared_resp = Vec::new();
        let mut shared_at: Option<&str> = None;
        for (i, id) in (chunk.start..).zip(&chunk.ids) {
            let [common, own] = jobs.fields(i);
            if !shared.is_some_and(|s| std::ptr::eq(s, common)) {
                shared = Some(common);
                shared_resp.clear();
                for (k, v) in common {
                    resp_bulk(&mut shared_resp, &[k.as_bytes()]);
                    resp_bulk(&mut shared_resp, &[v.as_bytes()]);
                }
                shared_at = submitted(common);
            }
            let n = common.len() + own.len();
            let mut cmds = 0;
            if n > 0 {
                resp_array(&mut body, 2 + 2 * n);
                resp_bulk(&mut body, &[b"HSET"]);
                resp_bulk(&mut body, &[self.job_prefix.as_bytes(), id.as_bytes()]);
                body.extend_from_slice(&shared_resp);
                for (k, v) in own {
                    resp_bulk(&mut body, &[k.as_bytes()]);
                    resp_bulk(&mut body, &[v.as_bytes()]);
                }
                cmds += 1;
            }
            if let Some([head, mid, tail]) = &self.xadd {
                let at = shared_at.or_else(|| submitted(own)).unwrap_or(&self.now);
                body.extend_from_slice(head);
                resp_bulk(&mut body, &[id.as_bytes()]);
                body.extend_from_slice(mid);
                resp_bulk(&mut body, &[at.as_bytes()]);
                body.extend_from_slice(tail);
                cmds += 1;
            }
            ends.push((body.len(), cmds));
        }
        chunk.body = body;
        chunk.ends = ends;
        chunk.filled = true;
    }

    /// Read what a chunk's look found: the types of the sets, the stream and the job hashes of
    /// its new jobs, and which of its IDs `T_ALL` has. The replies are read whole before any
    /// is judged, so that the connection stays in step.
    fn judge_look(&self, replies: Vec<Value>, chunk: &Chunk) -> Result<Vec<bool>, Refused> {
        let n = chunk.ids.len();
        let mut it = replies.into_iter();
        let refused = |e: redis::ServerError, key: &str| Refused::Redis(e.into(), key.to_string());
        if let Some(Value::ServerError(e)) = it.next() {
            return Err(refused(e, &self.all));
        }
        want_type(&self.all, it.next(), "set")?;
        want_type(&self.pending, it.next(), "set")?;
        if self.events_max.is_some() {
            want_type(&self.events, it.next(), "stream")?;
        }
        let known = match it.next() {
            Some(Value::ServerError(e)) => return Err(refused(e, &self.all)),
            Some(v) => match redis::from_redis_value::<Vec<bool>>(v) {
                Ok(known) if known.len() == n => known,
                Ok(known) => {
                    return Err(Refused::Redis(
                        redis::make_extension_error(
                            "PROTOCOL".into(),
                            Some(format!("SMISMEMBER answered {} of {n} IDs", known.len())),
                        ),
                        self.all.clone(),
                    ))
                }
                Err(e) => return Err(Refused::Redis(e.into(), self.all.clone())),
            },
            None => return Err(self.unreadable(&self.all, None)),
        };
        // The hashes of the jobs already recorded are not written: their types do not matter.
        for (i, _) in chunk.hashed.iter().enumerate().filter(|(_, h)| **h) {
            let v = it.next();
            if !known[i] {
                want_type(&format!("{}{}", self.job_prefix, chunk.ids[i]), v, "hash")?;
            }
        }
        Ok(known)
    }

    fn unreadable(&self, key: &str, v: Option<Value>) -> Refused {
        Refused::Redis(
            redis::make_extension_error("PROTOCOL".into(), Some(format!("unexpected reply {v:?}"))),
            key.to_string(),
        )
    }

    /// The key the `idx`-th command of a chunk's transaction writes (for naming a failure).
    fn queued_key(&self, chunk: &Chunk, new: &[usize], idx: usize) -> String {
        match idx {
            0 => return self.all.clone(),
            1 => return self.pending.clone(),
            _ => {}
        }
        let mut at = 2;
        for &j in new {
            let cmds = chunk.ends[j].1 as usize;
            if idx < at + cmds {
                let hset = self.events_max.is_none() || cmds == 2;
                return if idx == at && hset {
                    format!("{}{}", self.job_prefix, chunk.ids[j])
                } else {
                    self.events.clone()
                };
            }
            at += cmds;
        }
        self.all.clone()
    }
}

/// Jobs per MULTI/EXEC on the path of users refused EVAL: fewer than a script's, because each
/// job's hash is WATCHed, and Redis 7.0 compares every key a WATCH adds with every key the
/// connection watches already (time quadratic in the chunk). 100 a chunk cost the server 5.6 G
/// instructions for 100,000 jobs, 250 cost 6.5 G, 1,000 cost 11.2 G (bench/record-ids.md);
/// fewer than 100 add more round trips than they save.
const TX_BATCH: usize = 100;

/// The `submitted` time among a job's fields: the time in its record that its event carries.
fn submitted(fields: &[(String, String)]) -> Option<&str> {
    fields
        .iter()
        .find(|(k, _)| k == "submitted")
        .map(|(_, v)| v.as_str())
}

/// Recording one chunk of jobs in one Lua script (ARCHITECTURE.md §2, §5): atomic, so no WATCH
/// and no retry; it checks, before its first write, that this Redis user may run every write
/// on every key (`redis.acl_check_cmd`) and that every key it writes has its type, because Redis
/// does not roll a script back. Only the IDs `T_ALL` lacks are recorded; the others come back.
///
/// KEYS: `T_ALL`, `T_PENDING_AND_RUNNING`, `T_EVENTS`, then each job's hash, in ARGV's order.
/// ARGV: events max (`0`: no event), the event's `set` and `tracker`, then groups of jobs:
/// n, the n field/value pairs every job of the group shares, the group's `tracked_at`, m, k,
/// then m jobs, each its ID and its own k field/value pairs. (Per group rather than per job,
/// because the script's own work per job is what it adds to the server's cost of the writes.)
///
/// Replies `{0, ID already recorded…}`, `{1, key, type, wanted type}` for a key of the wrong
/// type, `{2}` on a server without `redis.acl_check_cmd` (before 7.0), where the permissions
/// cannot be checked first (the caller records with MULTI/EXEC instead, whose queueing checks
/// them); or a NOPERM error naming the command and the key. Nothing is written but on `{0, …}`.
const RECORD_LUA: &str = r"
if not redis.acl_check_cmd then return {2} end
local all, pending, events, max = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local set, tracker, evented = ARGV[2], ARGV[3], ARGV[1] ~= '0'
local function denied(cmd, key, ...)
  if redis.acl_check_cmd(cmd, key, ...) then return false end
  return 'NOPERM this Redis user may not run ' .. cmd .. ' on ' .. key ..
    ' (recording jobs needs +' .. string.lower(cmd) .. ')'
end
local function wrong(key, want)
  local t = redis.call('TYPE', key).ok
  if t ~= want and t ~= 'none' then return {1, key, t, want} end
  return false
end
-- groups[g] = {first job, last job, shared fields, tracked_at, own pairs per job, ARGV index}
local groups, ids = {}, {}
local p, j = 4, 0
while p <= #ARGV do
  local n = tonumber(ARGV[p])
  local fields = {}
  for i = 1, 2 * n do fields[i] = ARGV[p + i] end
  local m, k = tonumber(ARGV[p + 2 * n + 2]), tonumber(ARGV[p + 2 * n + 3])
  local at = ARGV[p + 2 * n + 1]
  p = p + 2 * n + 4
  groups[#groups + 1] = {j + 1, j + m, fields, at, k, p}
  for _ = 1, m do
    j = j + 1
    ids[j] = ARGV[p]
    p = p + 1 + 2 * k
  end
end
local e = denied('TYPE', all) or denied('TYPE', pending) or denied('SMISMEMBER', all, ids[1])
  or denied('SADD', all, ids[1]) or denied('SADD', pending, ids[1])
  or (evented and (denied('TYPE', events) or denied('XADD', events, 'MAXLEN', '~')))
if e then return redis.error_reply(e) end
local w = wrong(all, 'set') or wrong(pending, 'set') or (evented and wrong(events, 'stream'))
if w then return w end
local known = redis.call('SMISMEMBER', all, unpack(ids))
local out, fresh, hashed = {0}, {}, {}
for _, g in ipairs(groups) do
  local has = #g[3] + g[5] > 0
  for i = g[1], g[2] do
    if known[i] == 1 then
      out[#out + 1] = ids[i]
    else
      fresh[#fresh + 1] = ids[i]
      if has then
        e = denied('HSET', KEYS[3 + i], 'submitted', 'x')
        if e then return redis.error_reply(e) end
        hashed[#hashed + 1] = KEYS[3 + i]
      end
    end
  end
end
if #fresh == 0 then return out end
-- Most job hashes do not exist yet: one EXISTS for them all when this user may run it, a TYPE
-- of each one only when some exist.
local exist = #hashed
if exist > 0 and redis.acl_check_cmd('EXISTS', hashed[1]) then
  exist = redis.call('EXISTS', unpack(hashed))
end
if exist > 0 then
  for _, key in ipairs(hashed) do
    w = wrong(key, 'hash')
    if w then return w end
  end
end
redis.call('SADD', all, unpack(fresh))
redis.call('SADD', pending, unpack(fresh))
for _, g in ipairs(groups) do
  local fields, at, k, q = g[3], g[4], g[5], g[6]
  local has = #fields > 0
  for i = g[1], g[2] do
    if known[i] == 0 then
      if k > 0 then
        local args = {unpack(fields)}
        for x = q + 1, q + 2 * k do args[#args + 1] = ARGV[x] end
        redis.call('HSET', KEYS[3 + i], unpack(args))
      elseif has then
        redis.call('HSET', KEYS[3 + i], unpack(fields))
      end
      if evented then
        redis.call('XADD', events, 'MAXLEN', '~', max, '*', 'job', ids[i], 'set', set,
          'state', 'recorded', 'exit_code', '', 'tracked_at', at, 'tracker', tracker)
      end
    end
    q = q + 1 + 2 * k
  end
end
return out
";

/// One chunk's EVAL of [`RECORD_LUA`], encoded.
struct ScriptChunk {
    start: usize,
    len: usize,
    cmd: Vec<u8>,
}

impl Recorder {
    /// The EVAL recording the jobs from `start` (at most [`crate::spool::RECORD_BATCH`]). The
    /// script's text goes with every chunk (3 KB beside the chunk's 40 KB), as rj-track's do:
    /// Redis finds it in its cache by SHA1, and a restarted server needs no SCRIPT LOAD.
    fn script_chunk(&self, jobs: &(impl Recordable + ?Sized), start: usize) -> ScriptChunk {
        let end = (start + crate::spool::RECORD_BATCH).min(jobs.len());
        let mut args = Vec::with_capacity(256 + (end - start) * 48);
        let mut n_args = 0usize;
        let mut arg = |args: &mut Vec<u8>, parts: &[&[u8]]| {
            resp_bulk(args, parts);
            n_args += 1;
        };
        arg(&mut args, &[(3 + end - start).to_string().as_bytes()]);
        for k in [&self.all, &self.pending, &self.events] {
            arg(&mut args, &[k.as_bytes()]);
        }
        let prefix = self.job_prefix.as_bytes();
        for i in start..end {
            arg(&mut args, &[prefix, jobs.id(i).as_bytes()]);
        }
        arg(
            &mut args,
            &[self.events_max.as_deref().unwrap_or("0").as_bytes()],
        );
        arg(&mut args, &[Set::PendingAndRunning.suffix().as_bytes()]);
        arg(&mut args, &[b"rj-launch"]);
        // Groups: runs of jobs that share their fields (the same slice), their time and the
        // number of their own fields.
        let mut i = start;
        while i < end {
            let [common, own] = jobs.fields(i);
            let at = submitted(common)
                .or_else(|| submitted(own))
                .unwrap_or(&self.now)
                .to_string();
            let mut m = 1;
            while i + m < end {
                let [c, o] = jobs.fields(i + m);
                let same = std::ptr::eq(c, common)
                    && o.len() == own.len()
                    && submitted(c).or_else(|| submitted(o)).unwrap_or(&self.now) == at;
                if !same {
                    break;
                }
                m += 1;
            }
            arg(&mut args, &[common.len().to_string().as_bytes()]);
            for (k, v) in common {
                arg(&mut args, &[k.as_bytes()]);
                arg(&mut args, &[v.as_bytes()]);
            }
            arg(&mut args, &[at.as_bytes()]);
            arg(&mut args, &[m.to_string().as_bytes()]);
            arg(&mut args, &[own.len().to_string().as_bytes()]);
            for x in i..i + m {
                let [_, own] = jobs.fields(x);
                arg(&mut args, &[jobs.id(x).as_bytes()]);
                for (k, v) in own {
                    arg(&mut args, &[k.as_bytes()]);
                    arg(&mut args, &[v.as_bytes()]);
                }
            }
            i += m;
        }
        let mut cmd = Vec::with_capacity(args.len() + RECORD_LUA.len() + 32);
        resp_array(&mut cmd, 2 + n_args);
        resp_bulk(&mut cmd, &[b"EVAL"]);
        resp_bulk(&mut cmd, &[RECORD_LUA.as_bytes()]);
        cmd.extend_from_slice(&args);
        ScriptChunk {
            start,
            len: end - start,
            cmd,
        }
    }

    /// What the script's reply to a chunk says.
    fn judge_script(&self, v: Value) -> Result<Scripted, Refused> {
        let items = match v {
            Value::Array(items) => items,
            Value::ServerError(e) => {
                let e = script_refusal(e);
                let detail = e.detail().unwrap_or_default().to_ascii_lowercase();
                let eval = detail.contains("'eval'");
                return match e.code() {
                    Some("NOPERM") if eval => Ok(Scripted::Fallback("this user is refused EVAL")),
                    Some("ERR") if eval && detail.contains("unknown command") => {
                        Ok(Scripted::Fallback("the server has no EVAL command"))
                    }
                    _ => Err(Refused::Redis(e, self.all.clone())),
                };
            }
            other => return Err(self.unreadable(&self.all, Some(other))),
        };
        let text = |v: &Value| redis::from_redis_value::<String>(v.clone()).ok();
        match items.first() {
            Some(Value::Int(0)) => Ok(Scripted::Done(items[1..].iter().filter_map(text).collect())),
            Some(Value::Int(1)) if items.len() == 4 => {
                let want = match text(&items[3]).as_deref() {
                    Some("set") => "set",
                    Some("stream") => "stream",
                    _ => "hash",
                };
                Err(Refused::WrongType {
                    key: text(&items[1]).unwrap_or_default(),
                    is: text(&items[2]).unwrap_or_default(),
                    want,
                })
            }
            Some(Value::Int(2)) => Ok(Scripted::Fallback(
                "the server has no redis.acl_check_cmd (Redis before 7.0)",
            )),
            _ => Err(self.unreadable(&self.all, Some(Value::Array(items)))),
        }
    }
}

/// A script's error as the command's own: Redis 7 appends the script's SHA and line to the
/// errors of commands run inside it, and turns a refused one into a plain ERR.
fn script_refusal(e: redis::ServerError) -> redis::RedisError {
    let code = e.code().to_string();
    let detail = e.details().unwrap_or_default();
    let detail = match detail.rfind(" script: ") {
        Some(at) if detail[at..].contains("@user_script") => &detail[..at],
        _ => detail,
    };
    let code = if code == "ERR" && detail.contains("can't run this command") {
        "NOPERM".to_string()
    } else {
        code
    };
    redis::make_extension_error(code, Some(detail.to_string()))
}

/// How a chunk's script ended.
enum Scripted {
    /// Written: the IDs that were recorded already.
    Done(Vec<String>),
    /// Nothing written, and this server or user cannot record with the script (why): record
    /// with MULTI/EXEC.
    Fallback(&'static str),
}

/// How a chunk's turn ended.
enum Turn {
    /// Written (or nothing to write): the IDs that were recorded already.
    Done(Vec<String>),
    /// `T_ALL` (or `T_EVENTS`) changed between the look and EXEC: look again.
    Again,
}

impl Store {
    /// Record jobs (ARCHITECTURE.md §2): for IDs not yet in `T_ALL`, `SADD T_ALL`,
    /// `SADD T_PENDING_AND_RUNNING`, the job hashes and (with `events_max` > 0) one `recorded`
    /// entry per job in `T_EVENTS`, in chunks of [`crate::spool::RECORD_BATCH`] jobs, each all
    /// or nothing: an ID already recorded is left where it is (a finished job must not
    /// reappear as pending), gets no event, and comes back. Every key a chunk writes has its
    /// type checked before the chunk's first write; a wrong one writes nothing of the chunk.
    ///
    /// Each chunk is one Lua script ([`RECORD_LUA`]); a user refused EVAL, a server without
    /// EVAL or without `redis.acl_check_cmd` records with WATCHed MULTI/EXECs instead
    /// ([`Store::record_transacted`]), which need no more permissions than rj-launch's
    /// least-privilege user has. On failure: the error and the index of the first job that may
    /// not be recorded (all before it are).
    pub fn record_jobs(
        &mut self,
        keys: &Keys,
        events_max: u64,
        jobs: &(impl Recordable + ?Sized),
    ) -> Result<Vec<String>, (anyhow::Error, usize)> {
        let rec = Recorder::new(keys, events_max);
        let mut already = Vec::new();
        if jobs.is_empty() {
            return Ok(already);
        }
        match self.record_scripted(&rec, jobs, &mut already) {
            Ok(None) => Ok(already),
            Ok(Some((from, why))) => {
                crate::cli::info(&format!(
                    "Redis {}: recording with MULTI/EXEC, not the Lua script: {why}",
                    self.place
                ));
                self.record_transacted(&rec, jobs, from, &mut already)?;
                Ok(already)
            }
            Err((r, start)) => Err((self.refusal(r, jobs, start), start)),
        }
    }

    /// The error of a chunk from `start` that failed with `r`.
    fn refusal(
        &self,
        r: Refused,
        jobs: &(impl Recordable + ?Sized),
        start: usize,
    ) -> anyhow::Error {
        match r {
            Refused::Redis(e, key) => self.error(e, &key),
            Refused::WrongType { key, is, want } => {
                let written = match start {
                    0 => "nothing was written".to_string(),
                    _ => format!(
                        "the jobs before {} are recorded, nothing from it on was written",
                        jobs.id(start)
                    ),
                };
                fail(
                    Kind::DataErr,
                    format!(
                        "Redis {} holds {key} as a {is}, not a {want} (WRONGTYPE); {written}",
                        self.place
                    ),
                )
            }
        }
    }

    /// Record the jobs chunk by chunk with [`RECORD_LUA`], one round trip each; the next chunk
    /// is encoded while the server runs this one. None when all are recorded; else the first
    /// job not recorded and why the script cannot be used (nothing of that chunk written).
    fn record_scripted(
        &mut self,
        rec: &Recorder,
        jobs: &(impl Recordable + ?Sized),
        already: &mut Vec<String>,
    ) -> Result<Option<(usize, &'static str)>, (Refused, usize)> {
        let gone = |e: redis::RedisError| Refused::Redis(e, rec.all.clone());
        let mut chunk = rec.script_chunk(jobs, 0);
        loop {
            let start = chunk.start;
            let end = start + chunk.len;
            let mut next = None;
            let reply = self
                .bounded(|b| {
                    b.send(&chunk.cmd)?;
                    if end < jobs.len() {
                        next = Some(rec.script_chunk(jobs, end));
                    }
                    b.reply()
                })
                .map_err(|e| (gone(e), start))?;
            match rec.judge_script(reply).map_err(|r| (r, start))? {
                Scripted::Done(old) => already.extend(old),
                Scripted::Fallback(why) => return Ok(Some((start, why))),
            }
            match next {
                Some(c) => chunk = c,
                None => return Ok(None),
            }
        }
    }

    /// Record the jobs from `from` in WATCHed MULTI/EXECs, two round trips per chunk: the
    /// look (WATCH of every key the chunk writes, their types, SMISMEMBER) and MULTI alone (a
    /// user refused MULTI would otherwise have every queued command run at once, outside any
    /// transaction), then the queued commands, EXEC and the next chunk's look in one write;
    /// the next chunk is encoded while the server runs this one. Redis runs the other commands
    /// of a transaction when one fails at run time, so the types read in the look are what
    /// keeps a chunk whole. An EXEC aborted by another writer is tried again with half the
    /// chunk.
    fn record_transacted(
        &mut self,
        rec: &Recorder,
        jobs: &(impl Recordable + ?Sized),
        from: usize,
        already: &mut Vec<String>,
    ) -> Result<(), (anyhow::Error, usize)> {
        let mut chunk = rec.chunk(jobs, from);
        let mut next: Option<Chunk> = None;
        // The replies to the look of `chunk`, when it was sent with the last transaction.
        let mut looked: Option<redis::RedisResult<Vec<Value>>> = None;
        loop {
            let start = chunk.start;
            rec.fill(jobs, &mut chunk);
            let turn = self.turn(rec, jobs, &chunk, &mut next, &mut looked);
            match turn {
                Ok(Turn::Done(old)) => {
                    already.extend(old);
                    rec.size.set((rec.size.get() * 2).min(TX_BATCH));
                }
                Ok(Turn::Again) => {
                    // Another writer changed a WATCHed key (T_ALL, mostly) between the look
                    // and EXEC: a smaller chunk keeps its keys WATCHed for less time, so that
                    // one writer every millisecond cannot abort every attempt.
                    if chunk.ids.len() > 1 {
                        rec.size.set((chunk.ids.len() / 2).max(1));
                        chunk = rec.chunk(jobs, start);
                        next = None;
                    }
                    continue;
                }
                Err(r) => return Err((self.refusal(r, jobs, start), start)),
            }
            let end = start + chunk.ids.len();
            if end >= jobs.len() {
                return Ok(());
            }
            chunk = match next.take() {
                Some(c) => c,
                None => rec.chunk(jobs, end),
            };
        }
    }

    /// One chunk: its look (unless already read), then its transaction. `next` and `looked`
    /// carry the next chunk, encoded, and the replies to its look, when they were sent
    /// behind this chunk's EXEC.
    fn turn(
        &mut self,
        rec: &Recorder,
        jobs: &(impl Recordable + ?Sized),
        chunk: &Chunk,
        next: &mut Option<Chunk>,
        looked: &mut Option<redis::RedisResult<Vec<Value>>>,
    ) -> Result<Turn, Refused> {
        let all = || rec.all.clone();
        let gone = |e: redis::RedisError| Refused::Redis(e, rec.all.clone());
        let replies = looked.take();
        if self.broken && replies.is_none() {
            return Err(gone(
                std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "connection given up after a timeout or a dropped connection",
                )
                .into(),
            ));
        }
        let mut b = Bounded::new(&mut self.conn);
        let r = (|| {
            let replies = match replies {
                Some(r) => r.map_err(gone)?,
                None => {
                    b.send(&chunk.look).map_err(gone)?;
                    read_n(&mut b, chunk.look_replies).map_err(gone)?
                }
            };
            let known = rec.judge_look(replies, chunk)?;
            let new: Vec<usize> = (0..known.len()).filter(|&i| !known[i]).collect();
            let old: Vec<String> = (0..known.len())
                .filter(|&i| known[i])
                .map(|i| chunk.ids[i].clone())
                .collect();
            let end = chunk.start + chunk.ids.len();
            let more = end < jobs.len();
            if new.is_empty() {
                // Nothing to write: the next chunk's WATCH (or, after the last, UNWATCH)
                // replaces this one's.
                if more {
                    let c = next.take().unwrap_or_else(|| rec.chunk(jobs, end));
                    b.send(&c.look).map_err(gone)?;
                    *looked = Some(read_n(&mut b, c.look_replies));
                    *next = Some(c);
                } else {
                    b.send(&redis::cmd("UNWATCH").get_packed_command())
                        .map_err(gone)?;
                    if let Value::ServerError(e) = b.reply().map_err(gone)? {
                        return Err(Refused::Redis(e.into(), all()));
                    }
                }
                return Ok(Turn::Done(old));
            }
            b.send(&redis::cmd("MULTI").get_packed_command())
                .map_err(gone)?;
            if let Value::ServerError(e) = b.reply().map_err(gone)? {
                return Err(Refused::Redis(e.into(), all()));
            }
            let mut tx = Vec::with_capacity(chunk.body.len() + new.len() * 24 + 128);
            for set in [&rec.all, &rec.pending] {
                resp_array(&mut tx, 2 + new.len());
                resp_bulk(&mut tx, &[b"SADD"]);
                resp_bulk(&mut tx, &[set.as_bytes()]);
                for &i in &new {
                    resp_bulk(&mut tx, &[chunk.ids[i].as_bytes()]);
                }
            }
            let mut queued = 2;
            for &i in &new {
                let from = if i == 0 { 0 } else { chunk.ends[i - 1].0 };
                tx.extend_from_slice(&chunk.body[from..chunk.ends[i].0]);
                queued += chunk.ends[i].1 as usize;
            }
            resp_cmd(&mut tx, &[b"EXEC"]);
            if more && next.is_none() {
                *next = Some(rec.chunk(jobs, end));
            }
            if let Some(c) = next.as_ref() {
                tx.extend_from_slice(&c.look);
            }
            b.send(&tx).map_err(gone)?;
            drop(tx);
            // While the server runs the transaction, the next chunk's commands are built.
            if let Some(c) = next.as_mut() {
                rec.fill(jobs, c);
            }
            let outcome = read_transaction(&mut b, queued);
            if let Some(c) = next.as_ref() {
                *looked = Some(read_n(&mut b, c.look_replies));
            }
            match outcome.map_err(gone)? {
                Exec::Done(replies) => {
                    if let Some((i, e)) = replies.into_iter().enumerate().find_map(|(i, v)| match v
                    {
                        Value::ServerError(e) => Some((i, e)),
                        _ => None,
                    }) {
                        return Err(Refused::Redis(e.into(), rec.queued_key(chunk, &new, i)));
                    }
                    Ok(Turn::Done(old))
                }
                Exec::Aborted => {
                    // The look behind EXEC belongs to the next chunk; this one looks again.
                    *looked = None;
                    Ok(Turn::Again)
                }
                Exec::Refused(e, i) => Err(Refused::Redis(e, rec.queued_key(chunk, &new, i))),
            }
        })();
        // A key of the wrong type ends the recording before MULTI: its WATCH must not outlive
        // it (a later transaction on this connection would abort for a change to these keys).
        if matches!(r, Err(Refused::WrongType { .. })) && !b.lost {
            let unwatched = b
                .send(&redis::cmd("UNWATCH").get_packed_command())
                .and_then(|_| b.reply());
            if unwatched.is_err() {
                b.lost = true;
            }
        }
        if b.lost {
            self.broken = true;
        }
        r
    }
}

/// `n` replies (RESP3 pushes aside), whatever they are.
fn read_n(b: &mut Bounded<'_>, n: usize) -> redis::RedisResult<Vec<Value>> {
    (0..n).map(|_| b.reply()).collect()
}

/// How a transaction ended.
enum Exec {
    /// EXEC ran: the replies of its commands (a runtime error among them is a reply).
    Done(Vec<Value>),
    /// EXEC returned nil: a WATCHed key changed.
    Aborted,
    /// Refused, while queueing or at EXEC: the error and the index of the first command refused
    /// (`queued` for EXEC itself).
    Refused(redis::RedisError, usize),
}

/// Read the replies of `queued` commands sent after an accepted MULTI, and EXEC's.
fn read_transaction(b: &mut Bounded<'_>, queued: usize) -> redis::RedisResult<Exec> {
    let mut refused: Option<redis::ServerError> = None;
    let mut first = 0;
    let mut n_refused = 0;
    for i in 0..queued {
        if let Value::ServerError(e) = b.reply()? {
            n_refused += 1;
            if refused.is_none() {
                first = i;
                refused = Some(e);
            }
        }
    }
    match b.reply()? {
        Value::Nil if refused.is_none() => return Ok(Exec::Aborted),
        Value::Array(v) if refused.is_none() => return Ok(Exec::Done(v)),
        // EXECABORT only repeats that something queued was refused.
        Value::ServerError(e) if refused.is_some() && e.code() == "EXECABORT" => {}
        Value::ServerError(e) => {
            n_refused += 1;
            if refused.is_none() {
                first = queued;
                refused = Some(e);
            }
        }
        other if refused.is_none() => {
            return Err(redis::make_extension_error(
                "PROTOCOL".into(),
                Some(format!("unexpected reply to EXEC: {other:?}")),
            ))
        }
        _ => {}
    }
    Ok(match transaction_error(refused, n_refused, queued) {
        Some(e) => Exec::Refused(e, first),
        None => Exec::Aborted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allkeys_policies_are_a_risk_for_the_ledger() {
        let info = |p: &str| format!("# Memory\r\nused_memory:1\r\nmaxmemory_policy:{p}\r\n");
        for p in ["allkeys-lru", "allkeys-lfu", "allkeys-random"] {
            let w = eviction_warning(&info(p), "h:1").unwrap();
            assert!(w.contains(p) && w.contains("noeviction"), "{w}");
            assert!(w.starts_with("Redis h:1 has"), "{w}");
        }
        for p in ["noeviction", "volatile-lru", "volatile-ttl"] {
            assert_eq!(eviction_warning(&info(p), "h:1"), None, "{p}");
        }
        assert_eq!(eviction_warning("# Memory\r\n", "h:1"), None);
    }

    #[test]
    fn a_redis_before_6_2_is_too_old_and_said_so() {
        let info = |v: &str| format!("# Server\r\nredis_version:{v}\r\nredis_mode:standalone\r\n");
        for v in ["6.0.16", "5.0.14", "6.1.99"] {
            let why = too_old(&info(v), "h:1").unwrap();
            assert!(
                why.starts_with(&format!("Redis h:1 is version {v};")),
                "{why}"
            );
            assert!(
                why.contains("6.2 or later") && why.contains("SMISMEMBER"),
                "{why}"
            );
        }
        // 7.2.4 is what Valkey says; 6.3.2 is KeyDB.
        for v in [
            "6.2.0", "6.2.14", "6.3.2", "7.0.15", "7.2.4", "8.0.1", "10.0.0",
        ] {
            assert_eq!(too_old(&info(v), "h:1"), None, "{v}");
        }
        // No version, or one that is not numbers: not refused for that.
        assert_eq!(
            too_old("# Server\r\nredis_mode:standalone\r\n", "h:1"),
            None
        );
        assert_eq!(too_old(&info("unstable"), "h:1"), None);
    }
}
