//! Test fixtures: a private redis-server per test, a clean environment for the binaries, and the
//! checks that make a missing server fail under CI=true instead of skipping silently.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub mod check;
pub mod clusters;
pub mod netns;
pub mod proxy;
pub mod redis_cluster;
pub mod seed;
pub mod sentinel_support;
pub mod slurm;
pub mod tls;
pub mod tracker;
pub mod wait_support;

/// The six sets of a tag (ARCHITECTURE.md §2), in the order the tools list them: `T_ALL`, then
/// the pending set, then the four final ones.
pub const SETS: [&str; 6] = [
    "ALL",
    "PENDING_AND_RUNNING",
    "COMPLETED",
    "FAILED",
    "TIMEOUT",
    "CANCELLED",
];

/// The five sets an ID of T_ALL is in exactly one of: all but T_ALL.
pub const FIVE: [&str; 5] = {
    let [_all, five @ ..] = SETS;
    five
};

/// A plain private redis-server and a [`TestEnv`] on it; None (after [`missing`], which fails
/// under CI=true) when redis-server is absent. The test keeps both alive to its end: bind the
/// server as `_server` when the test does not use it, never `_`, which would stop it at once.
pub fn redis() -> Option<(RedisServer, TestEnv)> {
    redis_with(RedisOptions::default())
}

/// [`redis`] with a server started with `opts` (a password, persistence, more arguments).
pub fn redis_with(opts: RedisOptions) -> Option<(RedisServer, TestEnv)> {
    let server = RedisServer::with(opts)?;
    let env = TestEnv::new(&server);
    Some((server, env))
}

/// Under CI a missing dependency is a failure; on a developer's machine a loud skip.
pub fn missing(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is required under CI=true but is not available");
    }
    eprintln!("SKIPPED: {what} is not available");
}

/// A free TCP port on 127.0.0.1 (the OS picks it; a race with another process is retried by
/// the callers that bind it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `process_id` of an `INFO server` reply.
pub fn info_pid(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|l| l.trim_end().strip_prefix("process_id:"))
        .and_then(|p| p.parse().ok())
}

/// Wait until `f` holds, or panic after `timeout` naming `what`.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    pub password: Option<String>,
    /// appendonly yes, so a restart keeps the data (fault tests).
    pub persistent: bool,
    /// Listen on a unix socket in the server's directory too.
    pub unix_socket: bool,
    /// More redis-server arguments (`--maxmemory-policy allkeys-lru`, `--replicaof h p`).
    pub args: Vec<String>,
    /// The server program, when not `redis-server` on PATH (an older Redis, scripts/redis-old).
    pub program: Option<PathBuf>,
}

impl RedisOptions {
    /// A plain server with extra redis-server arguments.
    pub fn args(args: &[&str]) -> RedisOptions {
        RedisOptions {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..RedisOptions::default()
        }
    }
}

/// A private redis-server on a free port, in its own directory; Drop kills and waits.
pub struct RedisServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub opts: RedisOptions,
    child: Option<Child>,
}

impl RedisServer {
    /// Start a plain server, or return None (after `missing`) when redis-server is absent.
    pub fn start() -> Option<RedisServer> {
        Self::with(RedisOptions::default())
    }

