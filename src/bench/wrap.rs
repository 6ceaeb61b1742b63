//! `rbench wrap`: run the system's redis-benchmark with `--csv` and parse what it prints.
//!
//! The parser is a pure function over the captured text; it reads Redis 7 CSV (rps and six
//! latency columns, with a header), older rps-only CSV (no header), `-q` lines, quoted test names
//! with spaces, commas and parentheses, and skips `WARNING:` lines and terminal progress
//! (`\r`-separated) that end up in the same stream.
//!
//! Error replies: redis-benchmark from Redis 7 exits 1 at the first one (MOVED and ASK aside),
//! so a refused run never yields a figure. Older versions count error replies as served requests
//! and print them only with `-e` (at most one a second, among the CSV lines), so rbench passes
//! `-e` to them and refuses the figures of a test that got any: it cannot tell how many failed.
use std::fmt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::{Addr, Config};
use crate::exit::{auth_kind, fail, Kind};
use crate::process::truncate;

use super::{reply_kind, TestResult, Tests};

/// Why redis-benchmark's output could not be read: the line and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.msg)
        } else {
            write!(f, "line {}: {}", self.line, self.msg)
        }
    }
}

impl std::error::Error for ParseError {}

/// The CSV columns rbench maps, by redis-benchmark's header names.
const COLUMNS: &[&str] = &[
    "rps",
    "avg_latency_ms",
    "min_latency_ms",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "max_latency_ms",
];

/// Parse redis-benchmark's `--csv` (any version) or `-q` output into test results, in order.
///
/// An `Error from server` line belongs to the test whose result line follows it; that test's
/// `first_error` holds it.
pub fn parse_output(text: &str) -> Result<Tests, ParseError> {
    let mut header: Option<Vec<String>> = None;
    let mut tests: Vec<(String, TestResult)> = Vec::new();
    let mut pending_error: Option<String> = None;
    for (i, raw_line) in text.split('\n').enumerate() {
        let no = i + 1;
        // Progress on a terminal is rewritten with `\r`; the final text is the last segment.
        let line = raw_line
            .split('\r')
            .map(str::trim)
            .rfind(|s| !s.is_empty())
            .unwrap_or("");
        if line.is_empty() || is_noise(line) {
            continue;
        }
        if let Some(reply) = server_error(line) {
            pending_error.get_or_insert_with(|| reply.to_string());
            continue;
        }
        let err = |msg: String| ParseError { line: no, msg };
        if line.starts_with('"') {
            let fields = csv_fields(line).map_err(|e| err(format!("bad CSV: {e}")))?;
            if fields.first().is_some_and(|f| f == "test") {
                header = Some(fields);
                continue;
            }
            let (name, values) = fields
                .split_first()
                .ok_or_else(|| err("empty CSV record".into()))?;
            if values.is_empty() {
                return Err(err(format!("no numbers for test {name:?}")));
            }
            let mut r = TestResult::default();
            for (j, v) in values.iter().enumerate() {
                let col = match &header {
                    Some(h) => h.get(j + 1).map(String::as_str).unwrap_or(""),
                    // Old versions: no header, name and rps only.
                    None if j == 0 => "rps",
                    None => "",
                };
                if !COLUMNS.contains(&col) {
                    continue;
                }
                let x: f64 =
                    v.trim().parse().ok().filter(measured).ok_or_else(|| {
                        err(format!("{col} of test {name:?} is not a number: {v:?}"))
                    })?;
                set_column(&mut r, col, x);
            }
            r.first_error = pending_error.take();
            push(&mut tests, name.clone(), r);
        } else if let Some((name, mut r)) = quiet_line(line) {
            r.first_error = pending_error.take();
            push(&mut tests, name, r);
        } else {
            return Err(err(format!(
                "not redis-benchmark CSV or -q output: {:?}",
                truncate(line, 80)
            )));
        }
    }
    if tests.is_empty() {
        return Err(ParseError {
            line: 0,
            msg: "no test results in redis-benchmark output".into(),
        });
    }
    if let (Some(e), Some((_, last))) = (pending_error, tests.last_mut()) {
        // An error after the last result line: no later test to blame, the run still had it.
        last.first_error.get_or_insert(e);
    }
    Ok(Tests(tests))
}

