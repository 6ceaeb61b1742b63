//! Redis Cluster for `rbench run`: the hash slot of a key, the slot map a node's CLUSTER SLOTS
//! gives, whether `INFO cluster` says the server is a Cluster node, and which masters own keys
//! of the run's range.
use super::resp;

/// Hash slots of a Redis Cluster.
pub const SLOTS: usize = 16384;

/// A slot no master serves.
pub const UNSERVED: u16 = u16::MAX;

/// The hash slot of a key, as the server computes it (one function for rj and rbench).
pub use crate::keys::key_slot;

/// Which master owns each slot.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotMap {
    /// `host:port` of each master, in the order CLUSTER SLOTS first names them.
    pub masters: Vec<(String, u16)>,
    /// Per slot, the index of its master in `masters`, or [`UNSERVED`].
    pub owner: Vec<u16>,
}

impl SlotMap {
    /// The slot ranges no master serves, as `a-b` (a cluster that is not ok).
    pub fn unserved(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut s = 0;
        while s < SLOTS {
            if self.owner[s] == UNSERVED {
                let start = s;
                while s < SLOTS && self.owner[s] == UNSERVED {
                    s += 1;
                }
                out.push(if s - 1 == start {
                    start.to_string()
                } else {
                    format!("{start}-{}", s - 1)
                });
            } else {
                s += 1;
            }
        }
        out
    }
}

/// `cluster_enabled:1` in an `INFO cluster` reply.
pub fn cluster_enabled(info: &str) -> bool {
    info.lines().any(|l| l.trim() == "cluster_enabled:1")
}

/// A RESP2 reply, as far as CLUSTER SLOTS needs one.
#[derive(Debug, PartialEq)]
enum Value {
    Int(i64),
    Text(Vec<u8>),
    Error(String),
    Nil,
    Array(Vec<Value>),
}

fn parse(buf: &[u8]) -> Result<(Value, usize), String> {
    let line_end = buf
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or("a reply cut short")?;
    let line = std::str::from_utf8(&buf[1..line_end]).map_err(|_| "a reply that is no text")?;
    let rest = line_end + 2;
    let num = || {
        line.parse::<i64>()
            .map_err(|_| format!("{line:?} is no number"))
    };
    match buf.first() {
        Some(b'+') => Ok((Value::Text(line.as_bytes().to_vec()), rest)),
        Some(b'-') => Ok((Value::Error(line.to_string()), rest)),
        Some(b':') => Ok((Value::Int(num()?), rest)),
        Some(b'$') => {
            let n = num()?;
            if n < 0 {
                return Ok((Value::Nil, rest));
            }
            let end = rest + n as usize;
            if buf.len() < end + 2 {
                return Err("a reply cut short".into());
            }
            Ok((Value::Text(buf[rest..end].to_vec()), end + 2))
        }
        Some(b'*') => {
            let n = num()?;
            if n < 0 {
                return Ok((Value::Nil, rest));
            }
            let mut items = Vec::with_capacity(n.min(1024) as usize);
            let mut pos = rest;
            for _ in 0..n {
                let (v, used) = parse(&buf[pos..])?;
                items.push(v);
                pos += used;
            }
            Ok((Value::Array(items), pos))
        }
        _ => Err(format!("an unknown reply type in {:?}", resp::text(buf))),
    }
}

/// The slot map from a CLUSTER SLOTS reply: `[[start, end, [ip, port, id, …], replicas…], …]`.
/// An empty IP (a node that does not know its own address) is `asked_host`, the node asked.
pub fn parse_slots(reply: &[u8], asked_host: &str) -> Result<SlotMap, String> {
    let (v, _) = parse(reply)?;
    let ranges = match v {
        Value::Array(r) => r,
        Value::Error(e) => return Err(e),
        other => return Err(format!("CLUSTER SLOTS answered {other:?}")),
    };
    let mut map = SlotMap {
        masters: Vec::new(),
        owner: vec![UNSERVED; SLOTS],
    };
    for r in ranges {
        let Value::Array(r) = r else {
            return Err("a slot range that is no array".into());
        };
        let (Some(Value::Int(a)), Some(Value::Int(b)), Some(Value::Array(node))) =
            (r.first(), r.get(1), r.get(2))
        else {
            return Err("a slot range without start, end and master".into());
        };
        let (Some(Value::Text(ip)), Some(Value::Int(port))) = (node.first(), node.get(1)) else {
            return Err("a master without address and port".into());
        };
        if !(0..SLOTS as i64).contains(a) || !(*a..SLOTS as i64).contains(b) {
            return Err(format!("slots {a}-{b} are out of range"));
        }
        let port = u16::try_from(*port).map_err(|_| format!("port {port} is out of range"))?;
        let host = match String::from_utf8_lossy(ip).into_owned() {
            h if h.is_empty() => asked_host.to_string(),
            h => h,
        };
        let i = match map.masters.iter().position(|m| m.0 == host && m.1 == port) {
            Some(i) => i,
            None => {
                map.masters.push((host, port));
                map.masters.len() - 1
            }
        };
        for s in *a as usize..=*b as usize {
            map.owner[s] = i as u16;
        }
    }
    if map.masters.is_empty() {
        return Err("no slot has a master".into());
    }
    Ok(map)
}

