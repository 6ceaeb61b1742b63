//! Assertions shared by the tool tests: exit status, the one-line error on stderr, Redis state.
//! A failing check shows the command line with the status, stdout and stderr, so the failure
//! can be run again by hand.
use std::ffi::OsStr;
use std::ops::Deref;
use std::process::Output;

use super::{RedisServer, TestEnv};

/// A finished run of one command: the command line it was started with and what it left. It
/// derefs to the [`Output`], so `out.status` and `out.stdout` read as before.
#[derive(Debug)]
pub struct Ran {
    /// The command line as a shell would take it: directory, environment, program, arguments.
    pub line: String,
    /// The program's file name (`rj-status`, not its path): the `NAME` of `NAME: error: …`.
    pub program: String,
    pub out: Output,
}

impl Deref for Ran {
    type Target = Output;
    fn deref(&self) -> &Output {
        &self.out
    }
}

impl Ran {
    /// Assert the exit status; the failure shows the command line, stdout and stderr.
    pub fn code(&self, want: i32) -> &Ran {
        code(self, want);
        self
    }

    /// Assert exit 0 and return stdout.
    pub fn ok(&self) -> String {
        ok(self)
    }

    /// Assert the exit status and that stderr is exactly one line `<program>: error: …` (the
    /// program named by the command line's file name); return that line.
    pub fn fails(&self, want: i32) -> String {
        fails(self, want, &self.program)
    }

    /// Assert exit 0 and parse stdout as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e})\ncommand: {}\nstdout:\n{out}",
                self.line
            )
        })
    }

    pub fn stdout(&self) -> String {
        stdout(self)
    }

    pub fn stderr(&self) -> String {
        stderr(self)
    }
}

/// What the checks below accept: a [`Ran`] (whose failures show its command line) or a bare
/// [`Output`] from a command run another way.
pub trait Outcome {
    fn output(&self) -> &Output;
    fn command_line(&self) -> &str {
        "(not kept: run through check::run or TestEnv::run to see it)"
    }
}

impl Outcome for Output {
    fn output(&self) -> &Output {
        self
    }
}

impl Outcome for Ran {
    fn output(&self) -> &Output {
        &self.out
    }
    fn command_line(&self) -> &str {
        &self.line
    }
}

/// Run a command and return what it left (never panics on a non-zero exit).
pub fn run(cmd: &mut assert_cmd::Command) -> Ran {
    let line = command_line(cmd);
    let program = std::path::Path::new(cmd.get_program())
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {line}: {e}"));
    Ran { line, program, out }
}

/// `cd DIR && env -i K=V … PROGRAM ARGS`, quoted for a shell; the PATH this test process has is
/// shown as `$PATH` rather than spelled out.
fn command_line(cmd: &assert_cmd::Command) -> String {
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    let mut words = Vec::new();
    if let Some(dir) = cmd.get_current_dir() {
        words.push(format!("cd {} &&", quote(dir.as_os_str())));
    }
    words.push("env -i".to_string());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            let v = if k == "PATH" && v == inherited {
                "\"$PATH\"".to_string()
            } else {
                quote(v)
            };
            words.push(format!("{}={v}", k.to_string_lossy()));
        }
    }
    words.push(quote(cmd.get_program()));
    words.extend(cmd.get_args().map(quote));
    words.join(" ")
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub fn stdout(out: &impl Outcome) -> String {
    String::from_utf8(out.output().stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(out: &impl Outcome) -> String {
    String::from_utf8(out.output().stderr.clone()).expect("stderr is UTF-8")
}

/// Assert the exit status, showing the command line, stdout and stderr on failure.
pub fn code(out: &impl Outcome, want: i32) {
    assert_eq!(
        out.output().status.code(),
        Some(want),
        "exit status\ncommand: {}\nstdout:\n{}\nstderr:\n{}",
        out.command_line(),
        String::from_utf8_lossy(&out.output().stdout),
        String::from_utf8_lossy(&out.output().stderr)
    );
}

/// Assert exit 0 and return stdout.
pub fn ok(out: &impl Outcome) -> String {
    code(out, 0);
    stdout(out)
}

/// Assert the exit status and that stderr is exactly one line `<bin>: error: …`; return it.
pub fn fails(out: &impl Outcome, want: i32, bin: &str) -> String {
    code(out, want);
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got:\n{err}\ncommand: {}",
        out.command_line()
    );
    assert!(
        lines[0].starts_with(&format!("{bin}: error: ")),
        "stderr does not start with `{bin}: error: `: {err}\ncommand: {}",
        out.command_line()
    );
    lines[0].to_string()
}

/// A refused command changed nothing: no key in Redis, and no spool written (the state
/// directory `TestEnv` points XDG_STATE_HOME at was never made).
pub fn nothing_written(server: &RedisServer, env: &TestEnv) {
    assert!(all_keys(server).is_empty(), "nothing written");
    assert!(!env.path().join("state").exists(), "nothing spooled");
}

/// Every key in the server's db 0, sorted (KEYS is fine in a test on a private server).
pub fn all_keys(server: &RedisServer) -> Vec<String> {
    let mut v: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut server.client())
        .unwrap();
    v.sort();
    v
}

/// Add members to a set through the real redis-cli, as the original scripts did.
pub fn sadd(server: &RedisServer, key: &str, ids: &[&str]) {
    let mut args = vec!["SADD", key];
    args.extend_from_slice(ids);
    server.cli(&args);
}

/// Calls of one command since the last `CONFIG RESETSTAT`, from `INFO commandstats`.
pub fn calls(server: &RedisServer, command: &str) -> u64 {
    let info = server.cli(&["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{}:calls=", command.to_ascii_lowercase());
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
        .unwrap_or(0)
}

/// The four tools that read redis.json the same way, and arguments that make each talk to Redis.
pub const TOOLS: &[(&str, &[&str])] = &[
    ("rj-launch", &["--record", "4242"]),
    ("rj-status", &[]),
    ("rj-last", &[]),
    ("rj-cleanup", &["--dry-run"]),
];

/// Any program (not only this package's binaries) with the clean environment of `env.cmd`.
pub fn program(env: &TestEnv, prog: impl AsRef<std::ffi::OsStr>) -> assert_cmd::Command {
    assert_cmd::Command::from_std(env.std_command(prog))
}

/// Run a binary as `bin ARGS | head -1` would: read one line, close the pipe, wait.
pub fn head_1(env: &TestEnv, bin: &str, args: &[&str]) -> (String, Output) {
    use std::io::BufRead;
    let mut child = env
        .std_command(super::bin_path(bin))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn binary");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    (first, child.wait_with_output().unwrap())
}

/// Run a row of `rj::cli::ACL`'s own ACL SETUSER lines on `admin`'s server for `user`: the
/// table's password placeholder becomes `password`, its key pattern the tag's.
pub fn setuser(
    admin: &mut redis::Connection,
    user: &str,
    row: &rj::cli::AclRow,
    password: &str,
    tag: &str,
) {
    for line in row.setuser() {
        let line = line
            .replacen(&format!("ACL SETUSER {} ", row.tool), "", 1)
            .replace(">PASSWORD", &format!(">{password}"))
            .replace("~TAG*", &format!("~{tag}*"));
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(user)
            .arg(line.split_whitespace().collect::<Vec<_>>())
            .query::<()>(admin)
            .unwrap_or_else(|e| panic!("ACL SETUSER {user} {line}: {e}"));
    }
}
