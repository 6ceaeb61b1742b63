//! A real Redis Cluster for the tests: N masters (and R replicas each) as private
//! `redis-server --cluster-enabled yes` processes on loopback, joined with
//! `redis-cli --cluster create`, plus the operations a test needs to disturb it: move one slot to
//! another master (a resharding, with its MIGRATING/IMPORTING phase and MIGRATE of the keys), a
//! failover of a master to its replica, and a master killed (its replica takes over).
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{free_port, missing, wait_until, RedisOptions, RedisServer};

/// The cluster; Drop stops every node (each [`RedisServer`] kills its process).
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    /// Ports of the nodes [`RedisCluster::kill_master`] killed.
    pub dead: Vec<u16>,
}

/// The hash slot of `key`, by rj's own function; tests/cluster.rs checks it against the
/// server's `CLUSTER KEYSLOT`.
pub fn key_slot(key: &str) -> u16 {
    rj::keys::key_slot(key.as_bytes())
}

/// `rbench run` arguments (JSON out) for `test` over keys `prefix` 0..600 in order on a
/// three-master cluster with `clients` connections per master: every master owns about 200 of
/// the keys, and its share of the 3000 requests (about 1000: the connections take requests as
/// their replies come) walks them all, so a `set` writes every key and a `get` then hits.
pub fn rbench_walk<'a>(test: &'a str, clients: &'a str, prefix: &'a str) -> [&'a str; 17] {
    [
        "run",
        "-t",
        test,
        "-c",
        clients,
        "-n",
        "3000",
        "-d",
        "8",
        "--keyspace",
        "600",
        "--key-prefix",
        prefix,
        "--key-dist",
        "sequential",
        "--format",
        "json",
    ]
}

impl RedisCluster {
    /// `masters` masters with `replicas` replicas each; None (after [`missing`], a failure under
    /// CI=true) when redis-server or redis-cli is absent.
    pub fn start(masters: usize, replicas: usize) -> Option<RedisCluster> {
        RedisCluster::start_with(masters, replicas, Vec::new)
    }

    /// [`RedisCluster::start`] with TLS between the nodes and for clients too, on the test
    /// certificates in `certs` (tests/util/tls.rs): each node keeps its plain port for the
    /// test's own checks and listens on a TLS port as well. Also each node's TLS port, by its
    /// plain one.
    pub fn start_tls(masters: usize, certs: &Path) -> Option<(RedisCluster, BTreeMap<u16, u16>)> {
        let file = |f: &str| certs.join(f).display().to_string();
        let (cert, key, ca) = (file("srv.pem"), file("srv.key"), file("ca.pem"));
        let c = RedisCluster::start_with(masters, 0, || {
            let tls_port = free_port().to_string();
            [
                "--tls-port",
                &tls_port,
                "--tls-cluster",
                "yes",
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &ca,
                "--tls-auth-clients",
                "no",
            ]
            .map(String::from)
            .to_vec()
        })?;
        let ports = c
            .nodes
            .iter()
            .map(|n| {
                let args = &n.opts.args;
                let at = args.iter().position(|a| a == "--tls-port").unwrap();
                (n.port, args[at + 1].parse().unwrap())
            })
            .collect();
        Some((c, ports))
    }

    /// The cluster, each node started with `more` redis-server arguments besides the cluster's.
    fn start_with(
        masters: usize,
        replicas: usize,
        more: impl Fn() -> Vec<String>,
    ) -> Option<RedisCluster> {
        if which::which("redis-cli").is_err() {
            missing("redis-cli (apt-get install redis-tools)");
            return None;
        }
        let mut nodes = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            let bus = free_port().to_string();
            let mut opts = RedisOptions::args(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
                "--cluster-port",
                &bus,
                // a replica takes over at once, however long it was cut off
                "--cluster-replica-validity-factor",
                "0",
            ]);
            opts.args.extend(more());
            nodes.push(RedisServer::with(opts)?);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create {addrs:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let c = RedisCluster {
            nodes,
            dead: Vec::new(),
        };
        c.wait_ok();
        Some(c)
    }

