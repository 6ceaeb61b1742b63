//! The least-privilege table `rj::cli::ACL`, against real Redis ACL users made from its own
//! lines: with exactly a row's commands the tool's main path works; with any one of them taken
//! away the tool exits 77 with one line naming the command. The same table is what `--help`,
//! the man pages and the README print, so the documentation cannot drift from what the tools run.
use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rj::cli::{AclRow, ACL, ACL_LINE_MAX, ACL_NOTES};

use crate::util::check::{self, run, Ran};
use crate::util::proxy::CutProxy;
use crate::util::{self, slurm, RedisServer, TestEnv};

const PASSWORD: &str = "acl-test-pw";

/// The rows a user for `tool` (with `with`, "" for none) is made of: the tool's own row, then
/// the option's.
fn rows(tool: &str, with: &str) -> Vec<&'static AclRow> {
    let base = ACL
        .iter()
        .find(|r| r.tool == tool && r.with.is_empty())
        .unwrap_or_else(|| panic!("rj::cli::ACL has no row for {tool}"));
    let mut v = vec![base];
    if !with.is_empty() {
        v.push(
            ACL.iter()
                .find(|r| r.tool == tool && r.with == with)
                .unwrap_or_else(|| panic!("rj::cli::ACL has no row for {tool} {with}")),
        );
    }
    v
}

static USERS: AtomicU32 = AtomicU32::new(0);

/// A fresh environment (new tag, new temp dir) whose redis.json logs in as a new ACL user made
/// by running the rows' own ACL SETUSER lines, for this tag, on `server`; then `-cmd` for the
/// command taken away. `port` is where redis.json points (the server, or a proxy in front of it).
fn restricted(server: &RedisServer, rows: &[&AclRow], without: Option<&str>, port: u16) -> TestEnv {
    let env = TestEnv::new(server);
    let user = format!("acl{}", USERS.fetch_add(1, Ordering::Relaxed));
    let mut admin = server.client();
    for row in rows {
        check::setuser(&mut admin, &user, row, PASSWORD, &env.tag);
    }
    if let Some(c) = without {
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&user)
            .arg(format!("-{c}"))
            .query::<()>(&mut admin)
            .unwrap();
    }
    let json = serde_json::json!({
        "host": "127.0.0.1",
        "port": port,
        "username": user,
        "password": PASSWORD,
    });
    std::fs::write(&env.config, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    util::set_mode(&env.config, 0o600);
    env
}

/// Why a run of a tool's main path did not work: how the tool ended, and what it said.
#[derive(Debug)]
struct Refusal {
    /// The exit status; None when a daemon kept running past the wait.
    code: Option<i32>,
    stderr: String,
    /// What went wrong, for the report: the exit, or the effect that is missing after exit 0.
    why: String,
    /// A daemon may have printed lines of earlier ticks (a dropped connection) before its last.
    one_line: bool,
}

/// The tool's stdout when it exited 0, else the refusal.
fn step(out: Ran) -> Result<String, Refusal> {
    if out.status.success() {
        return Ok(check::stdout(&out));
    }
    Err(Refusal {
        code: out.status.code(),
        stderr: check::stderr(&out),
        why: format!("exit {:?}", out.status.code()),
        one_line: true,
    })
}

/// An effect that is missing although the tool exited 0: a refusal it kept to itself.
fn missing_effect(what: impl Into<String>, out_err: &str) -> Refusal {
    Refusal {
        code: Some(0),
        stderr: out_err.to_string(),
        why: format!("exit 0, but {}", what.into()),
        one_line: true,
    }
}

/// Does an error line name `cmd`, as Redis (`'sadd'`), an ACL rule (`+sadd`) or a person
/// (`SADD`) would?
fn names(line: &str, cmd: &str) -> bool {
    let upper = cmd.to_ascii_uppercase();
    line.contains(&format!("'{cmd}'"))
        || line.contains(&format!("+{cmd}"))
        || line
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == upper)
}

