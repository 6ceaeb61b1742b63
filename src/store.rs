//! The Redis connection (timeouts, auth, TLS) and the operations on a tag's sets and hashes.
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use redis::{Connection, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};

use crate::config::{Addr, Config, Target};
use crate::exit::{fail, redis_kind, Kind};
use crate::keys::{IdKey, Keys, Set};

/// How long to wait for a TCP connect, and for any single reply.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// Keys per SCAN/SSCAN step and per UNLINK batch.
pub const BATCH: usize = 1000;

pub struct Store {
    conn: Connection,
    /// `host:port (from …)`, for error messages.
    pub place: String,
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

impl Store {
    /// Connect and PING, so that a wrong password or a dead server fails here, with the place.
    pub fn connect(cfg: &Config) -> anyhow::Result<Store> {
        let place = cfg.place();
        let wrap = |e: redis::RedisError| {
            if e.to_string().contains("refused to switch database") {
                // A "db" the server does not have is the configuration's fault, not the server's.
                return fail(
                    Kind::Config,
                    format!(
                        "cannot select database {} on Redis at {place}: {}",
                        cfg.target.db,
                        e.detail().unwrap_or("refused")
                    ),
                );
            }
            fail(
                redis_kind(&e),
                format!("cannot connect to Redis at {place}: {}", redis_message(&e)),
            )
        };
        let info = connection_info(&cfg.target)?;
        let client = match &cfg.target.tls_ca {
            Some(ca) if matches!(cfg.target.addr, Addr::Tcp { tls: true, .. }) => {
                let pem = std::fs::read(ca).map_err(|e| {
                    fail(
                        Kind::Config,
                        format!("cannot read tls_ca {} ({}): {e}", ca.display(), cfg.source),
                    )
                })?;
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                redis::Client::build_with_tls(info, certs).map_err(wrap)?
            }
            _ => redis::Client::open(info).map_err(wrap)?,
        };
        let mut conn = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(wrap)?;
        conn.set_read_timeout(Some(IO_TIMEOUT)).map_err(wrap)?;
        conn.set_write_timeout(Some(IO_TIMEOUT)).map_err(wrap)?;
        redis::cmd("PING").query::<()>(&mut conn).map_err(wrap)?;
        Ok(Store { conn, place })
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
        cmd.query(&mut self.conn).map_err(|e| self.error(e, what))
    }

    pub fn error(&self, e: redis::RedisError, what: &str) -> anyhow::Error {
        fail(
            redis_kind(&e),
            format!(
                "Redis {} failed at {what}: {}",
                self.place,
                redis_message(&e)
            ),
        )
    }

    /// Record jobs atomically (DESIGN §2): for IDs not yet in `T_ALL`, one MULTI/EXEC of
    /// `SADD T_ALL` + `SADD T_PENDING_AND_RUNNING` + the job hashes. IDs already recorded are
    /// left where they are (a finished job must not reappear as pending) and returned.
    pub fn record(
        &mut self,
        keys: &Keys,
        jobs: &[(String, Vec<(String, String)>)],
    ) -> anyhow::Result<Vec<String>> {
        let all = keys.set(Set::All);
        let ids: Vec<&str> = jobs.iter().map(|(id, _)| id.as_str()).collect();
        loop {
            self.query::<()>(redis::cmd("WATCH").arg(&all), &all)?;
            let known: Vec<bool> =
                self.query(redis::cmd("SMISMEMBER").arg(&all).arg(&ids), &all)?;
            let new: Vec<&(String, Vec<(String, String)>)> = jobs
                .iter()
                .zip(&known)
                .filter(|(_, k)| !**k)
                .map(|(j, _)| j)
                .collect();
            let old: Vec<String> = jobs
                .iter()
                .zip(&known)
                .filter(|(_, k)| **k)
                .map(|(j, _)| j.0.clone())
                .collect();
            if new.is_empty() {
                self.query::<()>(&redis::cmd("UNWATCH"), &all)?;
                return Ok(old);
            }
            let mut p = redis::pipe();
            p.atomic();
            let new_ids: Vec<&str> = new.iter().map(|(id, _)| id.as_str()).collect();
            p.cmd("SADD").arg(&all).arg(&new_ids).ignore();
            p.cmd("SADD")
                .arg(keys.set(Set::PendingAndRunning))
                .arg(&new_ids)
                .ignore();
            for (id, fields) in &new {
                if !fields.is_empty() {
                    p.cmd("HSET").arg(keys.job_hash(id)).arg(fields).ignore();
                }
            }
            let done: Option<()> = p.query(&mut self.conn).map_err(|e| self.error(e, &all))?;
            if done.is_some() {
                return Ok(old);
            }
            // EXEC returned nil: T_ALL changed under us; look again.
        }
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

    /// Every key matching a glob, by SCAN (never KEYS, which blocks the server).
    pub fn scan(&mut self, pattern: &str) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = self.query(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(BATCH),
                pattern,
            )?;
            out.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
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
            let part: Vec<BTreeMap<String, String>> = p.query(&mut self.conn).map_err(|e| {
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

    /// Read a key of any type as a JSON value: strings as text, hashes as objects, lists and
    /// sets as arrays, sorted sets as `[member, score]` pairs, streams as `[id, {field: value}]`.
    pub fn read_value(&mut self, key: &str) -> anyhow::Result<(String, serde_json::Value)> {
        use serde_json::Value as J;
        let ty: String = self.query(redis::cmd("TYPE").arg(key), key)?;
        let v = match ty.as_str() {
            "string" => {
                let b: Vec<u8> = self.query(redis::cmd("GET").arg(key), key)?;
                J::String(String::from_utf8_lossy(&b).into_owned())
            }
            // Jobs may store bytes that are not UTF-8 (pickles, packed arrays): shown lossily,
            // as for strings, rather than failing the whole listing.
            "hash" => {
                let m: Vec<(Vec<u8>, Vec<u8>)> = self.query(redis::cmd("HGETALL").arg(key), key)?;
                let m: BTreeMap<String, String> =
                    m.iter().map(|(k, v)| (lossy(k), lossy(v))).collect();
                serde_json::to_value(m)?
            }
            "list" => {
                let l: Vec<Vec<u8>> =
                    self.query(redis::cmd("LRANGE").arg(key).arg(0).arg(-1), key)?;
                serde_json::to_value(l.iter().map(|b| lossy(b)).collect::<Vec<_>>())?
            }
            "set" => {
                let s: Vec<Vec<u8>> = self.query(redis::cmd("SMEMBERS").arg(key), key)?;
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
                    key,
                )?;
                serde_json::to_value(z.iter().map(|(m, s)| (lossy(m), *s)).collect::<Vec<_>>())?
            }
            "stream" => {
                let raw: Value =
                    self.query(redis::cmd("XRANGE").arg(key).arg("-").arg("+"), key)?;
                stream_to_json(&raw)
            }
            "none" => J::Null,
            other => J::String(format!("<{other}>")),
        };
        Ok((ty, v))
    }
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
    if e.code().is_none() {
        // A pipeline's failure: the server's own words, not the client's wrapping.
        if let Some((_, s)) = crate::exit::first_server_error(e) {
            return format!("{} {}", s.code(), s.details().unwrap_or_default())
                .trim_end()
                .to_string();
        }
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
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = self.query(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(BATCH),
                pattern,
            )?;
            out.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
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

    /// [`Store::read_value`] of a key given as bytes; errors name the key lossily.
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
