//! What rj knows about a Redis Cluster without a connection (ARCHITECTURE.md §3): the key a
//! command is routed by, the slot map read from `CLUSTER SLOTS`, and the MOVED/ASK redirections.
//! `store.rs` uses them to send each command to the master of its slot.
use redis::Value;

use crate::keys::key_slot;

/// The hash slots of a cluster.
pub const SLOTS: usize = 16384;

/// No node known for a slot.
const NONE: u16 = u16::MAX;

/// The key whose slot decides where a command goes: the first key for every command rj sends
/// (the others of a multi-key command share its slot, or the server refuses it with CROSSSLOT);
/// None for a command without keys (PING, INFO, SCAN, WAIT, MULTI, …), which goes to the node
/// in use. `args` are the command's words, its name first.
pub fn command_key<'a>(args: &[&'a [u8]]) -> Option<&'a [u8]> {
    let name = args.first()?.to_ascii_uppercase();
    let at = match name.as_slice() {
        b"PING" | b"ECHO" | b"INFO" | b"ROLE" | b"WAIT" | b"WAITAOF" | b"SCAN" | b"MULTI"
        | b"EXEC" | b"DISCARD" | b"UNWATCH" | b"CLUSTER" | b"SCRIPT" | b"FUNCTION" | b"SELECT"
        | b"AUTH" | b"HELLO" | b"CLIENT" | b"CONFIG" | b"DBSIZE" | b"TIME" | b"COMMAND"
        | b"ASKING" | b"READONLY" | b"READWRITE" | b"SENTINEL" | b"FLUSHALL" | b"FLUSHDB"
        | b"ACL" | b"LASTSAVE" | b"SAVE" | b"BGSAVE" | b"BGREWRITEAOF" | b"SLOWLOG"
        | b"LATENCY" | b"DEBUG" | b"RANDOMKEY" | b"KEYS" | b"PUBLISH" | b"RESET" | b"QUIT" => {
            return None
        }
        // XINFO STREAM key, OBJECT ENCODING key, MEMORY USAGE key, XGROUP CREATE key …
        b"XINFO" | b"OBJECT" | b"MEMORY" | b"XGROUP" => 2,
        // EVAL script numkeys key …: no key when numkeys is 0.
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            let n = std::str::from_utf8(args.get(2)?)
                .ok()?
                .parse::<u64>()
                .ok()?;
            if n == 0 {
                return None;
            }
            3
        }
        // XREAD [COUNT n] [BLOCK ms] STREAMS key … id …
        b"XREAD" | b"XREADGROUP" => {
            args.iter()
                .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))?
                + 1
        }
        _ => 1,
    };
    args.get(at).copied()
}

/// The words of a command, for [`command_key`].
pub fn words(cmd: &redis::Cmd) -> Vec<&[u8]> {
    cmd.args_iter()
        .map(|a| match a {
            redis::Arg::Simple(b) => b,
            _ => b"0",
        })
        .collect()
}

/// The slot a command goes to; None for one without keys.
pub fn command_slot(cmd: &redis::Cmd) -> Option<u16> {
    command_key(&words(cmd)).map(key_slot)
}

/// The command's name in capitals (`WATCH`, `EXEC`…), for the commands that need more than a slot.
pub fn command_name(cmd: &redis::Cmd) -> Vec<u8> {
    match cmd.args_iter().next() {
        Some(redis::Arg::Simple(b)) => b.to_ascii_uppercase(),
        _ => Vec::new(),
    }
}

/// Which master serves each slot, as far as rj knows: from `CLUSTER SLOTS`, corrected by each
/// MOVED. A node keeps its index for as long as the map lives, so that connections can be kept
/// by index across refreshes.
#[derive(Debug, Clone)]
pub struct SlotMap {
    nodes: Vec<(String, u16)>,
    owner: Vec<u16>,
}

impl SlotMap {
    /// A map that knows no slot yet.
    pub fn empty() -> SlotMap {
        SlotMap {
            nodes: Vec::new(),
            owner: vec![NONE; SLOTS],
        }
    }

    /// The node `i`: host and port.
    pub fn node(&self, i: usize) -> (&str, u16) {
        let (h, p) = &self.nodes[i];
        (h, *p)
    }

    /// The index of a node, added when new.
    pub fn index_of(&mut self, host: &str, port: u16) -> usize {
        if let Some(i) = self.nodes.iter().position(|(h, p)| h == host && *p == port) {
            return i;
        }
        self.nodes.push((host.to_string(), port));
        self.nodes.len() - 1
    }

    /// The master of a slot, if known.
    pub fn owner(&self, slot: u16) -> Option<usize> {
        match self.owner.get(usize::from(slot)) {
            Some(&i) if i != NONE => Some(usize::from(i)),
            _ => None,
        }
    }

    /// A MOVED said where a slot is now; the node's index.
    pub fn learn(&mut self, slot: u16, host: &str, port: u16) -> usize {
        let i = self.index_of(host, port);
        if let Some(o) = self.owner.get_mut(usize::from(slot)) {
            *o = i as u16;
        }
        i
    }