    pub fn with(opts: RedisOptions) -> Option<RedisServer> {
        if opts.program.is_none() && which::which("redis-server").is_err() {
            missing("redis-server (apt-get install redis-server)");
            return None;
        }
        for _ in 0..5 {
            let mut s = RedisServer {
                port: free_port(),
                dir: tempfile::tempdir().unwrap(),
                opts: opts.clone(),
                child: None,
            };
            if s.spawn() {
                return Some(s);
            }
        }
        panic!("could not start redis-server on a free port after 5 tries");
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    fn spawn(&mut self) -> bool {
        let mut cmd = Command::new(
            self.opts
                .program
                .as_deref()
                .unwrap_or(Path::new("redis-server")),
        );
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--save")
            .arg("")
            .arg("--daemonize")
            .arg("no")
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"));
        if self.opts.persistent {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        if let Some(pw) = &self.opts.password {
            cmd.arg("--requirepass").arg(pw);
        }
        if self.opts.unix_socket {
            cmd.arg("--unixsocket").arg(self.socket_path());
        }
        cmd.args(&self.opts.args);
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = child.try_wait() {
                return false; // port taken: exited at once
            }
            if self.answers_as(child.id()) {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn url(&self) -> String {
        match &self.opts.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap()
    }

    /// Does the server on our port answer, and is it the process we started? The port was
    /// free a moment ago, but another test may have taken it since: then our server exits,
    /// and until it has, the other one answers a PING.
    fn answers_as(&self, pid: u32) -> bool {
        let Ok(c) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut conn) = c.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        redis::cmd("INFO")
            .arg("server")
            .query::<String>(&mut conn)
            .is_ok_and(|info| info_pid(&info) == Some(pid))
    }

    /// Run the real redis-cli against this server (the way the original scripts did).
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.arg("-p").arg(self.port.to_string());
        if let Some(pw) = &self.opts.password {
            cmd.env("REDISCLI_AUTH", pw);
        }
        let out = cmd.args(args).output().expect("run redis-cli");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Members of a set, sorted as strings.
    pub fn smembers(&self, key: &str) -> Vec<String> {
        let mut v: Vec<String> = redis::cmd("SMEMBERS")
            .arg(key)
            .query(&mut self.client())
            .unwrap();
        v.sort();
        v
    }

    /// The server's process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Stop the server with SIGSTOP: connections stay open, nothing answers (a hung server).
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    /// Let a paused server go on (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    /// All fields of a hash, sorted by field.
    pub fn hgetall(&self, key: &str) -> BTreeMap<String, String> {
        redis::cmd("HGETALL")
            .arg(key)
            .query(&mut self.client())
            .unwrap()
    }

    /// Kill the server (SIGKILL, like a crash) and wait for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same port and directory (data survives with `persistent`).
    pub fn restart(&mut self) {
        self.kill();
        let start = Instant::now();
        while !self.spawn() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "redis-server did not restart on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid}");
}

static TAGS: AtomicU32 = AtomicU32::new(0);

/// A unique tag per test, so that tests sharing a server never see each other's keys.
pub fn unique_tag(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        TAGS.fetch_add(1, Ordering::Relaxed)
    )
}

/// A temp dir with a redis.json for `server`, a unique tag, and clean commands for the binaries.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub tag: String,
    pub config: PathBuf,
    pub port: u16,
}

impl TestEnv {
    pub fn new(server: &RedisServer) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("redis.json");
        let mut json = serde_json::json!({
            "__info__": "written by the rj test suite",
            "host": "127.0.0.1",
            "port": server.port,
        });
        if let Some(pw) = &server.opts.password {
            json["password"] = pw.clone().into();
        }
        std::fs::write(&config, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
        set_mode(&config, 0o600);
        TestEnv {
            tag: unique_tag("t"),
            config,
            port: server.port,
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Any program with a clean environment: PATH, HOME, XDG dirs in the temp dir, RJ_CONFIG,
    /// JOB_TAG, SLURM_CONF (when set), run in the temp dir.
    pub fn std_command(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(prog);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("XDG_STATE_HOME", self.path().join("state"))
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("RJ_CONFIG", &self.config)
            .env("JOB_TAG", &self.tag)
            .current_dir(self.path());
        if let Ok(conf) = std::env::var("SLURM_CONF") {
            c.env("SLURM_CONF", conf);
        }
        c
    }

    /// A binary of this package with the clean environment of [`TestEnv::std_command`].
    pub fn cmd(&self, bin: &str) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.std_command(bin_path(bin)))
    }

    /// Run a binary of this package with `args` and the clean environment; see
    /// [`check::Ran`] for the checks on what it left. A command that needs more (another
    /// variable, stdin) is built with [`TestEnv::cmd`] and run with [`check::run`].
    pub fn run(&self, bin: &str, args: &[&str]) -> check::Ran {
        check::run(self.cmd(bin).args(args))
    }

    /// Fake tools (`(name, shell body)`) in the folder `fake-bin` of the temp dir; returns a
    /// PATH with that folder first. Only for failures real tools cannot produce on demand.
    pub fn fake_tools(&self, tools: &[(&str, &str)]) -> String {
        let dir = self.path().join("fake-bin");
        for (name, body) in tools {
            write_script(&dir, name, body);
        }
        path_with(&dir)
    }

    /// A folder in the temp dir holding links to the named real tools only (none: an empty
    /// folder), to be a whole PATH on which everything else is missing.
    pub fn only_tools(&self, name: &str, tools: &[&str]) -> PathBuf {
        let dir = self.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for tool in tools {
            let real = which::which(tool).unwrap_or_else(|_| panic!("{tool} not on PATH"));
            std::os::unix::fs::symlink(real, dir.join(tool)).unwrap();
        }
        dir
    }

    pub fn key(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.tag)
    }

    /// The job hash key `TAG_JOB:<id>`.
    pub fn job(&self, id: &str) -> String {
        self.key(&format!("JOB:{id}"))
    }

    /// The launch spool of this tag, where `cmd` points XDG_STATE_HOME.
    pub fn spool(&self) -> PathBuf {
        self.path()
            .join("state/rj")
            .join(format!("{}.spool", self.tag))
    }
}

/// Path of a binary of this package (built by cargo for the integration tests).
pub fn bin_path(name: &str) -> PathBuf {
    assert_cmd::cargo::cargo_bin(name)
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Write an executable script (a fake tool on PATH for failures real Slurm cannot produce).
pub fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    set_mode(&p, 0o755);
    p
}

/// A PATH with `dir` first.
pub fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A PATH with this package's binaries first, as on a node where rj is installed: the example
/// job scripts call rj-put from PATH.
pub fn path_with_rj() -> String {
    path_with(bin_path("rj-put").parent().unwrap())
}

/// Owns a process a test started: Drop kills and waits, so a failing test leaves none behind.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