    /// The nodes not killed.
    pub fn live(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| !self.dead.contains(&n.port))
    }

    fn first_live(&self) -> &RedisServer {
        self.live().next().expect("a live node")
    }

    /// Wait until every live node says `cluster_state:ok` and agrees on the owner of every slot.
    pub fn wait_ok(&self) {
        wait_until(
            Duration::from_secs(30),
            "cluster_state:ok on every node",
            || {
                self.live()
                    .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
                    && {
                        let views: Vec<Vec<(u16, u16, u16)>> =
                            self.live().map(slot_ranges).collect();
                        views.windows(2).all(|w| w[0] == w[1])
                    }
            },
        );
    }

    /// `redis://127.0.0.1:<port>` of the first live node: any node of a cluster will do for rj.
    pub fn url(&self) -> String {
        self.first_live().url()
    }

    /// The node (by index) whose port is `port`.
    pub fn node(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .expect("a node on that port")
    }

    /// Ports of the masters that own slots, by the first node's view.
    pub fn masters(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = slot_ranges(self.first_live()).iter().map(|r| r.2).collect();
        ports.sort();
        ports.dedup();
        ports
    }

    /// The port of the master that owns `slot`.
    pub fn owner(&self, slot: u16) -> u16 {
        slot_ranges(self.first_live())
            .iter()
            .find(|r| r.0 <= slot && slot <= r.1)
            .map(|r| r.2)
            .expect("every slot is served")
    }

    /// Move `slot` (and its keys) to the master on `to`, the way `redis-cli --cluster reshard`
    /// does: IMPORTING on the target, MIGRATING on the source, MIGRATE the keys in batches, then
    /// SETSLOT NODE everywhere.
    pub fn move_slot(&self, slot: u16, to: u16) {
        let from = self.owner(slot);
        if from == to {
            return;
        }
        self.start_move(slot, to);
        self.finish_move(slot, from, to);
    }

    /// The first half of [`RedisCluster::move_slot`]: the slot IMPORTING on `to`, MIGRATING on
    /// its owner, no key moved yet. Returns the owner's port. Until
    /// [`RedisCluster::finish_move`], a key already moved is answered with ASK by the owner.
    pub fn start_move(&self, slot: u16, to: u16) -> u16 {
        let from = self.owner(slot);
        let s = slot.to_string();
        let (src_id, dst_id) = (node_id(self.node(from)), node_id(self.node(to)));
        self.node(to)
            .cli(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &src_id]);
        self.node(from)
            .cli(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &dst_id]);
        from
    }

    /// MIGRATE these keys (of a slot being moved) from `from` to `to`.
    pub fn migrate(&self, from: u16, to: u16, keys: &[&str]) {
        let port = to.to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        args.extend(keys.iter());
        let r = self.node(from).cli(&args);
        assert!(r.trim() == "OK" || r.trim() == "NOKEY", "MIGRATE: {r}");
    }

    /// The second half of [`RedisCluster::move_slot`]: the keys left, then SETSLOT NODE on every
    /// node, and a cluster that agrees.
    pub fn finish_move(&self, slot: u16, from: u16, to: u16) {
        let s = slot.to_string();
        loop {
            let keys = self
                .node(from)
                .cli(&["CLUSTER", "GETKEYSINSLOT", &s, "100"]);
            let keys: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            self.migrate(from, to, &keys);
        }
        let dst_id = node_id(self.node(to));
        for n in self.live() {
            n.cli(&["CLUSTER", "SETSLOT", &s, "NODE", &dst_id]);
        }
        self.wait_ok();
    }

    /// The replica of the master on `master`.
    pub fn replica_of(&self, master: u16) -> &RedisServer {
        let mid = node_id(self.node(master));
        self.live()
            .find(|n| {
                n.cli(&["INFO", "replication"]).contains("role:slave") && {
                    n.cli(&["CLUSTER", "NODES"])
                        .lines()
                        .any(|l| l.contains("myself") && l.contains(&mid))
                }
            })
            .expect("a replica of that master")
    }

    /// The replica of the master on `master` takes over (`CLUSTER FAILOVER` on the replica,
    /// a planned failover that loses no write); returns the new master's port.
    pub fn failover(&self, master: u16) -> u16 {
        let replica = self.replica_of(master);
        assert_eq!(replica.cli(&["CLUSTER", "FAILOVER"]).trim(), "OK");
        wait_until(
            Duration::from_secs(30),
            "the replica to become master",
            || {
                replica
                    .cli(&["INFO", "replication"])
                    .contains("role:master")
            },
        );
        self.wait_ok();
        replica.port
    }
}

impl RedisCluster {
    /// Kill the master on `master` (SIGKILL, a crash); its replica is elected after the node
    /// timeout. Returns the new master's port once the live nodes agree again.
    pub fn kill_master(&mut self, master: u16) -> u16 {
        let replica = self.replica_of(master).port;
        self.nodes
            .iter_mut()
            .find(|n| n.port == master)
            .expect("a node on that port")
            .kill();
        self.dead.push(master);
        let r = self.node(replica);
        wait_until(Duration::from_secs(30), "the replica to be elected", || {
            r.cli(&["INFO", "replication"]).contains("role:master")
        });
        self.wait_ok();
        replica
    }
}

/// A node's ID in the cluster.
fn node_id(n: &RedisServer) -> String {
    n.cli(&["CLUSTER", "MYID"]).trim().to_string()
}

/// `CLUSTER SLOTS` of `n` as (first, last, master port), sorted.
fn slot_ranges(n: &RedisServer) -> Vec<(u16, u16, u16)> {
    let v: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut n.client())
        .unwrap_or_default();
    let mut out = Vec::new();
    for r in v {
        let redis::Value::Array(r) = r else { continue };
        let num = |v: &redis::Value| match v {
            redis::Value::Int(i) => *i as u16,
            _ => 0,
        };
        let port = match r.get(2) {
            Some(redis::Value::Array(m)) => m.get(1).map(num).unwrap_or(0),
            _ => 0,
        };
        out.push((num(&r[0]), num(&r[1]), port));
    }
    out.sort();
    out
}

#[test]
fn a_three_master_cluster_serves_every_slot_and_survives_a_move_and_a_failover() {
    let Some(c) = RedisCluster::start(3, 1) else {
        return;
    };
    assert_eq!(c.masters().len(), 3);
    let slot = key_slot("{exp}_ALL");
    let n = &c.nodes[0];
    assert_eq!(
        n.cli(&["CLUSTER", "KEYSLOT", "{exp}_ALL"]).trim(),
        slot.to_string()
    );
    let owner = c.owner(slot);
    c.node(owner).cli(&["SADD", "{exp}_ALL", "1", "2"]);
    let other = *c.masters().iter().find(|&&p| p != owner).unwrap();
    c.move_slot(slot, other);
    assert_eq!(c.owner(slot), other);
    assert_eq!(c.node(other).smembers("{exp}_ALL"), ["1", "2"]);
    let new = c.failover(other);
    assert_eq!(c.owner(slot), new);
    assert_eq!(c.node(new).smembers("{exp}_ALL"), ["1", "2"]);
}