/// The reply of redis-benchmark's `Error from server: REPLY` line (`Error from server
/// HOST:PORT: REPLY` against a cluster).
pub fn server_error(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix("Error from server")?;
    let reply = match rest.strip_prefix(':') {
        Some(r) => r,
        None => rest.trim_start().split_once(": ")?.1,
    };
    Some(reply.trim())
}

/// Does this version count error replies as served requests (anything before Redis 7, and a
/// version line it cannot read: those are old)?
pub fn counts_errors(version: &str) -> bool {
    let major = version
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse::<u32>().ok());
    major.is_none_or(|m| m < 7)
}

fn is_noise(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    l.starts_with("warning") || l.starts_with("# ")
}

fn push(tests: &mut Vec<(String, TestResult)>, name: String, r: TestResult) {
    // A test run twice (two -t entries) keeps its last result, in its first place.
    match tests.iter_mut().find(|(n, _)| *n == name) {
        Some(e) => e.1 = r,
        None => tests.push((name, r)),
    }
}

fn set_column(r: &mut TestResult, col: &str, x: f64) {
    match col {
        "rps" => r.requests_per_second = x,
        "avg_latency_ms" => r.avg_latency_ms = Some(x),
        "min_latency_ms" => r.min_latency_ms = Some(x),
        "p50_latency_ms" => r.p50_latency_ms = Some(x),
        "p95_latency_ms" => r.p95_latency_ms = Some(x),
        "p99_latency_ms" => r.p99_latency_ms = Some(x),
        "max_latency_ms" => r.max_latency_ms = Some(x),
        _ => {}
    }
}

/// A rate or a latency redis-benchmark can have measured: Rust's float syntax also takes `NaN`,
/// `inf` and negative numbers, which would poison medians and comparisons downstream.
fn measured(x: &f64) -> bool {
    x.is_finite() && *x >= 0.0
}

fn csv_fields(line: &str) -> Result<Vec<String>, csv::Error> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    let mut rec = csv::StringRecord::new();
    rdr.read_record(&mut rec)?;
    Ok(rec.iter().map(str::to_string).collect())
}

/// `NAME: 86206.90 requests per second, p50=0.303 msec` (the p50 part from Redis 6.2 on).
fn quiet_line(line: &str) -> Option<(String, TestResult)> {
    let at = line.find(" requests per second")?;
    let head = &line[..at];
    let (name, rps) = head.rsplit_once(": ")?;
    let rps: f64 = rps.trim().parse().ok().filter(measured)?;
    let mut r = TestResult {
        requests_per_second: rps,
        ..Default::default()
    };
    let tail = &line[at..];
    if let Some(p) = tail.find("p50=") {
        let v = tail[p + 4..].split_whitespace().next()?;
        r.p50_latency_ms = v.parse().ok().filter(measured);
    }
    Some((name.trim().to_string(), r))
}

/// What to ask redis-benchmark for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub tests: Vec<String>,
    pub requests: Option<u64>,
    pub clients: Option<u32>,
    pub value_size: Option<usize>,
    pub pipeline: Option<u32>,
    pub keyspace: Option<u64>,
    /// Pass `-e`, so that an old redis-benchmark prints the error replies it would hide.
    pub show_errors: bool,
    pub extra: Vec<String>,
}

/// The child's arguments: the target, the settings and `--csv`, never the password.
pub fn command_args(cfg: &Config, req: &Request) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let t = &cfg.target;
    match &t.addr {
        Addr::Tcp { host, port, tls } => {
            a.extend(["-h".into(), host.clone(), "-p".into(), port.to_string()]);
            if *tls {
                a.push("--tls".into());
            }
        }
        Addr::Unix(p) => a.extend(["-s".into(), p.display().to_string()]),
    }
    if t.db != 0 {
        a.extend(["--dbnum".into(), t.db.to_string()]);
    }
    if let (Some(u), Some(_)) = (&t.username, &t.password) {
        a.extend(["--user".into(), u.clone()]);
    }
    let mut opt = |flag: &str, v: Option<String>| {
        if let Some(v) = v {
            a.extend([flag.to_string(), v]);
        }
    };
    opt("-n", req.requests.map(|x| x.to_string()));
    opt("-c", req.clients.map(|x| x.to_string()));
    opt("-d", req.value_size.map(|x| x.to_string()));
    opt("-P", req.pipeline.map(|x| x.to_string()));
    opt("-r", req.keyspace.map(|x| x.to_string()));
    if !req.tests.is_empty() {
        a.extend(["-t".into(), req.tests.join(",").to_ascii_lowercase()]);
    }
    if req.show_errors {
        a.push("-e".into());
    }
    a.push("--csv".into());
    a.extend(req.extra.iter().cloned());
    a
}

