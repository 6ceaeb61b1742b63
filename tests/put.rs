//! rj-put: every form against a real redis-server, the job taken from Slurm's variables, and
//! the results spool: Redis stopped while writing, replays killed with -9 or racing each other,
//! a million lines, SIGTERM, and the refusals no retry can fix.
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::util::check::{self, all_keys, fails, run};
use crate::util::{self, Guard, RedisOptions, RedisServer, TestEnv};

/// `rj-put` inside job 42 of the test's tag.
fn put(env: &TestEnv) -> assert_cmd::Command {
    let mut c = env.cmd("rj-put");
    c.env("SLURM_JOB_ID", "42");
    c
}

/// The same as a std Command, for a process the test talks to while it runs.
fn spawn_put(env: &TestEnv, args: &[&str]) -> Child {
    env.std_command(util::bin_path("rj-put"))
        .env("SLURM_JOB_ID", "42")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn key(env: &TestEnv, name: &str) -> String {
    format!("{}-42:{name}", env.tag)
}

fn get(server: &RedisServer, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query(&mut server.client())
        .unwrap()
}

fn list(server: &RedisServer, key: &str) -> Vec<Vec<u8>> {
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(&mut server.client())
        .unwrap()
}

fn list_text(server: &RedisServer, key: &str) -> Vec<String> {
    list(server, key)
        .into_iter()
        .map(|v| String::from_utf8(v).unwrap())
        .collect()
}

fn llen(server: &RedisServer, key: &str) -> usize {
    redis::cmd("LLEN")
        .arg(key)
        .query(&mut server.client())
        .unwrap_or(0)
}

/// The results spool of the test's tag, where `env.cmd` points XDG_STATE_HOME.
fn spool_dir(env: &TestEnv) -> PathBuf {
    env.path()
        .join("state/rj")
        .join(format!("{}.results", env.tag))
}

fn spooled(env: &TestEnv) -> Vec<PathBuf> {
    rj::results_spool::pending(&spool_dir(env)).unwrap()
}

/// A redis.json whose server is not there.
fn dead_config(env: &TestEnv) -> PathBuf {
    let dead = env.path().join("dead.json");
    std::fs::write(
        &dead,
        format!(r#"{{"host": "127.0.0.1", "port": {}}}"#, util::free_port()),
    )
    .unwrap();
    dead
}

/// Wait for a child and return its output (a `Guard` would kill it; the test wants it whole).
fn finish(child: Child) -> std::process::Output {
    child.wait_with_output().unwrap()
}

#[test]
fn every_form_writes_its_type_and_bytes() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    for args in [
        &["loss", "0.25"][..],
        &["delta", "-1.5"],
        &["--hash", "result", "loss=0.25", "steps=100", "note=a=b"],
        &["--push", "events", "started", "", "-3"],
        &["--push", "events", "--", "-x", "done"],
    ] {
        let out = run(put(&env).args(args));
        assert_eq!(out.ok(), "", "{args:?}: nothing on stdout");
        assert_eq!(out.stderr(), "", "{args:?}");
    }
    assert_eq!(get(&server, &key(&env, "loss")).unwrap(), b"0.25");
    assert_eq!(get(&server, &key(&env, "delta")).unwrap(), b"-1.5");
    let h = server.hgetall(&key(&env, "result"));
    assert_eq!(
        h.into_iter().collect::<Vec<_>>(),
        [
            ("loss".to_string(), "0.25".to_string()),
            ("note".into(), "a=b".into()),
            ("steps".into(), "100".into())
        ]
    );
    assert_eq!(
        list_text(&server, &key(&env, "events")),
        ["started", "", "-3", "-x", "done"]
    );

    // `-`: every byte value, CR LF and NUL included, as it was.
    let all: Vec<u8> = (0..=255u8).chain(*b"\r\n\0end").collect();
    let out = run(put(&env).args(["blob.bin", "-"]).write_stdin(all.clone()));
    out.ok();
    assert_eq!(get(&server, &key(&env, "blob.bin")).unwrap(), all);

    // --lines: every line without its newline, an unterminated last line too, in order.
    let out = run(put(&env)
        .args(["--lines", "log"])
        .write_stdin("first\n\nthird \r\nlast"));
    out.ok();
    assert_eq!(
        list_text(&server, &key(&env, "log")),
        ["first", "", "third \r", "last"]
    );

    // rj-last reads them back as the job's keys.
    let doc = env
        .run("rj-last", &["--job", "42", "--format", "json"])
        .json();
    let names: Vec<&str> = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    let want: Vec<String> = ["blob.bin", "delta", "events", "log", "loss", "result"]
        .iter()
        .map(|n| key(&env, n))
        .collect();
    assert_eq!(names, want);
    assert!(!spool_dir(&env).exists(), "no spool when Redis answers");
}

#[test]
fn the_job_comes_from_slurms_variables_or_job() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    // An array task: SLURM_JOB_ID is the task's own number, the ledger's name is <array>_<task>.
    run(env
        .cmd("rj-put")
        .env("SLURM_JOB_ID", "903")
        .env("SLURM_ARRAY_JOB_ID", "900")
        .env("SLURM_ARRAY_TASK_ID", "3")
        .args(["lr", "0.003"]))
    .ok();
    run(env
        .cmd("rj-put")
        .env("SLURM_JOB_ID", "901")
        .args(["plain", "1"]))
    .ok();
    // --job names another job, normalised as Slurm prints IDs.
    run(env
        .cmd("rj-put")
        .env("SLURM_JOB_ID", "901")
        .args(["--job", "0077_02", "other", "2"]))
    .ok();
    env.run("rj-put", &["--job", "88", "outside", "3"]).ok();
    let t = &env.tag;
    assert_eq!(
        all_keys(&server),
        [
            format!("{t}-77_2:other"),
            format!("{t}-88:outside"),
            format!("{t}-900_3:lr"),
            format!("{t}-901:plain"),
        ]
    );
    // The array's parent shows the task's key.
    let out = env.run("rj-last", &["--job", "900"]).ok();
    assert_eq!(out, format!("Key:  {t}-900_3:lr\nValue: 0.003\n---\n"));
}

