//! Redis Sentinel for the tests: a master, its replica and sentinels on loopback, all real
//! `redis-server` processes (`--sentinel` for the sentinels), each in its own directory and
//! killed on Drop.
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, wait_until, RedisOptions, RedisServer};

/// How long the sentinels wait before they call a silent master down, and how long a failover
/// may take before they try another: low, so that a failover takes seconds, not minutes.
pub const DOWN_AFTER_MS: u64 = 1000;
pub const FAILOVER_TIMEOUT_MS: u64 = 3000;

/// One `redis-server --sentinel` on a free port.
pub struct SentinelProc {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SentinelProc {
    /// A sentinel monitoring `name` at 127.0.0.1:`master_port`; `extra` are more lines of its
    /// configuration (`requirepass …`, `sentinel auth-pass …`), where `{port}` stands for the
    /// port chosen (`port 0` + `tls-port {port}` make a TLS-only sentinel).
    pub fn start(name: &str, master_port: u16, quorum: u32, extra: &str) -> SentinelProc {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            // Sentinel rewrites its configuration file: it must be its own and writable.
            let conf = dir.path().join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                     logfile {dir}/sentinel.log\n\
                     sentinel monitor {name} 127.0.0.1 {master_port} {quorum}\n\
                     sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}\n\
                     sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}\n\
                     sentinel parallel-syncs {name} 1\n{extra}\n",
                    dir = dir.path().display(),
                    extra = extra.replace("{port}", &port.to_string()),
                ),
            )
            .unwrap();
            let mut child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server --sentinel");
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken
                }
                // Another test's server may have taken the port after free_port: it answers
                // while ours fails to bind and exits, so ours must still be there a moment later.
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && {
                    std::thread::sleep(Duration::from_millis(200));
                    matches!(child.try_wait(), Ok(None))
                } {
                    return SentinelProc {
                        port,
                        dir,
                        child: Some(child),
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start a sentinel on a free port after 5 tries");
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A command to this sentinel, with `password` if it has one; None if it does not answer.
    pub fn ask<T: redis::FromRedisValue>(
        &self,
        password: Option<&str>,
        cmd: &redis::Cmd,
    ) -> Option<T> {
        let url = match password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        };
        let client = redis::Client::open(url).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        cmd.query(&mut conn).ok()
    }

    /// The port this sentinel says the master `name` is on.
    pub fn master_port(&self, name: &str) -> Option<u16> {
        let (_, port): (String, u16) = self.ask(
            None,
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(name),
        )?;
        Some(port)
    }

    /// Kill the sentinel (SIGKILL) and wait for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The sentinel's log, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default()
    }
}

impl Drop for SentinelProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A master, one replica of it and `n` sentinels watching the master (quorum: a majority).
pub struct SentinelSetup {
    pub name: String,
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<SentinelProc>,
}

impl SentinelSetup {
    /// None (after `missing`) when redis-server is not installed.
    pub fn start(name: &str, n: usize) -> Option<SentinelSetup> {
        let master = RedisServer::start()?;
        let replica = RedisServer::with(RedisOptions::args(&[
            "--replicaof",
            "127.0.0.1",
            &master.port.to_string(),
        ]))?;
        let quorum = (n / 2 + 1) as u32;
        let sentinels: Vec<SentinelProc> = (0..n)
            .map(|_| SentinelProc::start(name, master.port, quorum, ""))
            .collect();
        let setup = SentinelSetup {
            name: name.to_string(),
            master,
            replica,
            sentinels,
        };
        // A failover needs the replica in sync and every sentinel knowing the replica and the
        // other sentinels (they meet through the master's hello channel).
        wait_until(Duration::from_secs(30), "the replica to sync", || {
            setup
                .replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up")
        });
        wait_until(
            Duration::from_secs(30),
            "the sentinels to know the replica and each other",
            || {
                setup.sentinels.iter().all(|s| {
                    let replicas: Option<Vec<redis::Value>> =
                        s.ask(None, redis::cmd("SENTINEL").arg("replicas").arg(name));
                    let others: Option<Vec<redis::Value>> =
                        s.ask(None, redis::cmd("SENTINEL").arg("sentinels").arg(name));
                    replicas.is_some_and(|r| r.len() == 1)
                        && others.is_some_and(|o| o.len() == n - 1)
                })
            },
        );
        Some(setup)
    }

    /// `["127.0.0.1:p1", …]`: the sentinels as redis.json lists them.
    pub fn nodes(&self) -> Vec<String> {
        self.sentinels.iter().map(SentinelProc::addr).collect()
    }

    /// Wait until every live sentinel names the replica as the master (a failover done).
    pub fn wait_for_failover(&self) {
        let want = self.replica.port;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            let promoted = self
                .sentinels
                .iter()
                .filter(|s| s.child.is_some())
                .all(|s| s.master_port(&self.name) == Some(want));
            let role = self.replica.cli(&["ROLE"]);
            if promoted && role.starts_with("master") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "no failover to 127.0.0.1:{want} within 60 s; first sentinel's log:\n{}",
            self.sentinels[0].log()
        );
    }
}