/// Run `path` as a user with exactly the commands of `tool` (+ `with`), then once per command
/// of the last row as a user without it. Every case gets its own user, tag and empty database.
/// Panics when the path fails with every command granted (the table lacks one); returns the
/// cases that do not end as documented (77, one line naming the command).
fn check_row(
    server: &RedisServer,
    tool: &str,
    with: &str,
    path: &mut dyn FnMut(&RedisServer, &TestEnv) -> Result<(), Refusal>,
) -> Vec<String> {
    let rows = rows(tool, with);
    let label = rows.last().unwrap().label();
    let mut admin = server.client();
    let mut case = |without: Option<&str>| {
        redis::cmd("FLUSHALL").query::<()>(&mut admin).unwrap();
        let env = restricted(server, &rows, without, server.port);
        path(server, &env)
    };
    if let Err(r) = case(None) {
        panic!(
            "{label} as a user with exactly its commands: {}\nstderr:\n{}",
            r.why, r.stderr
        );
    }
    let base: Vec<&str> = if rows.len() > 1 {
        rows[0].commands.to_vec()
    } else {
        Vec::new()
    };
    let mut problems = Vec::new();
    for cmd in rows.last().unwrap().commands {
        // An option's row repeats some of the tool's own commands, checked with the tool.
        if base.contains(cmd) {
            continue;
        }
        match case(Some(cmd)) {
            Ok(()) => problems.push(format!(
                "{label} without +{cmd}: works (the command is not needed, or its refusal is \
                 hidden)"
            )),
            Err(r) => {
                let lines: Vec<&str> = r.stderr.lines().collect();
                let last = lines.last().copied().unwrap_or("");
                let good = r.code == Some(77)
                    && (lines.len() == 1 || !r.one_line)
                    && last.starts_with(&format!("{tool}: error: "))
                    && names(last, cmd);
                if !good {
                    let said = match lines.len() {
                        0 | 1 => format!("stderr: {last}"),
                        n => format!("stderr has {n} lines, the last: {last}"),
                    };
                    problems.push(format!("{label} without +{cmd}: {}; {said}", r.why));
                }
            }
        }
    }
    problems
}

/// Fail with every case that did not end as documented, of every row checked.
fn assert_documented(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} case(s) not as documented in rj::cli::ACL:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn rj(env: &TestEnv, bin: &str, args: &[&str]) -> Ran {
    run(env.cmd(bin).arg("-q").args(args))
}

fn set(server: &RedisServer, key: &str) -> Vec<String> {
    server.smembers(key)
}

// ---- the documentation ----------------------------------------------------------------------

/// `--help` and the man page of every tool carry every ACL line and note, each line short
/// enough to be pasted from an 80-column terminal.
#[test]
fn help_and_man_pages_carry_the_acl_table() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let roff = |s: &str| s.replace('-', "\\-").replace('\'', "\\*(Aq");
    for tool in rj::cmd::all() {
        let help = tool.command.clone().render_long_help().to_string();
        let page = std::fs::read_to_string(root.join(format!("man/{}.1", tool.name))).unwrap();
        assert!(
            help.contains("Redis permissions (least privilege):"),
            "{} --help",
            tool.name
        );
        assert!(
            page.contains(".SH \"REDIS PERMISSIONS\""),
            "man/{}.1",
            tool.name
        );
        for row in ACL {
            for line in row.setuser() {
                assert!(line.len() <= ACL_LINE_MAX, "too long: {line}");
                assert!(help.contains(&line), "{} --help lacks {line}", tool.name);
                assert!(
                    page.contains(&roff(&line)),
                    "man/{}.1 lacks {line}",
                    tool.name
                );
            }
        }
        for note in ACL_NOTES {
            let words: Vec<&str> = note.split_whitespace().collect();
            let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                flat(&help).contains(&words.join(" ")),
                "{} --help lacks {note}",
                tool.name
            );
            assert!(
                flat(&page).contains(&roff(&words.join(" "))),
                "man/{}.1 lacks {note}",
                tool.name
            );
        }
    }
}

/// The README's section shows the table's lines, in its order, under each row's label.
#[test]
fn readme_shows_the_acl_table() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let mut block = String::from("```\n");
    for row in ACL {
        block.push_str(&format!("# {}\n", row.label()));
        for line in row.setuser() {
            block.push_str(&line);
            block.push('\n');
        }
    }
    block.push_str("```\n");
    assert!(
        readme.contains(&block),
        "README.md lacks the ACL lines of rj::cli::ACL; its section should hold:\n{block}"
    );
}

/// Each row names a tool, each command once; every tool that talks to Redis has a row.
#[test]
fn the_table_is_well_formed() {
    let mut seen = BTreeMap::new();
    for row in ACL {
        assert!(
            rj::cmd::all().iter().any(|t| t.name == row.tool),
            "{} is no tool",
            row.tool
        );
        assert!(
            seen.insert(row.label(), ()).is_none(),
            "two rows for {}",
            row.label()
        );
        let mut c = row.commands.to_vec();
        c.sort();
        c.dedup();
        assert_eq!(c.len(), row.commands.len(), "{}", row.label());
        for cmd in row.commands {
            assert_eq!(cmd.to_ascii_lowercase(), *cmd, "{}", row.label());
        }
    }
    for tool in [
        "rj-launch",
        "rj-status",
        "rj-last",
        "rj-cleanup",
        "rj-track",
        "rj-wait",
    ] {
        rows(tool, "");
    }
}

