//! What the rj-wait tests need around a real server: jobs recorded and moved the way rj-launch
//! and rj-track do it (sets, record and T_EVENTS entry in one MULTI/EXEC), and rj-wait running
//! in the background with its output in files.
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{bin_path, Guard, RedisServer, TestEnv};

/// The default of rj-track --events-max: XADD … MAXLEN ~ 100000.
pub const EVENTS_MAX: usize = 100_000;

/// One move as rj-track makes it: the job, its final set, the Slurm state, the exit code.
pub struct Move<'a> {
    pub id: &'a str,
    pub set: &'a str,
    pub state: &'a str,
    pub exit_code: &'a str,
}

pub fn completed(id: &str) -> Move<'_> {
    Move {
        id,
        set: "COMPLETED",
        state: "COMPLETED",
        exit_code: "0:0",
    }
}

pub fn failed(id: &str) -> Move<'_> {
    Move {
        id,
        set: "FAILED",
        state: "FAILED",
        exit_code: "3:0",
    }
}

pub fn cancelled(id: &str) -> Move<'_> {
    Move {
        id,
        set: "CANCELLED",
        state: "CANCELLED by 1000",
        exit_code: "0:15",
    }
}

/// The lease owner the test "tracker" writes in its events and records.
pub const TRACKER: &str = "testhost:4242:0000beef";

const AT: &str = "2026-11-22T01:13:05Z";

/// Record jobs as rj-launch does: SADD T_ALL, SADD T_PENDING_AND_RUNNING, the record, and a
/// `recorded` event per job, in one MULTI/EXEC.
pub fn record(server: &RedisServer, env: &TestEnv, ids: &[&str]) {
    let mut p = redis::pipe();
    p.atomic();
    for id in ids {
        p.cmd("SADD").arg(env.key("ALL")).arg(id).ignore();
        p.cmd("SADD")
            .arg(env.key("PENDING_AND_RUNNING"))
            .arg(id)
            .ignore();
        p.cmd("HSET")
            .arg(env.job(id))
            .arg(&["submitted", AT, "host", "testhost"][..])
            .ignore();
        p.cmd("XADD")
            .arg(env.key("EVENTS"))
            .arg("MAXLEN")
            .arg("~")
            .arg(EVENTS_MAX)
            .arg("*")
            .arg(
                &[
                    "job",
                    id,
                    "set",
                    "PENDING_AND_RUNNING",
                    "state",
                    "recorded",
                    "exit_code",
                    "",
                    "tracked_at",
                    AT,
                    "tracker",
                    "rj-launch",
                ][..],
            )
            .ignore();
    }
    p.query::<()>(&mut server.client()).unwrap();
}

/// Move jobs as one rj-track batch does: per job SMOVE from T_PENDING_AND_RUNNING to its final
/// set, HSET of its record, XADD of its event, all in one MULTI/EXEC. `maxlen` is the trim of
/// each XADD: `~ 100000` as rj-track's default, or an exact `Some(n)` to trim the stream below
/// a reader's position.
pub fn moves(server: &RedisServer, env: &TestEnv, moves: &[Move], maxlen: Option<usize>) {
    let mut p = redis::pipe();
    p.atomic();
    for m in moves {
        p.cmd("SMOVE")
            .arg(env.key("PENDING_AND_RUNNING"))
            .arg(env.key(m.set))
            .arg(m.id)
            .ignore();
        p.cmd("HSET")
            .arg(env.job(m.id))
            .arg(
                &[
                    "state",
                    m.state,
                    "exit_code",
                    m.exit_code,
                    "tracked_at",
                    AT,
                    "tracked_by",
                    TRACKER,
                ][..],
            )
            .ignore();
        let xadd = p.cmd("XADD").arg(env.key("EVENTS")).arg("MAXLEN");
        match maxlen {
            None => xadd.arg("~").arg(EVENTS_MAX),
            Some(n) => xadd.arg(n),
        };
        xadd.arg("*")
            .arg(
                &[
                    "job",
                    m.id,
                    "set",
                    m.set,
                    "state",
                    m.state,
                    "exit_code",
                    m.exit_code,
                    "tracked_at",
                    AT,
                    "tracker",
                    TRACKER,
                ][..],
            )
            .ignore();
    }
    p.query::<()>(&mut server.client()).unwrap();
}

/// How many clients the server has blocked (rj-wait in XREAD BLOCK).
pub fn blocked_clients(server: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query(&mut server.client())
        .unwrap();
    info.lines()
        .find_map(|l| l.trim_end().strip_prefix("blocked_clients:"))
        .map_or(0, |n| n.parse().unwrap())
}

/// rj-wait running in the background, stdout and stderr in files.
pub struct Waiting {
    guard: Guard,
    out: PathBuf,
    err: PathBuf,
}

/// The end of a background rj-wait.
pub struct Ended {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ended {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl Waiting {
    /// Start `rj-wait ARGS` in `env`, and wait until it blocks on the stream (or exits).
    pub fn start(server: &RedisServer, env: &TestEnv, args: &[&str]) -> Waiting {
        let n = std::fs::read_dir(env.path()).unwrap().count();
        let out = env.path().join(format!("wait{n}.out"));
        let err = env.path().join(format!("wait{n}.err"));
        let child = env
            .std_command(bin_path("rj-wait"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn rj-wait");
        let mut w = Waiting {
            guard: Guard(child),
            out,
            err,
        };
        let start = Instant::now();
        while blocked_clients(server) == 0 && w.guard.0.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "rj-wait neither blocked on the stream nor exited within 20 s; stderr:\n{}",
                w.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        w
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Wait until stdout holds `n` lines, or panic after 20 s.
    pub fn lines(&mut self, n: usize) -> String {
        let start = Instant::now();
        loop {
            let out = self.stdout();
            if out.lines().count() >= n {
                return out;
            }
            if let Some(st) = self.guard.0.try_wait().unwrap() {
                panic!(
                    "rj-wait exited ({st}) before printing {n} line(s)\nstdout:\n{out}\nstderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "rj-wait printed no {n} line(s) within 20 s\nstdout:\n{out}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the exit (at most `limit`, then it is killed and the test fails).
    pub fn end(mut self, limit: Duration) -> Ended {
        let start = Instant::now();
        let status = loop {
            if let Some(st) = self.guard.0.try_wait().unwrap() {
                break st;
            }
            assert!(
                start.elapsed() < limit,
                "rj-wait did not exit within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Ended {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }
}
