//! The two real single-node clusters `a` and `b` of scripts/slurm-clusters (one slurmdbd;
//! cluster a has the preemption partitions): are they up, and commands aimed at them. Tests
//! never start them; scripts/test does.
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{RedisOptions, RedisServer, TestEnv};

/// Where scripts/slurm-clusters keeps its clusters.
pub fn dir() -> PathBuf {
    std::env::var_os("RJ_SLURM_CLUSTERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/rj-slurm-clusters"))
}

/// The slurm.conf of cluster `c` (`a` is the default cluster of every command here).
pub fn conf(c: &str) -> PathBuf {
    dir().join(c).join("slurm.conf")
}

/// A Slurm client (or rj binary) aimed at cluster a's slurm.conf.
pub fn slurm(cmd: &str) -> Command {
    let mut c = Command::new(cmd);
    c.env("SLURM_CONF", conf("a"));
    c
}

/// True when both clusters answer `squeue -M a,b`; otherwise `missing` (fails under CI=true).
pub fn available() -> bool {
    let ok = conf("a").exists()
        && slurm("squeue")
            .args(["-M", "a,b", "-h", "-o", "%i"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        super::missing("the clusters a and b (run: scripts/slurm-clusters up)");
    }
    ok
}

/// Cluster a's node is shared by every test of the process; a preemption test needs all its
/// CPUs and holds `exclusive`, the others `shared`.
static NODE: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub enum Hold {
    Shared(std::sync::RwLockReadGuard<'static, ()>),
    Exclusive(std::sync::RwLockWriteGuard<'static, ()>),
}

/// The clusters, a fresh redis-server and a TestEnv whose commands use cluster a's slurm.conf;
/// None (after `missing`) when they are not up.
pub fn setup(exclusive: bool) -> Option<(RedisServer, TestEnv, Hold)> {
    let hold = if exclusive {
        Hold::Exclusive(NODE.write().unwrap_or_else(|e| e.into_inner()))
    } else {
        Hold::Shared(NODE.read().unwrap_or_else(|e| e.into_inner()))
    };
    if !available() {
        return None;
    }
    let server = RedisServer::with(RedisOptions::default())?;
    let env = TestEnv::new(&server);
    Some((server, env, hold))
}

/// An rj binary in the TestEnv, with cluster a's slurm.conf.
pub fn rj(env: &TestEnv, bin: &str) -> assert_cmd::Command {
    let mut c = env.cmd(bin);
    c.env("SLURM_CONF", conf("a"));
    c
}

/// Run a Slurm client against cluster a's slurm.conf; its stdout, or a panic with its stderr.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = slurm(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `squeue -M c -t all`'s state and restart count of a job, or None once squeue forgets it.
pub fn state(c: &str, id: &str) -> Option<(String, String)> {
    let out = run(
        "squeue",
        &[
            "-M",
            c,
            "-h",
            "-t",
            "all",
            "-j",
            id,
            "-O",
            "State:|,RestartCnt:|",
        ],
    );
    let line = out.lines().next()?;
    let mut f = line.split('|');
    Some((f.next()?.to_string(), f.next()?.to_string()))
}

/// Wait until `f` holds for the job's (state, restarts) on cluster `c`.
pub fn wait_state(c: &str, id: &str, what: &str, f: impl Fn(&str, &str) -> bool) {
    super::wait_until(
        Duration::from_secs(60),
        &format!("job {id} on {c} to be {what}"),
        || state(c, id).is_some_and(|(s, r)| f(&s, &r)),
    );
}