// ---- rj-launch, rj-status, rj-last, rj-cleanup ----------------------------------------------

#[test]
fn rj_launch_records_with_exactly_its_commands() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut problems = Vec::new();
    problems.extend(check_row(&server, "rj-launch", "", &mut |s, env| {
        let out = step(rj(env, "rj-launch", &["--record", "101", "102"]))?;
        assert_eq!(out, "101\n102\n");
        if set(s, &env.key("ALL")) != ["101", "102"] {
            return Err(missing_effect("the jobs are not in TAG_ALL", ""));
        }
        if !s.hgetall(&env.job("101")).contains_key("submitted") {
            return Err(missing_effect("no record TAG_JOB:101", ""));
        }
        // Recorded already: looked at, left alone (WATCH, then UNWATCH).
        step(rj(env, "rj-launch", &["--record", "101"]))?;
        Ok(())
    }));
    assert_documented(problems);
}

/// Sets of a small tag, and a record for job 2.
fn seed_sets(server: &RedisServer, env: &TestEnv) {
    check::sadd(server, &env.key("ALL"), &["1", "2", "3"]);
    check::sadd(server, &env.key("PENDING_AND_RUNNING"), &["1"]);
    check::sadd(server, &env.key("COMPLETED"), &["2", "3"]);
    server.cli(&[
        "HSET",
        &env.job("2"),
        "state",
        "COMPLETED",
        "exit_code",
        "0:0",
    ]);
}

#[test]
fn rj_status_lists_with_exactly_its_commands() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut problems = Vec::new();
    problems.extend(check_row(&server, "rj-status", "", &mut |s, env| {
        seed_sets(s, env);
        let out = step(rj(env, "rj-status", &["--format", "plain"]))?;
        assert_eq!(out, "1\n2\n3\n");
        let out = step(rj(env, "rj-status", &["--count", "--format", "plain"]))?;
        assert_eq!(out, "3\n1\n2\n0\n0\n0\n");
        Ok(())
    }));
    assert_documented(problems);
}

#[test]
fn rj_status_long_shows_records_with_exactly_its_commands() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut problems = Vec::new();
    problems.extend(check_row(&server, "rj-status", "--long", &mut |s, env| {
        seed_sets(s, env);
        // --state ALL alone: each job's real set is looked up (SMISMEMBER).
        for args in [&[][..], &["--state", "ALL"][..]] {
            let mut a = vec!["--long", "--format", "json"];
            a.extend_from_slice(args);
            let out = step(rj(env, "rj-status", &a))?;
            let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(rows[1]["job_id"], "2", "{out}");
            assert_eq!(rows[1]["state"], "COMPLETED", "{out}");
            assert_eq!(rows[1]["set"], "COMPLETED", "{out}");
        }
        Ok(())
    }));
    assert_documented(problems);
}

#[test]
fn rj_put_writes_with_exactly_its_commands() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut problems = Vec::new();
    problems.extend(check_row(&server, "rj-put", "", &mut |s, env| {
        for args in [
            &["--job", "7", "loss", "0.5"][..],
            &["--job", "7", "--hash", "h", "x=1"],
            &["--job", "7", "--push", "l", "a"],
        ] {
            step(run(env
                .cmd("rj-put")
                .arg("-q")
                .args(["--retry-for", "1ms"])
                .args(args)))?;
        }
        let loss: Option<String> = redis::cmd("GET")
            .arg(format!("{}-7:loss", env.tag))
            .query(&mut s.client())
            .unwrap();
        if loss.as_deref() != Some("0.5") {
            return Err(missing_effect("loss was not written", ""));
        }
        Ok(())
    }));
    assert_documented(problems);
}

/// Sets a scripted cleanup or an eviction left behind: 4 outside T_ALL, 1 in two sets, 3 in none.
fn seed_broken_sets(server: &RedisServer, env: &TestEnv) {
    check::sadd(server, &env.key("ALL"), &["1", "2", "3"]);
    check::sadd(server, &env.key("PENDING_AND_RUNNING"), &["1", "4"]);
    check::sadd(server, &env.key("COMPLETED"), &["1", "2"]);
}

