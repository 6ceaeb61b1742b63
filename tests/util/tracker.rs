//! A long-running rj-track a test started: its stdout and stderr in files of the test's temp
//! dir, read while it runs; Drop kills and waits.
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::TestEnv;

pub struct Tracker {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Tracker {
    /// rj-track with the clean environment of `env`, `--interval 1s -v` and `args`; its
    /// output goes to `<name>.out` and `<name>.err` in the temp dir.
    pub fn start(env: &TestEnv, name: &str, args: &[&str]) -> Tracker {
        let cmd = env.std_command(super::bin_path("rj-track"));
        Self::start_with(cmd, env, name, args)
    }

    /// [`Tracker::start`] with a command made elsewhere (another PATH, another host).
    pub fn start_with(mut cmd: Command, env: &TestEnv, name: &str, args: &[&str]) -> Tracker {
        let out = env.path().join(format!("{name}.out"));
        let err = env.path().join(format!("{name}.err"));
        let child = cmd
            .args(["--interval", "1s", "-v"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn rj-track");
        Tracker { child, out, err }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Wait for the exit status (panics after `timeout`, showing stderr).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                start.elapsed() < timeout,
                "rj-track did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (under `ip netns exec` too, which has become rj-track), then [`Tracker::wait`].
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.pid());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        self.wait(timeout)
    }

    /// stdout once it holds at least `n` lines. A move is in Redis before rj-track prints its
    /// line (the move script's reply comes first), so a test that has just seen Redis drained
    /// waits here, up to 10 s, for the lines to follow.
    pub fn stdout_with(&self, n: usize) -> String {
        let start = Instant::now();
        loop {
            let out = self.stdout();
            if out.lines().count() >= n || start.elapsed() > Duration::from_secs(10) {
                return out;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`Tracker::moves`] once at least `n` have been printed (see [`Tracker::stdout_with`]).
    pub fn moves_with(&self, n: usize) -> Vec<(String, String, String)> {
        self.stdout_with(n);
        self.moves()
    }

    /// Move lines printed so far: (id, set, state).
    pub fn moves(&self) -> Vec<(String, String, String)> {
        self.stdout()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.splitn(5, ' ').collect();
                assert_eq!(f.len(), 5, "move line {l:?}");
                (f[1].to_string(), f[2].to_string(), f[4].to_string())
            })
            .collect()
    }

    /// The IDs of the move lines printed so far, the rest of each line unread.
    pub fn moved_ids(&self) -> Vec<String> {
        self.stdout()
            .lines()
            .map(|l| l.split(' ').nth(1).expect("move line").to_string())
            .collect()
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