#[test]
fn usage_errors_are_one_line_and_write_nothing() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    for (args, with_job, says) in [
        (&["loss", "1"][..], false, "--job"),
        (&["loss"], true, "VALUE"),
        (&["loss", "1", "2"], true, "--push"),
        (&["", "1"], true, "empty"),
        (&[":loss", "1"], true, "':'"),
        (&["a*", "1"], true, "glob"),
        (&["a\nb", "1"], true, "control"),
        (&["--hash", "h", "novalue"], true, "FIELD=VALUE"),
        (&["--hash", "h"], true, "FIELD=VALUE"),
        (&["--push", "l"], true, "--push"),
        (&["--lines", "l", "x"], true, "stdin"),
        (&["--hash", "--push", "l", "a=1"], true, "cannot be used"),
        (&["--job", "12x", "a", "1"], true, "12x"),
        (&["--retry-for", "soon", "a", "1"], true, "retry-for"),
    ] {
        let mut cmd = if with_job {
            put(&env)
        } else {
            env.cmd("rj-put")
        };
        let line = run(cmd.args(args)).fails(2);
        assert!(line.contains(says), "{args:?}: {line}");
    }
    assert!(all_keys(&server).is_empty());
    assert!(!spool_dir(&env).exists());
}

/// Redis stops in the middle of a `--lines` stream and comes back before its end: what was
/// written before stays, what came meanwhile was spooled and is replayed in order before the
/// rest, and the list holds every line exactly once.
#[test]
fn redis_stopped_and_restarted_during_lines_loses_and_repeats_nothing() {
    let Some((mut server, env)) = util::redis_with(RedisOptions {
        persistent: true,
        ..Default::default()
    }) else {
        return;
    };
    let log = key(&env, "log");
    let mut child = spawn_put(&env, &["--lines", "log"]);
    let mut stdin = child.stdin.take().unwrap();
    let lines = |from: usize, to: usize| -> String {
        (from..to)
            .map(|i| format!("line {i}\n"))
            .collect::<String>()
    };
    stdin.write_all(lines(0, 1000).as_bytes()).unwrap();
    util::wait_until(Duration::from_secs(20), "the first 1000 lines", || {
        llen(&server, &log) == 1000
    });
    server.kill();
    stdin.write_all(lines(1000, 2000).as_bytes()).unwrap();
    util::wait_until(Duration::from_secs(20), "lines spooled", || {
        !spooled(&env).is_empty()
    });
    // More while Redis is down, in several batches.
    for part in 0..5 {
        std::thread::sleep(Duration::from_millis(200));
        let from = 2000 + part * 100;
        stdin.write_all(lines(from, from + 100).as_bytes()).unwrap();
    }
    server.restart();
    stdin.write_all(lines(2500, 3000).as_bytes()).unwrap();
    drop(stdin);
    let out = finish(child);
    check::code(&out, 0);
    let want: Vec<String> = (0..3000).map(|i| format!("line {i}")).collect();
    assert_eq!(list_text(&server, &log), want);
    assert!(spooled(&env).is_empty(), "spool drained");
}

