//! The real single-node Slurm testbed (scripts/slurm-testbed): is it up, and helpers to watch
//! jobs. Tests never start it; `.ci/run` does.
use std::process::Command;
use std::time::Duration;

use super::{RedisOptions, RedisServer, TestEnv};

/// True when the testbed answers; otherwise `missing` (fails under CI=true) and false.
pub fn available() -> bool {
    if std::env::var_os("SLURM_CONF").is_none() {
        super::missing(
            "Slurm testbed (SLURM_CONF unset; run: eval \"$(scripts/slurm-testbed env)\")",
        );
        return false;
    }
    let ok = Command::new("scontrol")
        .arg("ping")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        super::missing("Slurm testbed (scontrol ping failed; run: scripts/slurm-testbed up)");
    }
    ok
}

/// A test's hold on the one-node testbed (see [`shared`] and [`exclusive`]), kept for the whole
/// test by the binding `_node`.
pub enum NodeGuard {
    Shared(std::sync::RwLockReadGuard<'static, ()>),
    Exclusive(std::sync::RwLockWriteGuard<'static, ()>),
}

/// The testbed, a fresh redis-server and a TestEnv on it, with a shared hold on the node; None
/// (after `missing`) when the testbed or redis-server is absent. The hold is taken before the
/// testbed is probed, so a test that stops slurmctld never makes another one look at it.
pub fn setup() -> Option<(RedisServer, TestEnv, NodeGuard)> {
    setup_with(RedisOptions::default())
}

/// [`setup`] with a server started with `opts` (a password, persistence).
pub fn setup_with(opts: RedisOptions) -> Option<(RedisServer, TestEnv, NodeGuard)> {
    ready(NodeGuard::Shared(shared()), opts)
}

/// [`setup`] for a test that stops slurmctld or sets the node down: no other test runs on the
/// testbed meanwhile.
pub fn setup_exclusive() -> Option<(RedisServer, TestEnv, NodeGuard)> {
    ready(NodeGuard::Exclusive(exclusive()), RedisOptions::default())
}

fn ready(node: NodeGuard, opts: RedisOptions) -> Option<(RedisServer, TestEnv, NodeGuard)> {
    if !available() {
        return None;
    }
    let (server, env) = super::redis_with(opts)?;
    Some((server, env, node))
}

/// Run a Slurm client command and return its stdout; panics with its stderr on failure.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The state squeue -t all prints for a job, or None once squeue no longer knows it.
pub fn state(id: &str) -> Option<String> {
    let out = Command::new("squeue")
        .args(["-h", "-t", "all", "-j", id, "-o", "%T"])
        .output()
        .ok()?;
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

/// Wait until a job has left PENDING/RUNNING/COMPLETING.
pub fn wait_finished(id: &str, timeout: Duration) {
    super::wait_until(timeout, &format!("Slurm job {id} to finish"), || {
        !matches!(
            state(id).as_deref(),
            Some("PENDING" | "RUNNING" | "COMPLETING" | "CONFIGURING")
        )
    });
}

/// The testbed is one node with 2 CPUs shared by every test in the process. Tests that submit
/// jobs hold `shared()`; a test that changes the node or the controller (node down, slurmctld
/// stopped) holds `exclusive()`, so no other test's job is caught in it.
static NODE: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    NODE.read().unwrap_or_else(|e| e.into_inner())
}

pub fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    NODE.write().unwrap_or_else(|e| e.into_inner())
}