/// The program and its version line (`redis-benchmark 7.0.15`).
pub fn find_program(program: Option<&std::path::Path>) -> anyhow::Result<(PathBuf, String)> {
    let path = match program {
        // A bare name is looked up on PATH, a path taken as it is.
        Some(p) if p.components().count() == 1 => {
            crate::process::find(&p.to_string_lossy(), "give its path to --program")?
        }
        Some(p) => {
            if !p.is_file() {
                return Err(fail(
                    Kind::Unavailable,
                    format!("--program {}: no such file", p.display()),
                ));
            }
            p.to_path_buf()
        }
        // Valkey ships the same tool as valkey-benchmark; a Valkey site may have only that.
        None => which::which("redis-benchmark")
            .or_else(|_| which::which("valkey-benchmark"))
            .map_err(|_| {
                fail(
                    Kind::Unavailable,
                    "redis-benchmark not found on PATH, nor valkey-benchmark; they come with \
                     Redis and Valkey (Debian/Ubuntu: apt-get install redis-tools), or give \
                     the program with --program",
                )
            })?,
    };
    // redis-benchmark before 7.0 has no --version: it prints its usage and exits 1. That is
    // no version (an old one), not a version line with the usage's numbers in it.
    let version = Command::new(&path)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_default();
    Ok((path, version))
}

/// What the child printed.
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
}

/// Run redis-benchmark; the password goes only into its environment (`REDISCLI_AUTH`). A run
/// longer than `timeout` (a stopped or blocked server: redis-benchmark waits for ever) is killed.
pub fn run_child(
    program: &PathBuf,
    args: &[String],
    cfg: &Config,
    timeout: Duration,
) -> anyhow::Result<Ran> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args);
    match &cfg.target.password {
        Some(pw) => cmd.env("REDISCLI_AUTH", pw),
        None => cmd.env_remove("REDISCLI_AUTH"),
    };
    let out = crate::process::run(&mut cmd, timeout).map_err(|e| {
        fail(
            Kind::Unavailable,
            format!("cannot run {}: {e}", program.display()),
        )
    })?;
    let ran = Ran {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let Some(status) = out.status else {
        return Err(fail(
            Kind::Unavailable,
            format!(
                "{shown} did not finish within {} (is Redis at {} stopped or blocked?); killed it \
                 (--timeout sets the limit)",
                humantime::format_duration(timeout),
                cfg.place()
            ),
        ));
    };
    if !status.success() {
        let all = format!("{}\n{}", ran.stdout, ran.stderr);
        let last = all
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("no output")
            .to_string();
        let reply = all.lines().find_map(server_error);
        let code = reply.and_then(|r| r.split_whitespace().next());
        if let Some(reply) = reply.filter(|_| !matches!(code, Some("WRONGPASS" | "NOAUTH"))) {
            // A refused command (NOPERM) or a refused write (READONLY, OOM): redis-benchmark
            // exits at the first one, so nothing was measured.
            return Err(fail(
                reply_kind(reply),
                format!(
                    "redis-benchmark stopped at the first error reply from Redis at {}, so no \
                     figure was recorded: {reply}",
                    cfg.place()
                ),
            ));
        }
        if refused(&all) {
            return Err(fail(
                Kind::NoPerm,
                format!(
                    "redis-benchmark was refused by Redis at {}: {last}; rbench gives it the \
                     password only through REDISCLI_AUTH, never on its command line, and this \
                     redis-benchmark does not read that variable: use `rbench run` for servers \
                     with a password",
                    cfg.target
                ),
            ));
        }
        return Err(fail(
            Kind::Unavailable,
            format!("{shown} failed ({status}): {last}"),
        ));
    }
    Ok(ran)
}