/// Redis stays down past --retry-for: every form is spooled with 75 and one line naming the
/// spool; the next rj-put replays all of it, binary values and lists exactly once.
#[test]
fn redis_down_spools_with_75_and_the_next_rj_put_replays_everything_once() {
    let Some((mut server, env)) = util::redis_with(RedisOptions {
        persistent: true,
        ..Default::default()
    }) else {
        return;
    };
    run(put(&env).args(["--push", "log", "before"])).ok();
    server.kill();
    let dir = spool_dir(&env);
    let binary: Vec<u8> = vec![0, 255, b'\r', b'\n', b'*', b'1'];
    for (args, stdin) in [
        (&["--retry-for", "0", "--push", "log", "a", "b"][..], None),
        (&["--retry-for", "0", "loss", "0.5"], None),
        (&["--retry-for", "0", "--hash", "result", "x=1"], None),
        (&["--retry-for", "0", "blob", "-"], Some(binary.clone())),
        (
            &["--retry-for", "0", "--lines", "log"],
            Some(b"c\nd\n".to_vec()),
        ),
        (&["--retry-for", "0", "--push", "log", "e"], None),
        (&["--retry-for", "0", "loss", "0.25"], None),
    ] {
        let mut cmd = put(&env);
        cmd.args(args);
        if let Some(s) = stdin {
            cmd.write_stdin(s);
        }
        let line = run(&mut cmd).fails(75);
        assert!(
            line.contains(dir.to_str().unwrap()) && line.contains("cannot connect to Redis"),
            "{args:?}: {line}"
        );
        assert!(line.contains("the next rj-put or rj-track"), "{line}");
    }
    assert_eq!(spooled(&env).len(), 7);
    // With writes already waiting, Redis was away for them too: no retrying again (a job that
    // writes ten keys must not wait ten times --retry-for).
    let start = Instant::now();
    let out = run(put(&env).args(["--retry-for", "1m", "--push", "log", "f"]));
    let line = out.fails(75);
    assert!(line.contains(&key(&env, "log")), "{line}");
    assert!(start.elapsed() < Duration::from_secs(30), "no waiting");

    server.restart();
    let out = run(put(&env).args(["--push", "log", "after"]));
    out.ok();
    let err = out.stderr();
    assert!(err.contains("replayed 8 spooled write(s)"), "{err}");
    assert_eq!(
        list_text(&server, &key(&env, "log")),
        ["before", "a", "b", "c", "d", "e", "f", "after"]
    );
    assert_eq!(get(&server, &key(&env, "loss")).unwrap(), b"0.25");
    assert_eq!(get(&server, &key(&env, "blob")).unwrap(), binary);
    assert_eq!(server.hgetall(&key(&env, "result"))["x"], "1");
    assert!(spooled(&env).is_empty());
    // Nothing left to say next time.
    let out = run(put(&env).args(["loss", "0.125"]));
    assert_eq!(out.stderr(), "");
}

