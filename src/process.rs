//! Other programs rj runs (Slurm's clients, redis-benchmark): finding them on PATH, running them
//! with captured output and a time limit, and excerpts of what they print for messages.
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::exit::{fail, Kind};

/// Find a program on PATH, or fail with 69 naming it and how to get it (`hint`).
pub fn find(prog: &str, hint: &str) -> anyhow::Result<PathBuf> {
    which::which(prog).map_err(|_| {
        fail(
            Kind::Unavailable,
            format!("{prog} not found on PATH; {hint}"),
        )
    })
}

/// What a program printed, and how it ended.
#[derive(Debug)]
pub struct Finished {
    /// None when it was killed for running past the time limit.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// How long to wait for the output pipes after a kill: a grandchild may still hold them open,
/// and its output is not worth hanging for.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(1);

/// Run `cmd` (as the caller set it up: arguments, environment, process group) with stdin closed
/// and stdout/stderr captured; kill it when it runs longer than `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> std::io::Result<Finished> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let drain = |mut pipe: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = pipe.read_to_end(&mut b);
            let _ = tx.send(b);
        });
        rx
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let collect = |rx: mpsc::Receiver<Vec<u8>>| match status {
        Some(_) => rx.recv().unwrap_or_default(),
        None => rx.recv_timeout(DRAIN_AFTER_KILL).unwrap_or_default(),
    };
    Ok(Finished {
        status,
        stdout: collect(out),
        stderr: collect(err),
    })
}

/// The first `n` characters of `s`, for a message that quotes another program's output.
pub fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let f = run(&mut cmd, Duration::from_secs(10)).unwrap();
        assert_eq!(f.status.and_then(|s| s.code()), Some(3));
        assert_eq!(f.stdout, b"out\n");
        assert_eq!(f.stderr, b"err\n");
    }

    #[test]
    fn kills_after_the_timeout_even_when_a_grandchild_holds_the_pipes() {
        let mut cmd = Command::new("sh");
        // The sleep outlives sh and keeps stdout open.
        cmd.args(["-c", "echo started; sleep 5; echo never"]);
        let t = Instant::now();
        let f = run(&mut cmd, Duration::from_millis(300)).unwrap();
        assert!(f.status.is_none());
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    #[test]
    fn missing_program_is_unavailable_with_the_hint() {
        let e = find("rj-no-such-program", "install it").unwrap_err();
        assert_eq!(crate::exit::code_for(&e), 69);
        assert_eq!(
            e.to_string(),
            "rj-no-such-program not found on PATH; install it"
        );
        assert_eq!(truncate("héllo", 2), "hé");
    }
}