/// How many keys of each master the first `sample` key numbers of the range hit, for the key
/// texts `kinds` (each a prefix; the number is written after it in [`KEY_DIGITS`] digits).
pub fn keys_per_master(map: &SlotMap, kinds: &[&[u8]], min: u64, count: u64) -> Vec<u64> {
    const SAMPLE: u64 = 100_000;
    let mut hits = vec![0u64; map.masters.len()];
    for kind in kinds {
        let mut key = kind.to_vec();
        let at = key.len();
        key.extend(std::iter::repeat_n(b'0', KEY_DIGITS));
        for k in min..min + count.min(SAMPLE) {
            resp::write_digits(&mut key[at..], k);
            let o = map.owner[key_slot(&key) as usize];
            if o != UNSERVED {
                hits[o as usize] += 1;
            }
        }
    }
    hits
}

/// Digits of a key number (`key:000000012345`), as the engine writes them.
pub const KEY_DIGITS: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_slots_become_a_map() {
        let reply = b"*2\r\n\
            *4\r\n:0\r\n:8191\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n\
            *3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nir\r\n\
            *3\r\n:8192\r\n:16383\r\n*4\r\n$0\r\n\r\n:7001\r\n$2\r\nid\r\n*0\r\n";
        let m = parse_slots(reply, "node1").unwrap();
        assert_eq!(
            m.masters,
            vec![("127.0.0.1".to_string(), 7000), ("node1".to_string(), 7001)]
        );
        assert_eq!((m.owner[0], m.owner[8191], m.owner[8192]), (0, 0, 1));
        assert!(m.unserved().is_empty());
        let half = b"*1\r\n*3\r\n:0\r\n:99\r\n*2\r\n$1\r\nh\r\n:1\r\n";
        assert_eq!(parse_slots(half, "x").unwrap().unserved(), ["100-16383"]);
        let e = parse_slots(b"-ERR This instance has cluster support disabled\r\n", "x");
        assert_eq!(
            e.unwrap_err(),
            "ERR This instance has cluster support disabled"
        );
        assert!(parse_slots(b"*0\r\n", "x").is_err());
        assert!(parse_slots(b"*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n", "x").is_err());
        assert!(parse_slots(b"*1\r\n*3\r\n:0\r\n", "x").is_err());
    }

    #[test]
    fn info_says_whether_cluster_is_enabled() {
        assert!(cluster_enabled("# Cluster\r\ncluster_enabled:1\r\n"));
        assert!(!cluster_enabled("# Cluster\r\ncluster_enabled:0\r\n"));
        assert!(!cluster_enabled(""));
    }

    #[test]
    fn a_hash_tag_in_the_prefix_leaves_one_master_with_keys() {
        let mut owner = vec![0u16; SLOTS];
        for (s, o) in owner.iter_mut().enumerate() {
            *o = (s * 3 / SLOTS) as u16;
        }
        let map = SlotMap {
            masters: vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 3)],
            owner,
        };
        let spread = keys_per_master(&map, &[b"key:"], 0, 3000);
        assert!(spread.iter().all(|&n| n > 800), "{spread:?}");
        let tagged = keys_per_master(&map, &[b"{t}:"], 0, 3000);
        assert_eq!(tagged.iter().filter(|&&n| n > 0).count(), 1, "{tagged:?}");
    }
}