#[test]
fn rj_status_check_and_repair_with_exactly_their_commands() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut problems = Vec::new();
    problems.extend(check_row(&server, "rj-status", "--check", &mut |s, env| {
        seed_sets(s, env);
        step(rj(env, "rj-status", &["--check"]))?;
        Ok(())
    }));
    problems.extend(check_row(
        &server,
        "rj-status",
        "--check --repair",
        &mut |s, env| {
            seed_broken_sets(s, env);
            step(rj(env, "rj-status", &["--check", "--repair"]))?;
            let err = "";
            if set(s, &env.key("ALL")) != ["1", "2", "3", "4"] {
                return Err(missing_effect("4 was not added back to T_ALL", err));
            }
            if set(s, &env.key("PENDING_AND_RUNNING")) != ["3", "4"] {
                return Err(missing_effect("PENDING_AND_RUNNING was not repaired", err));
            }
            Ok(())
        },
    ));
    assert_documented(problems);
}

#[test]
fn rj_last_shows_every_type_with_exactly_its_commands() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut problems = Vec::new();
    problems.extend(check_row(&server, "rj-last", "", &mut |s, env| {
        check::sadd(s, &env.key("ALL"), &["5", "7"]);
        let k = |name: &str| format!("{}-7:{name}", env.tag);
        s.cli(&["SET", &k("s"), "v"]);
        s.cli(&["HSET", &k("h"), "f", "v"]);
        s.cli(&["RPUSH", &k("l"), "a", "b"]);
        s.cli(&["SADD", &format!("{}-7_2:set", env.tag), "m"]);
        s.cli(&["ZADD", &k("z"), "1.5", "m"]);
        s.cli(&["XADD", &k("x"), "*", "f", "v"]);
        let out = step(rj(env, "rj-last", &["--format", "json"]))?;
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mut types: Vec<&str> = doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["type"].as_str().unwrap())
            .collect();
        types.sort();
        assert_eq!(
            types,
            ["hash", "list", "set", "stream", "string", "zset"],
            "{out}"
        );
        Ok(())
    }));
    assert_documented(problems);
}

#[test]
fn rj_cleanup_cleans_with_exactly_its_commands() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut problems = Vec::new();
    problems.extend(check_row(&server, "rj-cleanup", "", &mut |s, env| {
        seed_sets(s, env);
        step(rj(env, "rj-cleanup", &[]))?;
        if !set(s, &env.key("ALL")).is_empty() {
            return Err(missing_effect("TAG_ALL is still there", ""));
        }
        Ok(())
    }));
    problems.extend(check_row(&server, "rj-cleanup", "--keys", &mut |s, env| {
        seed_sets(s, env);
        let key = format!("{}-2:out", env.tag);
        s.cli(&["SET", &key, "v"]);
        step(rj(env, "rj-cleanup", &["--keys", "--yes"]))?;
        if check::all_keys(s).contains(&key) {
            return Err(missing_effect(format!("{key} is still there"), ""));
        }
        Ok(())
    }));
    problems.extend(check_row(
        &server,
        "rj-cleanup",
        "--records",
        &mut |s, env| {
            seed_sets(s, env);
            let unknown = env.key("TRACKER:unknown");
            s.cli(&["HSET", &unknown, "9", "1"]);
            step(rj(env, "rj-cleanup", &["--records", "--yes"]))?;
            let left = check::all_keys(s);
            if left.contains(&env.job("2")) || left.contains(&unknown) {
                return Err(missing_effect(format!("records left: {left:?}"), ""));
            }
            Ok(())
        },
    ));
    assert_documented(problems);
}

// ---- rj-wait ----------------------------------------------------------------------------------

/// rj-wait as a restricted user: one job finished before it starts (counted from the sets and
/// its record), one moved while it blocks on the stream (XREAD, then XINFO STREAM).
fn wait_for_a_move(s: &RedisServer, env: &TestEnv, args: &[&str]) -> Result<(), Refusal> {
    use crate::util::wait_support::{self as ws, completed, Waiting};
    ws::record(s, env, &["301", "302"]);
    ws::moves(s, env, &[completed("301")], None);
    let mut a = vec!["-q", "--timeout", "30s"];
    a.extend_from_slice(args);
    let w = Waiting::start(s, env, &a);
    ws::moves(s, env, &[completed("302")], None);
    let end = w.end(Duration::from_secs(40));
    if !end.status.success() {
        return Err(Refusal {
            code: end.code(),
            why: format!("exit {:?}", end.code()),
            stderr: end.stderr,
            one_line: true,
        });
    }
    // Without IDs job 301, finished before the start, is not awaited.
    let mut want = String::new();
    if !args.is_empty() {
        want.push_str(&format!("{} 301 COMPLETED 0:0 COMPLETED\n", env.tag));
    }
    want.push_str(&format!("{} 302 COMPLETED 0:0 COMPLETED\n", env.tag));
    if end.stdout != want {
        return Err(missing_effect(
            format!("stdout is {:?}", end.stdout),
            &end.stderr,
        ));
    }
    Ok(())
}