/// A job's last write may be the one spooled: rj-track's next tick replays it, once.
#[test]
fn rj_track_replays_the_results_spool_every_tick_once() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let dead = dead_config(&env);
    for args in [&["--push", "log", "a", "b"][..], &["loss", "0.5"]] {
        let out = run(put(&env)
            .env("RJ_CONFIG", &dead)
            .args(["--retry-for", "0"])
            .args(args));
        out.fails(75);
    }
    assert_eq!(spooled(&env).len(), 2);
    // No job is tracked: the tick asks Slurm nothing, and still replays.
    let out = env.run("rj-track", &["--once", "--tag", &env.tag]);
    out.ok();
    assert!(
        out.stderr().contains("replayed 2 spooled write(s)"),
        "{}",
        out.stderr()
    );
    assert_eq!(list_text(&server, &key(&env, "log")), ["a", "b"]);
    assert_eq!(get(&server, &key(&env, "loss")).unwrap(), b"0.5");
    assert!(spooled(&env).is_empty());
    env.run("rj-track", &["--once", "--tag", &env.tag]).ok();
    assert_eq!(
        list_text(&server, &key(&env, "log")),
        ["a", "b"],
        "not twice"
    );
}

/// With an empty spool rj-put retries for --retry-for: past it, 75; when Redis comes back
/// within it, rj-put writes and exits 0 with nothing left in the spool.
#[test]
fn retry_for_is_spent_and_redis_back_within_it_is_success() {
    let Some((mut server, env)) = util::redis_with(RedisOptions {
        persistent: true,
        ..Default::default()
    }) else {
        return;
    };
    server.kill();
    // Redis stays away past --retry-for: the attempts take that long, then 75.
    let start = Instant::now();
    let out = run(put(&env).args(["-q", "--retry-for", "1s", "--push", "log", "x"]));
    let line = out.fails(75);
    assert!(line.contains(&key(&env, "log")), "{line}");
    assert!(start.elapsed() >= Duration::from_secs(1));
    std::fs::remove_dir_all(spool_dir(&env)).unwrap();

    let child = spawn_put(&env, &["--retry-for", "60s", "--push", "log", "x"]);
    util::wait_until(Duration::from_secs(20), "the write spooled", || {
        !spooled(&env).is_empty()
    });
    std::thread::sleep(Duration::from_millis(500));
    server.restart();
    let out = finish(child);
    check::code(&out, 0);
    let err = check::stderr(&out);
    assert!(err.contains("retrying for up to 1m"), "{err}");
    assert_eq!(list_text(&server, &key(&env, "log")), ["x"]);
    assert!(spooled(&env).is_empty());
}

/// Spool `n` files, each pushing one value `v<i>` to the list `log` of job 42.
fn spool_many(env: &TestEnv, n: usize) -> Vec<String> {
    let dir = spool_dir(env);
    (0..n)
        .map(|i| {
            let v = format!("v{i}");
            rj::results_spool::write(
                &dir,
                &[rj::results_spool::Op::RPush {
                    key: key(env, "log"),
                    values: vec![v.clone().into_bytes()],
                }],
            )
            .unwrap();
            v
        })
        .collect()
}

/// A replay killed with SIGKILL at several points and run again: every value exactly once, in
/// order, whatever the moment of the kill.
#[test]
fn replay_killed_with_sigkill_and_rerun_duplicates_nothing() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let want = spool_many(&env, 3000);
    let log = key(&env, "log");
    // Ten kills: each lands wherever the replay is, now and then between an EXEC and the
    // deletion of its file (the test below makes that case certain).
    for stop_at in (1..=10).map(|i| i * 250) {
        let child = spawn_put(&env, &["other", "1"]);
        let mut guard = Guard(child);
        util::wait_until(Duration::from_secs(60), "the replay to get going", || {
            llen(&server, &log) >= stop_at
        });
        kill(Pid::from_raw(guard.0.id() as i32), Signal::SIGKILL).unwrap();
        let _ = guard.0.wait();
        let n = llen(&server, &log);
        assert!(n < want.len(), "killed half-way, at {n}");
    }
    assert!(!spooled(&env).is_empty());
    run(put(&env).args(["other", "2"])).ok();
    assert_eq!(list_text(&server, &log), want);
    assert!(spooled(&env).is_empty());
}

