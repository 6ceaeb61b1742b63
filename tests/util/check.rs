//! Assertions shared by the tool tests: exit status, the one-line error on stderr, Redis state.
use std::process::Output;

use super::RedisServer;

/// Run a command and return its output (never panics on a non-zero exit).
pub fn run(cmd: &mut assert_cmd::Command) -> Output {
    cmd.output().expect("run binary")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

/// Assert the exit status, showing stdout and stderr on failure.
pub fn code(out: &Output, want: i32) {
    assert_eq!(
        out.status.code(),
        Some(want),
        "exit status\nstdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Assert exit 0 and return stdout.
pub fn ok(out: &Output) -> String {
    code(out, 0);
    stdout(out)
}

/// Assert the exit status and that stderr is exactly one line `<bin>: error: …`; return it.
pub fn fails(out: &Output, want: i32, bin: &str) -> String {
    code(out, want);
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{err}");
    assert!(
        lines[0].starts_with(&format!("{bin}: error: ")),
        "stderr does not start with `{bin}: error: `: {err}"
    );
    lines[0].to_string()
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
pub fn program(env: &super::TestEnv, prog: impl AsRef<std::ffi::OsStr>) -> assert_cmd::Command {
    assert_cmd::Command::from_std(env.std_command(prog))
}

/// Run a binary as `bin ARGS | head -1` would: read one line, close the pipe, wait.
pub fn head_1(env: &super::TestEnv, bin: &str, args: &[&str]) -> (String, Output) {
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