#[test]
fn rj_wait_follows_the_stream_with_exactly_its_commands() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut problems = Vec::new();
    problems.extend(check_row(&server, "rj-wait", "", &mut |s, env| {
        wait_for_a_move(s, env, &["301", "302"])
    }));
    problems.extend(check_row(&server, "rj-wait", "no ID", &mut |s, env| {
        // Without IDs: the jobs pending at the start, found with SCARD and SMEMBERS.
        wait_for_a_move(s, env, &[])
    }));
    assert_documented(problems);
}

// ---- rj-track ---------------------------------------------------------------------------------

/// A Slurm job that has finished, resubmitted when the controller is about to forget it
/// (MinJobAge, 300 s on the testbed, which has no accounting to ask instead).
struct FinishedJob {
    id: String,
    ended: Instant,
}

impl FinishedJob {
    fn new() -> FinishedJob {
        let id = slurm::run(
            "sbatch",
            &["--parsable", "-o", "/dev/null", "--wrap", "exit 0"],
        )
        .trim()
        .to_string();
        slurm::wait_finished(&id, Duration::from_secs(60));
        FinishedJob {
            id,
            ended: Instant::now(),
        }
    }

    fn id(&mut self) -> String {
        if self.ended.elapsed() > Duration::from_secs(200) {
            *self = FinishedJob::new();
        }
        self.id.clone()
    }
}

/// A job ID Slurm does not know, and one whose first-unknown time is kept from an earlier tick
/// although it is no longer tracked (so the unknown-jobs script forgets it).
const UNKNOWN: &str = "999999981";
const STALE: &str = "999999982";

/// The tracked job `id` and an unknown one under the tag, and a stale unknown entry.
fn seed_tracked(s: &RedisServer, env: &TestEnv, id: &str) {
    check::sadd(s, &env.key("ALL"), &[id, UNKNOWN]);
    check::sadd(s, &env.key("PENDING_AND_RUNNING"), &[id, UNKNOWN]);
    s.cli(&["HSET", &env.key("TRACKER:unknown"), STALE, "1"]);
}

/// One `rj-track --once` tick with `args`: the finished job is moved, recorded and printed, the
/// unknown one remembered, the stale entry forgotten, the lease given back.
fn track_once(s: &RedisServer, env: &TestEnv, id: &str, args: &[&str]) -> Result<(), Refusal> {
    let mut a = vec!["--once"];
    a.extend_from_slice(args);
    let out = run(env.cmd("rj-track").arg("-q").args(&a));
    let err = out.stderr();
    let stdout = step(out)?;
    let line = format!("{} {id} COMPLETED 0:0 COMPLETED\n", env.tag);
    if stdout != line {
        return Err(missing_effect(format!("stdout is {stdout:?}"), &err));
    }
    if set(s, &env.key("COMPLETED")) != [id] {
        return Err(missing_effect("the job is not in TAG_COMPLETED", &err));
    }
    let record = s.hgetall(&env.job(id));
    if record.get("state").map(String::as_str) != Some("COMPLETED")
        || !record.contains_key("tracked_by")
    {
        return Err(missing_effect(format!("its record is {record:?}"), &err));
    }
    let unknown = s.hgetall(&env.key("TRACKER:unknown"));
    if !unknown.contains_key(UNKNOWN) || unknown.contains_key(STALE) {
        return Err(missing_effect(
            format!("TAG_TRACKER:unknown is {unknown:?}"),
            &err,
        ));
    }
    if check::all_keys(s).contains(&env.key("TRACKER")) {
        return Err(missing_effect(
            "the lease TAG_TRACKER was not given back",
            &err,
        ));
    }
    Ok(())
}