/// The window a SIGKILL can hit only by luck, made certain: a file whose writes were applied
/// but that was not deleted (the replayer died between EXEC and unlink) is deleted, not applied
/// again, because of its marker key.
#[test]
fn a_file_applied_but_not_deleted_is_not_applied_again() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    spool_many(&env, 2);
    let files = spooled(&env);
    let copy = std::fs::read(&files[0]).unwrap();
    run(put(&env).args(["other", "1"])).ok();
    assert_eq!(list_text(&server, &key(&env, "log")), ["v0", "v1"]);
    std::fs::write(&files[0], copy).unwrap();
    let out = run(put(&env).args(["other", "2"]));
    out.ok();
    assert_eq!(list_text(&server, &key(&env, "log")), ["v0", "v1"]);
    assert!(spooled(&env).is_empty(), "deleted all the same");
    let name = files[0].file_name().unwrap().to_str().unwrap();
    let marker = format!("{}_REPLAYED:{name}", env.tag);
    let ttl: i64 = redis::cmd("TTL")
        .arg(&marker)
        .query(&mut server.client())
        .unwrap();
    assert!(ttl > 29 * 24 * 3600, "the marker expires in a month: {ttl}");
}

/// Three replays of the same spool at once (rj-track on a login node, jobs on compute nodes):
/// each file is applied by one of them only, in order.
#[test]
fn racing_replays_apply_each_file_once() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let want = spool_many(&env, 1500);
    let children: Vec<Child> = (0..3)
        .map(|i| spawn_put(&env, &["other", &i.to_string()]))
        .collect();
    for c in children {
        check::code(&finish(c), 0);
    }
    assert_eq!(list_text(&server, &key(&env, "log")), want);
    assert!(spooled(&env).is_empty());
}

#[test]
fn a_spool_file_that_is_not_one_is_set_aside() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    spool_many(&env, 1);
    let dir = spool_dir(&env);
    let bad = dir.join("0000000001.000000000-x-1-0.put");
    std::fs::write(&bad, b"*1\r\n$8\r\nFLUSHALL\r\n").unwrap();
    let out = run(put(&env).args(["other", "1"]));
    out.ok();
    let err = out.stderr();
    assert!(err.contains("set 1 unreadable file(s) aside"), "{err}");
    assert!(dir.join("0000000001.000000000-x-1-0.put.bad").exists());
    assert_eq!(list_text(&server, &key(&env, "log")), ["v0"]);
}

#[test]
fn a_million_lines_arrive_whole_and_in_order() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    const N: usize = 1_000_000;
    let mut child = spawn_put(&env, &["--lines", "log"]);
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut buf = Vec::with_capacity(1 << 20);
        for i in 0..N {
            writeln!(buf, "{i} the quick brown fox").unwrap();
            if buf.len() > (1 << 20) - 64 {
                stdin.write_all(&buf).unwrap();
                buf.clear();
            }
        }
        stdin.write_all(&buf).unwrap();
    });
    let out = finish(child);
    writer.join().unwrap();
    check::code(&out, 0);
    let got = list(&server, &key(&env, "log"));
    assert_eq!(got.len(), N);
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v, format!("{i} the quick brown fox").as_bytes(), "line {i}");
    }
}

/// SIGTERM (Slurm's time limit) while `--lines` waits for more: what was read, an unfinished
/// last line too, is pushed before rj-put stops with 130.
#[test]
fn sigterm_during_lines_pushes_what_was_read() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let log = key(&env, "log");
    let mut child = spawn_put(&env, &["--lines", "log"]);
    let mut stdin = child.stdin.take().unwrap();
    // One write: the reader takes the unfinished "c" with "a" and "b".
    stdin.write_all(b"a\nb\nc").unwrap();
    util::wait_until(Duration::from_secs(20), "a and b pushed", || {
        llen(&server, &log) == 2
    });
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let out = finish(child);
    drop(stdin);
    let line = fails(&out, 130, "rj-put");
    assert!(line.contains("SIGTERM") && line.contains(&log), "{line}");
    assert_eq!(list_text(&server, &log), ["a", "b", "c"]);
}

