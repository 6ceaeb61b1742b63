//! The hosts of scripts/netns-faults — two login nodes and a Redis host, each its own network
//! namespace: a redis-server on the Redis host, rj's tools run on a login host, and the real
//! faults the script puts on a login host's link to Redis.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{slurm, TestEnv, FIVE};

/// A login host; each has its own link to the Redis host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Login1,
    Login2,
}

impl Host {
    pub fn name(self) -> &'static str {
        match self {
            Host::Login1 => "login1",
            Host::Login2 => "login2",
        }
    }

    /// The Redis host's address on this login host's link.
    pub fn redis_addr(self) -> &'static str {
        match self {
            Host::Login1 => "10.231.1.1",
            Host::Login2 => "10.231.2.1",
        }
    }
}

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/netns-faults")
}

/// Run scripts/netns-faults with `args`; panics with its stderr on failure.
pub fn faults(args: &[&str]) {
    let out = Command::new(script())
        .args(args)
        .output()
        .expect("run netns-faults");
    assert!(
        out.status.success(),
        "netns-faults {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip() -> PathBuf {
    which::which("ip")
        .or_else(|_| which::which_in("ip", Some("/usr/sbin:/sbin"), "/"))
        .expect("ip (iproute2)")
}

/// The hosts are one for the whole machine: one test at a time uses them, in this process (the
/// mutex) and in any other (flock on /tmp/rj-netns.lock). Drop heals every link.
pub struct Net {
    _file: nix::fcntl::Flock<std::fs::File>,
    _node: slurm::NodeGuard,
    _in_process: MutexGuard<'static, ()>,
}

static NET: Mutex<()> = Mutex::new(());

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["heal", "all"]).output();
    }
}

/// The hosts (up, every link healed), the Slurm testbed and a redis-server on the Redis host, or
/// None (after `missing`) when the hosts, Slurm or redis-server are not there.
pub fn setup() -> Option<(Net, NetRedis)> {
    let in_process = NET.lock().unwrap_or_else(|e| e.into_inner());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/rj-netns.lock")
        .expect("open /tmp/rj-netns.lock");
    let file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("flock /tmp/rj-netns.lock");
    let node = slurm::NodeGuard::Shared(slurm::shared());
    let up = Command::new(script())
        .arg("status")
        .output()
        .is_ok_and(|o| o.status.success());
    if !up {
        super::missing("the network-namespace hosts (run: scripts/netns-faults up)");
        return None;
    }
    if !slurm::available() || which::which("redis-server").is_err() {
        if which::which("redis-server").is_err() {
            super::missing("redis-server (apt-get install redis-server)");
        }
        return None;
    }
    let net = Net {
        _file: file,
        _node: node,
        _in_process: in_process,
    };
    faults(&["heal", "all"]);
    Some((net, NetRedis::start()))
}