/// rj-track as a daemon whose move reply a dropped connection loses: after reconnecting it finds
/// the move in Redis (SISMEMBER, HMGET) and prints it. Stopped with SIGTERM once it has.
fn track_lost_reply(server: &RedisServer, env: &TestEnv, id: &str) -> Result<(), Refusal> {
    let proxy = CutProxy::start(server.port, b"SMOVE", Duration::from_millis(500));
    // The same user, through the proxy.
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&env.config).unwrap()).unwrap();
    json["port"] = proxy.port.into();
    std::fs::write(&env.config, serde_json::to_vec(&json).unwrap()).unwrap();
    let out_path = env.path().join("track.out");
    let err_path = env.path().join("track.err");
    let child = env
        .std_command(util::bin_path("rj-track"))
        .args(["-q", "--interval", "1s"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn rj-track");
    let mut guard = util::Guard(child);
    let line = format!("{} {id} COMPLETED", env.tag);
    let start = Instant::now();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    loop {
        if let Some(st) = guard.0.try_wait().unwrap() {
            return Err(Refusal {
                code: st.code(),
                stderr: read(&err_path),
                why: format!("the daemon exited with {:?}", st.code()),
                one_line: false,
            });
        }
        if read(&out_path).contains(&line) {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Err(Refusal {
                code: None,
                stderr: read(&err_path),
                why: "the daemon neither printed the move nor exited within 20 s".into(),
                one_line: false,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(proxy.cut(), "the move never went through the proxy");
    let pid = nix::unistd::Pid::from_raw(guard.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let st = guard.0.wait().unwrap();
    assert_eq!(st.code(), Some(0), "{}", read(&err_path));
    Ok(())
}

/// rj-track's own commands: one tick that moves, records, remembers unknown jobs and forgets
/// stale ones, gives its lease back; then a daemon that lost a move's reply and finds the move.
/// Every option of the table as well. Needs the real Slurm testbed, for a real finished job.
#[test]
fn rj_track_moves_and_records_with_exactly_its_commands() {
    let Some((server, _env, _node)) = slurm::setup() else {
        return;
    };
    let mut problems = Vec::new();
    let mut job = FinishedJob::new();
    problems.extend(check_row(&server, "rj-track", "", &mut |s, env| {
        let id = job.id();
        seed_tracked(s, env, &id);
        track_once(s, env, &id, &[])?;
        // Tracked again, this time by a daemon that loses the reply of its move.
        s.cli(&[
            "SMOVE",
            &env.key("COMPLETED"),
            &env.key("PENDING_AND_RUNNING"),
            &id,
        ]);
        s.cli(&["DEL", &env.job(&id)]);
        track_lost_reply(s, env, &id)
    }));
    problems.extend(check_row(
        &server,
        "rj-track",
        "--record-ttl",
        &mut |s, env| {
            let id = job.id();
            seed_tracked(s, env, &id);
            track_once(s, env, &id, &["--record-ttl", "7d"])?;
            let ttl: i64 = s.cli(&["TTL", &env.job(&id)]).trim().parse().unwrap();
            if ttl <= 0 {
                return Err(missing_effect(format!("the record's TTL is {ttl}"), ""));
            }
            Ok(())
        },
    ));
    problems.extend(check_row(
        &server,
        "rj-track",
        "--all-tags",
        &mut |s, env| {
            let id = job.id();
            seed_tracked(s, env, &id);
            // The tag is found by SCAN (the database holds this tag alone; JOB_TAG is not read).
            track_once(s, env, &id, &["--all-tags"])
        },
    ));
    problems.extend(check_row(
        &server,
        "rj-track",
        "a spool to replay",
        &mut |s, env| {
            let id = job.id();
            seed_tracked(s, env, &id);
            let spool = env.spool();
            std::fs::create_dir_all(spool.parent().unwrap()).unwrap();
            let spooled = "999999983";
            let line = format!("{{\"id\":\"{spooled}\",\"fields\":[[\"host\",\"x\"]]}}\n");
            // First a job not recorded yet, then one recorded already (WATCH, then UNWATCH).
            for round in 0..2 {
                std::fs::write(&spool, &line).unwrap();
                let out = env.run("rj-track", &["-q", "--once"]);
                let err = out.stderr();
                step(out)?;
                if std::fs::metadata(&spool).unwrap().len() != 0 {
                    return Err(missing_effect(
                        format!("the spool was not replayed (round {round})"),
                        &err,
                    ));
                }
                if !set(s, &env.key("ALL")).iter().any(|m| m == spooled) {
                    return Err(missing_effect("the spooled job is not in TAG_ALL", &err));
                }
            }
            Ok(())
        },
    ));
    assert_documented(problems);
}