/// SIGTERM while Redis is away: no waiting for --retry-for (Slurm kills for good soon after);
/// what was read is spooled at once, and the status says so.
#[test]
fn sigterm_with_redis_down_spools_at_once() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let mut child = env
        .std_command(util::bin_path("rj-put"))
        .env("SLURM_JOB_ID", "42")
        .env("RJ_CONFIG", dead_config(&env))
        .args(["-q", "--retry-for", "10m", "--lines", "log"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Lines that trickle in while Redis is away go to the spool in few, bigger files.
    for line in [&b"a\n"[..], b"b\n", b"c\n"] {
        stdin.write_all(line).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let start = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let out = finish(child);
    assert!(start.elapsed() < Duration::from_secs(10), "no waiting");
    let line = fails(&out, 75, "rj-put");
    assert!(line.contains("3 line(s)"), "{line}");
    assert_eq!(spooled(&env).len(), 1, "one file for the three lines");
    run(put(&env).args(["other", "1"])).ok();
    assert_eq!(list_text(&server, &key(&env, "log")), ["a", "b", "c"]);
}

/// A key of another type is 65 and a refused permission 77, at once (no retry), one line naming
/// the key; the write waits in the spool and is replayed once the cause is fixed.
#[test]
fn wrongtype_and_noperm_exit_with_their_codes_and_keep_the_value() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let log = key(&env, "log");
    server.cli(&["SET", &log, "a string"]);
    let start = Instant::now();
    let line = run(put(&env).args(["--push", "log", "x"])).fails(65);
    assert!(start.elapsed() < Duration::from_secs(10), "not retried");
    assert!(line.contains("WRONGTYPE") && line.contains(&log), "{line}");
    assert!(line.contains("once that is fixed"), "{line}");
    assert_eq!(spooled(&env).len(), 1);

    // The stuck file does not stop other writes; it says why it stays.
    let out = run(put(&env).args(["other", "1"]));
    out.ok();
    let err = out.stderr();
    assert!(err.contains("not replayed") && err.contains(&log), "{err}");
    server.cli(&["DEL", &log]);
    let out = run(put(&env).args(["other", "2"]));
    out.ok();
    assert_eq!(list_text(&server, &log), ["x"]);
    assert!(spooled(&env).is_empty());

    // An ACL user that may write other keys only.
    server.cli(&[
        "ACL", "SETUSER", "limited", "on", ">pw", "~other:*", "+@all",
    ]);
    let cfg = env.path().join("limited.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"host": "127.0.0.1", "port": {}, "username": "limited", "password": "pw"}}"#,
            server.port
        ),
    )
    .unwrap();
    util::set_mode(&cfg, 0o600);
    let loss = key(&env, "loss");
    let line = fails(
        &run(put(&env).env("RJ_CONFIG", &cfg).args(["loss", "0.5"])),
        77,
        "rj-put",
    );
    assert!(line.contains("NOPERM") && line.contains(&loss), "{line}");
    assert!(get(&server, &loss).is_none());
    // The ledger's own user replays it.
    run(put(&env).args(["other", "3"])).ok();
    assert_eq!(get(&server, &loss).unwrap(), b"0.5");
}

/// A replayed spool file leaves its marker `T_REPLAYED:<file>` behind (for a month);
/// `rj-cleanup --keys` takes the markers with the data they guarded, and no other tag's.
#[test]
fn cleanup_keys_takes_the_replay_markers_and_no_other_tags() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    spool_many(&env, 2);
    run(put(&env).args(["other", "1"])).ok();
    assert!(spooled(&env).is_empty());
    let pattern = format!("{}_REPLAYED:*", env.tag);
    let markers = |server: &RedisServer| -> Vec<String> {
        all_keys(server)
            .into_iter()
            .filter(|k| k.starts_with(&pattern[..pattern.len() - 1]))
            .collect()
    };
    assert_eq!(markers(&server).len(), 2, "{:?}", all_keys(&server));
    // Tag `T_REPLAYED` would own `T_REPLAYED_ALL`, `T_REPLAYED-5:x`, never `T_REPLAYED:…`.
    let other = format!("{}x_REPLAYED:f", env.tag);
    server.cli(&["SET", &other, "1"]);
    check::sadd(&server, &env.key("ALL"), &["42"]);

    let out = env.run("rj-cleanup", &["--keys", "--dry-run"]);
    let listed = out.ok();
    for m in markers(&server) {
        assert!(listed.lines().any(|l| l == m), "{m} not listed:\n{listed}");
    }
    assert!(
        out.stderr().contains("2 replay markers"),
        "{}",
        out.stderr()
    );

    env.run("rj-cleanup", &["--keys", "--yes"]).ok();
    assert!(markers(&server).is_empty(), "{:?}", all_keys(&server));
    let left = all_keys(&server);
    assert_eq!(left, [other], "only the other tag's marker stays");
}