/// A redis-server on the Redis host, listening on both links (and on its own loopback, where
/// the test reads it with redis-cli: that traffic never crosses a link). Drop kills it.
pub struct NetRedis {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl NetRedis {
    fn start() -> NetRedis {
        for _ in 0..5 {
            let port = super::free_port();
            let dir = tempfile::tempdir().unwrap();
            let child = Command::new(ip())
                .args(["netns", "exec", "rj-redis", "redis-server"])
                .args(["--port", &port.to_string()])
                .args(["--bind", "10.231.1.1 10.231.2.1 127.0.0.1"])
                .args(["--protected-mode", "no", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .arg("--logfile")
                .arg(dir.path().join("redis.log"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server on rj-redis");
            let mut s = NetRedis { port, dir, child };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = s.child.try_wait() {
                    break; // port taken
                }
                if s.try_cli(&["PING"]).is_some_and(|o| o.trim() == "PONG") {
                    return s;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("could not start redis-server on the Redis host");
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new(ip())
            .args(["netns", "exec", "rj-redis", "redis-cli", "-p"])
            .arg(self.port.to_string())
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap())
    }

    /// redis-cli on the Redis host itself.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} on the Redis host failed"))
    }

    /// Members of a set, sorted.
    pub fn smembers(&self, key: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .cli(&["SMEMBERS", key])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }

    pub fn hgetall(&self, key: &str) -> BTreeMap<String, String> {
        let out = self.cli(&["HGETALL", key]);
        let lines: Vec<&str> = out.lines().collect();
        lines
            .chunks(2)
            .filter(|p| p.len() == 2)
            .map(|p| (p[0].to_string(), p[1].to_string()))
            .collect()
    }

    /// Every entry of a stream, as its fields in order.
    pub fn xrange(&self, key: &str) -> Vec<Vec<(String, String)>> {
        let out = self.cli(&["-2", "--json", "XRANGE", key, "-", "+"]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("XRANGE as JSON");
        v.as_array()
            .expect("XRANGE reply is an array")
            .iter()
            .map(|entry| {
                let kv = entry[1].as_array().expect("entry fields");
                kv.chunks(2)
                    .map(|p| {
                        (
                            p[0].as_str().unwrap().to_string(),
                            p[1].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .collect()
    }

    /// A TestEnv whose redis.json points at this server as `host` reaches it; a second host's
    /// file is [`NetRedis::config_for`].
    pub fn env(&self, host: Host) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let config = self.write_config(dir.path(), host);
        TestEnv {
            tag: super::unique_tag("n"),
            config,
            port: self.port,
            dir,
        }
    }

    /// The redis.json of `host` in `env`'s directory (written on first use).
    pub fn config_for(&self, env: &TestEnv, host: Host) -> PathBuf {
        self.write_config(env.path(), host)
    }

    fn write_config(&self, dir: &Path, host: Host) -> PathBuf {
        let path = dir.join(format!("redis-{}.json", host.name()));
        let json = serde_json::json!({ "host": host.redis_addr(), "port": self.port });
        std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
        path
    }
}

impl Drop for NetRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PATH for a login host: `first` (fault-injecting wrappers) if any, then the script's Slurm
/// wrappers, then this one.
pub fn host_path(first: Option<&Path>) -> String {
    let bin =
        PathBuf::from(std::env::var("RJ_NETNS_DIR").unwrap_or("/tmp/rj-netns".into())).join("bin");
    let mut p = String::new();
    if let Some(f) = first {
        p.push_str(&format!("{}:", f.display()));
    }
    format!(
        "{p}{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A binary of this package run on `host`, with `env`'s clean environment, that host's redis.json
/// and Slurm on PATH (`first` before it).
pub fn on(
    server: &NetRedis,
    env: &TestEnv,
    host: Host,
    first: Option<&Path>,
    bin: &str,
) -> Command {
    let mut c = env.std_command(ip());
    c.args(["netns", "exec", &format!("rj-{}", host.name())])
        .arg(super::bin_path(bin))
        .env("PATH", host_path(first))
        .env("RJ_CONFIG", server.config_for(env, host));
    c
}

/// Run a command with a time limit; None if it had to be killed.
pub fn output_within(mut cmd: Command, limit: Duration) -> Option<Output> {
    let dir = tempfile::tempdir().unwrap();
    let (o, e) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Some(Output {
        status,
        stdout: std::fs::read(&o).unwrap(),
        stderr: std::fs::read(&e).unwrap(),
    })
}

/// The ledger of `env`'s tag holds exactly `ids`, each in one set, with one move event for each
/// job of a final set, naming that set and the record's tracker, and none for a pending one; a
/// `recorded` event at most once a job; nothing else in T_EVENTS.
pub fn assert_ledger(server: &NetRedis, env: &TestEnv, ids: &[String]) {
    let mut want = ids.to_vec();
    want.sort();
    assert_eq!(server.smembers(&env.key("ALL")), want, "T_ALL");
    let mut set_of: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for set in FIVE {
        for id in server.smembers(&env.key(set)) {
            set_of.entry(id).or_default().push(set);
        }
    }
    for id in ids {
        let sets = set_of.get(id).cloned().unwrap_or_default();
        assert_eq!(sets.len(), 1, "job {id} is in {sets:?}");
    }
    assert_eq!(
        set_of.len(),
        ids.len(),
        "sets hold jobs outside T_ALL: {set_of:?}"
    );
    let events = server.xrange(&env.key("EVENTS"));
    let field = |e: &[(String, String)], k: &str| {
        e.iter()
            .find(|(f, _)| f == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("event without {k}: {e:?}"))
    };
    for id in ids {
        let mine: Vec<&Vec<(String, String)>> =
            events.iter().filter(|e| field(e, "job") == *id).collect();
        let rec: Vec<_> = mine
            .iter()
            .filter(|e| field(e, "state") == "recorded")
            .collect();
        assert!(rec.len() <= 1, "recorded events of {id}: {events:?}");
        let moves: Vec<_> = mine
            .iter()
            .filter(|e| field(e, "state") != "recorded")
            .collect();
        let set = set_of[id][0];
        if set == "PENDING_AND_RUNNING" {
            assert!(moves.is_empty(), "{id} is pending but has moves: {moves:?}");
        } else {
            assert_eq!(moves.len(), 1, "move events of {id} ({set}): {events:?}");
            assert_eq!(field(moves[0], "set"), set, "{moves:?}");
            let hash = server.hgetall(&env.job(id));
            assert_eq!(field(moves[0], "tracker"), hash["tracked_by"], "{hash:?}");
        }
    }
    let of_ours = events
        .iter()
        .filter(|e| ids.contains(&field(e, "job")))
        .count();
    assert_eq!(of_ours, events.len(), "events of other jobs: {events:?}");
}