    /// The masters that serve at least one slot, each once, in the order of their first slot:
    /// where SCAN must look for keys.
    pub fn masters(&self) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for &i in &self.owner {
            if i != NONE && !out.contains(&usize::from(i)) {
                out.push(usize::from(i));
            }
        }
        out
    }

    /// Read a `CLUSTER SLOTS` reply into the map: `[[first, last, [host, port, id, …],
    /// replicas…], …]`. Only the masters count. A host the node does not know (`""`, `"?"`,
    /// null) is `default_host`, the host the reply came from. Slots the reply leaves out are
    /// unknown afterwards (a slot no master serves answers CLUSTERDOWN).
    pub fn update(&mut self, reply: &Value, default_host: &str) -> Result<(), String> {
        let Value::Array(ranges) = reply else {
            return Err(format!("CLUSTER SLOTS answered {reply:?}, not a list"));
        };
        let mut owner = vec![NONE; SLOTS];
        for r in ranges {
            let Value::Array(r) = r else {
                return Err(format!("a CLUSTER SLOTS entry is {r:?}, not a list"));
            };
            let num = |v: Option<&Value>| match v {
                Some(Value::Int(i)) => u16::try_from(*i).ok(),
                _ => None,
            };
            let (Some(first), Some(last)) = (num(r.first()), num(r.get(1))) else {
                return Err(format!("a CLUSTER SLOTS entry has no slot range: {r:?}"));
            };
            let Some(Value::Array(master)) = r.get(2) else {
                return Err(format!("a CLUSTER SLOTS entry has no master: {r:?}"));
            };
            let host = node_host(master.first(), default_host);
            let Some(port) = num(master.get(1)).filter(|p| *p > 0) else {
                return Err(format!("a CLUSTER SLOTS master has no port: {master:?}"));
            };
            if usize::from(last) >= SLOTS || first > last {
                return Err(format!("CLUSTER SLOTS named the slots {first}-{last}"));
            }
            let i = self.index_of(&host, port) as u16;
            owner[usize::from(first)..=usize::from(last)].fill(i);
        }
        self.owner = owner;
        Ok(())
    }
}

/// The host of a node entry of `CLUSTER SLOTS`: an empty one or `?` (a node that does not know
/// its own address) is `default_host`, the host rj asked.
fn node_host(v: Option<&Value>, default_host: &str) -> String {
    let host = match v {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::SimpleString(s)) => s.clone(),
        _ => String::new(),
    };
    if host.is_empty() || host == "?" {
        default_host.to_string()
    } else {
        host
    }
}

/// Every node a `CLUSTER SLOTS` reply names, masters and replicas, each once (a host it does
/// not know is `default_host`): where to start again when the configured node is down.
pub fn every_node(reply: &Value, default_host: &str) -> Vec<(String, u16)> {
    let mut out: Vec<(String, u16)> = Vec::new();
    let Value::Array(ranges) = reply else {
        return out;
    };
    for r in ranges {
        let Value::Array(r) = r else { continue };
        for node in r.iter().skip(2) {
            let Value::Array(n) = node else { continue };
            let host = node_host(n.first(), default_host);
            if let Some(Value::Int(p)) = n.get(1) {
                if let Ok(p) = u16::try_from(*p) {
                    if p > 0 && !out.iter().any(|(h, q)| *h == host && *q == p) {
                        out.push((host, p));
                    }
                }
            }
        }
    }
    out
}

/// A MOVED or ASK: where the slot is now (MOVED), or where this one command must be asked
/// (ASK, while the slot is being migrated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub ask: bool,
    pub slot: u16,
    pub host: String,
    pub port: u16,
}

/// The redirection of a server error (`MOVED 3999 127.0.0.1:6381`, `ASK 3999 :6381`); an empty
/// host is the node that answered (`default_host`).
pub fn redirect(code: &str, detail: Option<&str>, default_host: &str) -> Option<Redirect> {
    let ask = match code {
        "MOVED" => false,
        "ASK" => true,
        _ => return None,
    };
    let mut words = detail?.split_ascii_whitespace();
    let slot = words.next()?.parse::<u16>().ok()?;
    let (host, port) = words.next()?.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some(Redirect {
        ask,
        slot,
        host: if host.is_empty() { default_host } else { host }.to_string(),
        port,
    })
}

/// The redirection in a reply, if it is one.
pub fn redirect_of(v: &Value, default_host: &str) -> Option<Redirect> {
    match v {
        Value::ServerError(e) => redirect(e.code(), e.details(), default_host),
        _ => None,
    }
}