/// Did redis-benchmark print an authentication refusal: a Redis auth error code anywhere
/// (`Error from server: WRONGPASS …`), or its own `AUTH failed`?
fn refused(output: &str) -> bool {
    output.contains("AUTH failed")
        || output
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| auth_kind(w).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured on this project's machine: redis-benchmark 7.0.15 --csv.
    const REDIS7_CSV: &str = include_str!("../../tests/fixtures/rbench/redis7.csv");
    /// redis-benchmark 7.0.15 -q, with the `\r` progress a terminal shows.
    const REDIS7_Q: &str = include_str!("../../tests/fixtures/rbench/redis7-q.txt");
    /// Redis 5/6.0 --csv: no header, name and rps only.
    const OLD_CSV: &str = include_str!("../../tests/fixtures/rbench/redis5.csv");
    /// Redis 7 CSV with a warning before the header (CONFIG disabled on the server).
    const WARN_CSV: &str = include_str!("../../tests/fixtures/rbench/warning.csv");

    #[test]
    fn redis7_csv_with_latency_columns() {
        let t = parse_output(REDIS7_CSV).unwrap();
        let names: Vec<&str> = t.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "PING_INLINE",
                "PING_MBULK",
                "SET",
                "GET",
                "LPUSH (needed to benchmark LRANGE)",
                "LRANGE_100 (first 100 elements)",
                "MSET (10 keys)"
            ]
        );
        let set = t.get("SET").unwrap();
        assert_eq!(set.requests_per_second, 90909.09);
        assert_eq!(set.avg_latency_ms, Some(0.042));
        assert_eq!(set.min_latency_ms, Some(0.016));
        assert_eq!(set.p50_latency_ms, Some(0.039));
        assert_eq!(set.p95_latency_ms, Some(0.095));
        assert_eq!(set.p99_latency_ms, Some(0.135));
        assert_eq!(set.max_latency_ms, Some(0.223));
        assert_eq!(t.get("MSET (10 keys)").unwrap().max_latency_ms, Some(2.239));
    }

    #[test]
    fn quiet_output_with_terminal_progress() {
        let t = parse_output(REDIS7_Q).unwrap();
        assert_eq!(t.0.len(), 5);
        let set = t.get("SET").unwrap();
        assert_eq!(set.requests_per_second, 71428.57);
        assert_eq!(set.p50_latency_ms, Some(0.047));
        assert_eq!(set.p99_latency_ms, None);
        let l = t.get("LRANGE_100 (first 100 elements)").unwrap();
        assert_eq!(l.requests_per_second, 51282.05);
    }

    #[test]
    fn old_rps_only_csv() {
        let t = parse_output(OLD_CSV).unwrap();
        let set = t.get("SET").unwrap();
        assert_eq!(set.requests_per_second, 81967.21);
        assert_eq!(set.avg_latency_ms, None);
        assert_eq!(set.max_latency_ms, None);
        assert!(t.get("MSET (10 keys)").is_some());
        assert!(t.get("LRANGE_600 (first 600 elements)").is_some());
    }

    #[test]
    fn warning_line_before_header_and_odd_names() {
        let t = parse_output(WARN_CSV).unwrap();
        let names: Vec<&str> = t.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["SET", "MSET (10 keys)", "EVAL \"a, b\" (script, 2 keys)"]
        );
        assert_eq!(
            t.get("EVAL \"a, b\" (script, 2 keys)")
                .unwrap()
                .p99_latency_ms,
            Some(0.4)
        );
    }

    #[test]
    fn garbage_and_empty_are_errors() {
        let e = parse_output("\"test\",\"rps\"\nhello world\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse_output("").is_err());
        assert!(parse_output("WARNING: x\n").is_err());
        let e = parse_output("\"SET\",\"fast\"\n").unwrap_err();
        assert!(e.msg.contains("not a number"), "{e}");
    }

    #[test]
    fn error_lines_belong_to_the_test_that_follows() {
        let t = parse_output(
            "\"PING_INLINE\",\"90909.09\"\n\
             Error from server: READONLY You can't write against a read only replica.\n\
             Error from server: READONLY again\n\
             \"SET\",\"95238.10\"\n\
             \"GET\",\"95238.10\"\n\
             Error from server 10.0.0.1:7000: CLUSTERDOWN The cluster is down\n",
        )
        .unwrap();
        assert_eq!(t.get("PING_INLINE").unwrap().first_error, None);
        assert_eq!(
            t.get("SET").unwrap().first_error.as_deref(),
            Some("READONLY You can't write against a read only replica.")
        );
        assert_eq!(
            t.get("GET").unwrap().first_error.as_deref(),
            Some("CLUSTERDOWN The cluster is down")
        );
        assert_eq!(server_error("Error: Connection reset by peer"), None);
    }

    #[test]
    fn versions_before_7_count_errors_as_requests() {
        assert!(counts_errors("redis-benchmark 6.0.16"));
        assert!(counts_errors("redis-benchmark 5.0.7 (00000000/0) 64 bit"));
        assert!(counts_errors(""));
        assert!(!counts_errors("redis-benchmark 7.0.15"));
        assert!(!counts_errors("redis-benchmark 7.2.4 (00000000/0) 64 bit"));
    }

    #[test]
    fn negative_and_non_finite_numbers_are_errors() {
        // Found by fuzz/fuzz_targets/bench_csv.rs: a p50 of -.063 was taken as measured.
        let q =
            " \rLRANGE_100 (first 100 elements): 51282.05 requests per second, p50=-.063 msec\n";
        let t = parse_output(q).unwrap();
        let r = t.get("LRANGE_100 (first 100 elements)").unwrap();
        assert_eq!((r.requests_per_second, r.p50_latency_ms), (51282.05, None));
        let csv =
            |v: &str| format!("\"test\",\"rps\",\"avg_latency_ms\"\n\"SET\",\"100.0\",\"{v}\"\n");
        for v in ["-0.063", "NaN", "inf", "-inf"] {
            let e = parse_output(&csv(v)).unwrap_err();
            assert!(e.msg.contains("not a number"), "{v}: {e}");
        }
        assert!(parse_output(&csv("0.063")).is_ok());
        for rps in ["-5", "NaN", "inf"] {
            assert!(
                parse_output(&format!("SET: {rps} requests per second\n")).is_err(),
                "{rps}"
            );
        }
        let q = parse_output("SET: 5.00 requests per second, p50=NaN msec\n").unwrap();
        assert_eq!(q.get("SET").unwrap().p50_latency_ms, None);
    }

    #[test]
    fn auth_refusals_are_recognised() {
        assert!(refused(
            "Error from server: WRONGPASS invalid username-password pair"
        ));
        assert!(refused("NOAUTH Authentication required."));
        assert!(refused("AUTH failed: ERR invalid password"));
        assert!(!refused(
            "Could not connect to Redis at 127.0.0.1:1: Connection refused"
        ));
        assert!(!refused("WRONGTYPE Operation against a key"));
    }

    #[test]
    fn command_never_holds_the_password() {
        let mut cfg = crate::config::load(
            &crate::config::Request {
                config: None,
                url: Some("redis://alice:s3cret@db.example:7000/2".into()),
            },
            &std::collections::HashMap::new(),
        )
        .unwrap();
        let req = Request {
            tests: vec!["SET".into(), "get".into()],
            requests: Some(10),
            clients: Some(2),
            value_size: Some(256),
            pipeline: Some(16),
            keyspace: None,
            show_errors: false,
            extra: vec![],
        };
        let a = command_args(&cfg, &req);
        assert!(!a.iter().any(|x| x.contains("s3cret")), "{a:?}");
        assert_eq!(
            a.join(" "),
            "-h db.example -p 7000 --dbnum 2 --user alice -n 10 -c 2 -d 256 -P 16 -t set,get --csv"
        );
        cfg.target.addr = Addr::Unix("/run/r.sock".into());
        assert!(command_args(&cfg, &Request::default())
            .join(" ")
            .starts_with("-s /run/r.sock"));
    }
}