/// The redirection in an error, also out of a transaction's first refused command.
pub fn redirect_of_error(e: &redis::RedisError, default_host: &str) -> Option<Redirect> {
    if let Some(r) = e.code().and_then(|c| redirect(c, e.detail(), default_host)) {
        return Some(r);
    }
    crate::exit::first_server_error(e)
        .and_then(|(_, s)| redirect(s.code(), s.details(), default_host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(words: &[&str]) -> Option<String> {
        let w: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        command_key(&w).map(|k| String::from_utf8(k.to_vec()).unwrap())
    }

    #[test]
    fn every_command_rj_sends_is_routed_by_its_key() {
        assert_eq!(key(&["SADD", "{e}_ALL", "1"]).as_deref(), Some("{e}_ALL"));
        assert_eq!(
            key(&["smismember", "{e}_ALL", "1"]).as_deref(),
            Some("{e}_ALL")
        );
        assert_eq!(
            key(&["XINFO", "STREAM", "{e}_EVENTS"]).as_deref(),
            Some("{e}_EVENTS")
        );
        assert_eq!(
            key(&["EVAL", "return 1", "2", "{e}_TRACKER", "{e}_ALL", "x"]).as_deref(),
            Some("{e}_TRACKER")
        );
        assert_eq!(key(&["EVAL", "return 1", "0", "x"]), None);
        assert_eq!(
            key(&[
                "XREAD",
                "COUNT",
                "10",
                "BLOCK",
                "5",
                "streams",
                "{e}_EVENTS",
                "0"
            ])
            .as_deref(),
            Some("{e}_EVENTS")
        );
        assert_eq!(
            key(&["WATCH", "{e}_REPLAYED:f", "{e}-1:x"]).as_deref(),
            Some("{e}_REPLAYED:f")
        );
        for keyless in [
            &["PING"][..],
            &["INFO", "memory"],
            &["SCAN", "0", "MATCH", "x*"],
            &["WAIT", "1", "100"],
            &["MULTI"],
            &["EXEC"],
            &["UNWATCH"],
            &["CLUSTER", "SLOTS"],
            &["ROLE"],
        ] {
            assert_eq!(key(keyless), None, "{keyless:?}");
        }
        assert_eq!(key(&["EVAL", "x", "nope", "k"]), None);
        let mut c = redis::cmd("HSET");
        c.arg("{exp}_JOB:1").arg("state").arg("x");
        assert_eq!(command_slot(&c), Some(key_slot(b"exp")));
        assert_eq!(command_name(&redis::cmd("watch")), b"WATCH");
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn range(first: i64, last: i64, host: Value, port: i64) -> Value {
        Value::Array(vec![
            Value::Int(first),
            Value::Int(last),
            Value::Array(vec![host, Value::Int(port), bulk("id")]),
            Value::Array(vec![bulk("127.0.0.1"), Value::Int(9999), bulk("replica")]),
        ])
    }

    #[test]
    fn the_slot_map_keeps_masters_and_their_indices() {
        let mut m = SlotMap::empty();
        assert_eq!(m.owner(0), None);
        let reply = Value::Array(vec![
            range(0, 5460, bulk("127.0.0.1"), 7000),
            range(5461, 10922, bulk(""), 7001),
            range(10923, 16383, Value::Nil, 7002),
        ]);
        m.update(&reply, "seed").unwrap();
        assert_eq!(
            every_node(&reply, "seed"),
            [
                ("127.0.0.1".to_string(), 7000),
                ("127.0.0.1".to_string(), 9999),
                ("seed".to_string(), 7001),
                ("seed".to_string(), 7002)
            ]
        );
        assert_eq!(m.node(m.owner(0).unwrap()), ("127.0.0.1", 7000));
        assert_eq!(m.node(m.owner(5461).unwrap()), ("seed", 7001));
        assert_eq!(m.node(m.owner(16383).unwrap()), ("seed", 7002));
        assert_eq!(m.masters().len(), 3, "replicas are not masters");
        let a = m.owner(0).unwrap();
        // A MOVED moves one slot; a refresh keeps every index.
        let b = m.learn(0, "seed", 7002);
        assert_eq!(m.owner(0), Some(b));
        assert_ne!(a, b);
        m.update(&reply, "seed").unwrap();
        assert_eq!(m.owner(0), Some(a));
        assert_eq!(m.owner(16000), Some(b));
        for bad in [
            Value::Int(1),
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![range(5, 3, bulk("h"), 1)]),
            Value::Array(vec![range(0, 20000, bulk("h"), 1)]),
            Value::Array(vec![range(0, 1, bulk("h"), 0)]),
        ] {
            assert!(SlotMap::empty().update(&bad, "s").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn redirections_name_the_slot_and_the_node() {
        assert_eq!(
            redirect("MOVED", Some("3999 127.0.0.1:6381"), "h"),
            Some(Redirect {
                ask: false,
                slot: 3999,
                host: "127.0.0.1".into(),
                port: 6381
            })
        );
        let r = redirect("ASK", Some("12 :6380"), "h").unwrap();
        assert!(r.ask);
        assert_eq!((r.host.as_str(), r.port), ("h", 6380));
        let r = redirect("MOVED", Some("1 [::1]:7000"), "h").unwrap();
        assert_eq!(r.host, "::1");
        assert_eq!(redirect("MOVED", Some("x 1:2"), "h"), None);
        assert_eq!(redirect("ERR", Some("1 h:2"), "h"), None);
        assert_eq!(redirect("MOVED", None, "h"), None);
        let e = redis::make_extension_error("MOVED".into(), Some("7 n:1".into()));
        assert_eq!(redirect_of_error(&e, "h").unwrap().slot, 7);
    }
}
