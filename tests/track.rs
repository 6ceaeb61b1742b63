//! rj-track end to end: real Slurm testbed, real redis-server. Every test ends by checking the
//! invariant of ARCHITECTURE.md §2: each ID of T_ALL is in exactly one of the five other sets.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::check::{self, ok, run};
use crate::util::proxy::CutProxy;
use crate::util::tracker::Tracker;
use crate::util::{self, slurm, RedisOptions, RedisServer, TestEnv, FIVE};

/// Each ID of T_ALL in exactly one of the five sets, and no ID in them outside T_ALL.
fn assert_invariant(server: &RedisServer, env: &TestEnv) {
    let all = server.smembers(&env.key("ALL"));
    let mut seen: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for set in FIVE {
        for id in server.smembers(&env.key(set)) {
            seen.entry(id).or_default().push(set);
        }
    }
    for id in &all {
        let sets = seen.get(id).cloned().unwrap_or_default();
        assert_eq!(sets.len(), 1, "job {id} of T_ALL is in {sets:?}");
    }
    for id in seen.keys() {
        assert!(
            all.contains(id),
            "job {id} is in a state set but not in T_ALL"
        );
    }
}

fn set_of(server: &RedisServer, env: &TestEnv, id: &str) -> Option<&'static str> {
    FIVE.into_iter()
        .find(|s| server.smembers(&env.key(s)).iter().any(|m| m == id))
}

/// Submit through rj-launch (so the job is recorded as users do it) and return its ID.
fn launch(env: &TestEnv, sbatch: &[&str]) -> String {
    let mut args = vec!["--", "-o", "/dev/null"];
    args.extend_from_slice(sbatch);
    run(env.cmd("rj-launch").args(&args))
        .ok()
        .trim()
        .to_string()
}

fn scancel(id: &str) {
    slurm::run("scancel", &[id]);
}

fn wait_state(id: &str, want: &str, timeout: Duration) {
    util::wait_until(timeout, &format!("job {id} to be {want}"), || {
        slurm::state(id).as_deref() == Some(want)
    });
}

fn testbed(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-testbed");
    let out = Command::new(script)
        .args(args)
        .output()
        .expect("scripts/slurm-testbed");
    assert!(
        out.status.success(),
        "slurm-testbed {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn track_command(env: &TestEnv, path: Option<&str>) -> Command {
    let mut c = env.std_command(util::bin_path("rj-track"));
    if let Some(p) = path {
        c.env("PATH", p);
    }
    c
}

/// Wait until T_PENDING_AND_RUNNING is empty, showing the daemon's stderr on timeout.
fn wait_drained(server: &RedisServer, env: &TestEnv, d: &Tracker, timeout: Duration) {
    let start = Instant::now();
    while !server.smembers(&env.key("PENDING_AND_RUNNING")).is_empty() {
        assert!(
            start.elapsed() < timeout,
            "jobs still pending after {timeout:?}: {:?}\nstdout:\n{}\nstderr:\n{}",
            server.smembers(&env.key("PENDING_AND_RUNNING")),
            d.stdout(),
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A PATH on which squeue first touches a mark file, then sleeps `secs` before running the real
/// squeue: a tick that is slow on purpose (as when slurmctld is unwell). Returns the PATH and
/// the mark, which exists once a tick is inside squeue.
fn slow_squeue(env: &TestEnv, secs: u32) -> (String, PathBuf) {
    let mark = env.path().join("in-squeue");
    let real = which::which("squeue").unwrap();
    let path = env.fake_tools(&[(
        "squeue",
        &format!(
            "touch '{}'; sleep {secs}; exec '{}' \"$@\"",
            mark.display(),
            real.display()
        ),
    )]);
    (path, mark)
}

/// The entries of T_EVENTS that report moves (rj-launch's `recorded` entries left out), each
/// as its fields in order.
fn move_events(server: &RedisServer, env: &TestEnv) -> Vec<Vec<(String, String)>> {
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(env.key("EVENTS"))
        .arg("-")
        .arg("+")
        .query(&mut server.client())
        .unwrap();
    entries
        .into_iter()
        .map(|(_, kv)| {
            kv.chunks(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect::<Vec<_>>()
        })
        .filter(|e| !e.iter().any(|(k, v)| k == "state" && v == "recorded"))
        .collect()
}

/// Exactly one move event per job in the four final sets, with the contract's fields in order
/// and what the job's record says; none for any other job.
fn assert_one_event_per_move(server: &RedisServer, env: &TestEnv) {
    let events = move_events(server, env);
    let get = |e: &[(String, String)], k: &str| {
        e.iter()
            .find(|(f, _)| f == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("event without {k}: {e:?}"))
    };
    let mut moved = 0;
    for set in &FIVE[1..] {
        for id in server.smembers(&env.key(set)) {
            let mine: Vec<&Vec<(String, String)>> =
                events.iter().filter(|e| get(e, "job") == id).collect();
            assert_eq!(mine.len(), 1, "job {id} of {set}: events {events:?}");
            let e = mine[0];
            let fields: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(
                fields,
                ["job", "set", "state", "exit_code", "tracked_at", "tracker"]
            );
            let rec = server.hgetall(&env.job(&id));
            assert_eq!(get(e, "set"), *set, "{e:?}");
            assert_eq!(get(e, "state"), rec["state"], "{e:?} {rec:?}");
            let exit = rec.get("exit_code").cloned().unwrap_or_default();
            assert_eq!(get(e, "exit_code"), exit, "{e:?} {rec:?}");
            assert_eq!(get(e, "tracked_at"), rec["tracked_at"], "{e:?} {rec:?}");
            assert_eq!(get(e, "tracker"), rec["tracked_by"], "{e:?} {rec:?}");
            moved += 1;
        }
    }
    assert_eq!(events.len(), moved, "events of jobs not moved: {events:?}");
}

/// A finished Slurm job tracked under the tag without rj-launch (whose own entries in T_EVENTS
/// are not what these tests count).
fn seed_finished(server: &RedisServer, env: &TestEnv) -> String {
    let id = slurm::run(
        "sbatch",
        &["--parsable", "-o", "/dev/null", "--wrap", "exit 0"],
    )
    .trim()
    .to_string();
    check::sadd(server, &env.key("ALL"), &[&id]);
    check::sadd(server, &env.key("PENDING_AND_RUNNING"), &[&id]);
    slurm::wait_finished(&id, Duration::from_secs(60));
    own_accounting_record(&id);
    id
}

/// With slurmdbd, wait (up to 10 s) until sacct has the job's own record: for a second or two
/// after a job ends it shows only slurmdbd's placeholder (`allocation`, no partition), which
/// rj-track takes as no answer and judges a tick later, while these tests' one `--once`
/// expects the move.
fn own_accounting_record(id: &str) {
    if std::env::var("RJ_SLURM_ACCOUNTING").as_deref() != Ok("slurmdbd") {
        return;
    }
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if own_record_state(id).is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The state in sacct's own record of the job; None while sacct shows nothing or only
/// slurmdbd's placeholder (`allocation`, no partition).
fn own_record_state(id: &str) -> Option<String> {
    let out = slurm::run(
        "sacct",
        &["-n", "-X", "-P", "-j", id, "-o", "JobName,Partition,State"],
    );
    let mut fields = out.lines().next()?.split('|');
    let (name, partition, state) = (fields.next()?, fields.next()?, fields.next()?);
    let placeholder = name == "allocation" && partition.is_empty();
    (!placeholder).then(|| state.to_string())
}

/// With slurmdbd, wait (up to 30 s) until sacct's own record of the job says `state`: the
/// controller tells slurmdbd after squeue shows it, and a test's one `--once` must not run
/// before accounting agrees (rj-track rightly leaves a job whose sources disagree to a later
/// tick).
fn accounted_as(id: &str, state: &str) {
    if std::env::var("RJ_SLURM_ACCOUNTING").as_deref() != Ok("slurmdbd") {
        return;
    }
    util::wait_until(
        Duration::from_secs(30),
        &format!("sacct's own record of {id} to say {state}"),
        || own_record_state(id).as_deref() == Some(state),
    );
}

/// `[D-]HH:MM:SS`, the one form of elapsed in every record.
fn one_form_of_elapsed(e: &str) -> bool {
    let (days, hms) = e.split_once('-').unwrap_or(("0", e));
    let parts: Vec<&str> = hms.split(':').collect();
    days.parse::<u64>().is_ok()
        && parts.len() == 3
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Does the testbed's accounting measure jobs (slurmdbd, and a JobAcctGatherType other than
/// none)? Only then do records get max_rss and cpu_efficiency.
fn gathers_usage() -> bool {
    let config = slurm::run("scontrol", &["show", "config"]);
    let value = |key: &str| {
        config
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .and_then(|l| l.split_once('='))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    value("AccountingStorageType").ends_with("slurmdbd")
        && !matches!(
            value("JobAcctGatherType").as_str(),
            "" | "(null)" | "jobacct_gather/none"
        )
}

#[test]
fn exit_codes_cancels_and_arrays_end_in_their_sets() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    // ok0 holds 150 MB for 2 s (max_rss), bad is busy for 2 s (cpu_efficiency) and writes to
    // its own files (stdout, stderr), never can never start (its dependency, bad, fails).
    let ok0 = launch(
        &env,
        &[
            "--wrap",
            "x=$(head -c 150000000 /dev/zero | tr '\\0' a); sleep 2; echo ${#x}",
        ],
    );
    let bad = launch(
        &env,
        &[
            "-J",
            "bad job",
            "-o",
            "out-%x-%j.txt",
            "-e",
            "err-%j-%%.txt",
            "--wrap",
            "timeout 2 sh -c 'while :; do :; done'; exit 3",
        ],
    );
    let never = launch(
        &env,
        &[
            &format!("--dependency=afterok:{bad}"),
            "--kill-on-invalid-dep=no",
            "--wrap",
            "exit 0",
        ],
    );
    let held = launch(&env, &["--hold", "--wrap", "exit 0"]);
    let long = launch(&env, &["--wrap", "sleep 300"]);
    let array = launch(
        &env,
        &["--array=1-3", "--wrap", "[ $SLURM_ARRAY_TASK_ID != 2 ]"],
    );
    let d = Tracker::start(&env, "track", &["--record-ttl", "7d", "--cancel-never"]);
    scancel(&held);
    wait_state(&long, "RUNNING", Duration::from_secs(60));
    scancel(&long);
    wait_drained(&server, &env, &d, Duration::from_secs(90));

    assert_eq!(set_of(&server, &env, &ok0), Some("COMPLETED"));
    assert_eq!(set_of(&server, &env, &bad), Some("FAILED"));
    assert_eq!(set_of(&server, &env, &held), Some("CANCELLED"));
    assert_eq!(set_of(&server, &env, &never), Some("CANCELLED"));
    assert_eq!(set_of(&server, &env, &long), Some("CANCELLED"));
    assert_eq!(
        set_of(&server, &env, &array),
        Some("FAILED"),
        "array {array}: {:?}\nstdout:\n{}\nstderr:\n{}",
        server.hgetall(&env.job(&array)),
        d.stdout(),
        d.stderr()
    );

    let h = server.hgetall(&env.job(&bad));
    assert_eq!(h["state"], "FAILED");
    assert_eq!(h["exit_code"], "3:0");
    for k in [
        "start",
        "end",
        "elapsed",
        "nodes",
        "partition",
        "name",
        "submitted",
    ] {
        assert!(h.contains_key(k), "{k} missing in {h:?}");
    }
    assert!(server.hgetall(&env.job(&long))["state"].starts_with("CANCELLED"));
    let a = server.hgetall(&env.job(&array));
    assert_eq!(a["state"], "FAILED");
    assert_eq!(a["tasks"], "3");
    assert_eq!(a["tasks_completed"], "2");
    assert_eq!(a["tasks_failed"], "1");
    let ttl: i64 = redis::cmd("TTL")
        .arg(env.job(&ok0))
        .query(&mut server.client())
        .unwrap();
    assert!(ttl > 6 * 86400 && ttl <= 7 * 86400, "TTL {ttl}");

    // The details: output files as slurmd wrote them, one form of elapsed and exit code.
    let dir = env.path().display().to_string();
    assert_eq!(h["stdout"], format!("{dir}/out-bad job-{bad}.txt"), "{h:?}");
    assert_eq!(h["stderr"], format!("{dir}/err-{bad}-%.txt"), "{h:?}");
    for f in ["stdout", "stderr"] {
        assert!(Path::new(&h[f]).exists(), "{f} {} was not written", h[f]);
    }
    for id in [&ok0, &bad, &held, &long, &array, &never] {
        let r = server.hgetall(&env.job(id));
        if let Some(e) = r.get("elapsed") {
            assert!(one_form_of_elapsed(e), "job {id}: elapsed {e:?}");
        }
        if let Some(e) = r.get("exit_code") {
            let (code, signal) = e.split_once(':').expect("code:signal");
            assert!(
                code.parse::<u8>().is_ok() && signal.parse::<u8>().is_ok(),
                "{e}"
            );
        }
    }
    // The job that could never start: its reason, one warning, and --cancel-never's scancel.
    let n = server.hgetall(&env.job(&never));
    assert_eq!(n["reason"], "DependencyNeverSatisfied", "{n:?}");
    assert!(n["state"].starts_with("CANCELLED"), "{n:?}");
    let err = d.stderr();
    let warned = format!("job {never} of {} can never start", env.tag);
    assert_eq!(err.matches(&warned).count(), 1, "{err}");
    assert!(err.contains("--cancel-never: cancelled 1 job(s)"), "{err}");
    // Usage figures, where accounting gathers them (the testbeds' jobacct_gather/linux with
    // slurmdbd); absent where it does not (no slurmdbd, or a site's jobacct_gather/none).
    let r0 = server.hgetall(&env.job(&ok0));
    let r_long = server.hgetall(&env.job(&long));
    if gathers_usage() {
        let rss: u64 = r0["max_rss"].parse().unwrap();
        assert!(rss > 150_000_000, "max_rss {rss}");
        let busy: f64 = h["cpu_efficiency"].parse().unwrap();
        assert!(busy > 0.1, "busy for 2 s: {busy}");
        // A job killed in its sleep may have no CPU time to speak of (then no figure).
        if let Some(idle) = r_long.get("cpu_efficiency") {
            assert!(idle.parse::<f64>().unwrap() < 0.05, "sleeping: {idle}");
        }
    } else {
        for r in [&r0, &h, &r_long] {
            assert!(
                !r.contains_key("max_rss") && !r.contains_key("cpu_efficiency"),
                "{r:?}"
            );
        }
    }

    // Each move printed once, and the array as its parent.
    let mut moves = d.moves_with(6);
    moves.sort();
    let ids: Vec<&str> = moves.iter().map(|m| m.0.as_str()).collect();
    let mut want = vec![
        ok0.as_str(),
        bad.as_str(),
        never.as_str(),
        held.as_str(),
        long.as_str(),
        array.as_str(),
    ];
    want.sort();
    assert_eq!(ids, want);
    // Log lines carry a timestamp.
    let err = d.stderr();
    let tick = err
        .lines()
        .find(|l| l.contains(" tick: "))
        .expect("a tick line");
    assert!(
        humantime::parse_rfc3339(tick.split(' ').next().unwrap()).is_ok(),
        "{tick}"
    );

    // rj-status --long shows the records.
    let long_out = env.run("rj-status", &["--long", "--format", "json"]).ok();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&long_out).unwrap();
    let row = rows.iter().find(|r| r["job_id"] == bad.as_str()).unwrap();
    assert_eq!(row["exit_code"], "3:0");
    assert_eq!(row["set"], "FAILED");
    assert_one_event_per_move(&server, &env);
    assert_invariant(&server, &env);
}

#[test]
fn time_limit_ends_in_timeout() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let id = launch(&env, &["--time=1", "--wrap", "sleep 300"]);
    let d = Tracker::start(&env, "track", &["--format", "json"]);
    wait_drained(&server, &env, &d, Duration::from_secs(200));
    assert_eq!(set_of(&server, &env, &id), Some("TIMEOUT"));
    assert_eq!(server.hgetall(&env.job(&id))["state"], "TIMEOUT");
    let line: serde_json::Value =
        serde_json::from_str(d.stdout_with(1).lines().next().unwrap()).unwrap();
    assert_eq!(line["job_id"], id.as_str());
    assert_eq!(line["set"], "TIMEOUT");
    assert_eq!(line["tag"], env.tag.as_str());
    assert_invariant(&server, &env);
}

/// `scontrol requeue` of a running job: it comes back PENDING with the same ID, and the daemon
/// notes restarts and requeued_at at once. On Slurm 24.11, whose `squeue --only-job-state` has
/// no RestartCnt, that is the full squeue asked for a job gone from RUNNING back to PENDING
/// (well before the minute after which pending jobs are asked again anyway).
#[test]
fn a_requeued_job_gets_restarts_at_once() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let id = launch(&env, &["--requeue", "--wrap", "sleep 300"]);
    let d = Tracker::start(&env, "track", &[]);
    wait_state(&id, "RUNNING", Duration::from_secs(60));
    // A tick that saw it running.
    std::thread::sleep(Duration::from_millis(2500));
    slurm::run("scontrol", &["requeue", &id]);
    let requeued = Instant::now();
    util::wait_until(Duration::from_secs(30), "restarts in the record", || {
        server.hgetall(&env.job(&id)).contains_key("restarts")
    });
    assert!(
        requeued.elapsed() < Duration::from_secs(20),
        "noted after {:?}:\n{}",
        requeued.elapsed(),
        d.stderr()
    );
    let rec = server.hgetall(&env.job(&id));
    assert_eq!(rec["restarts"], "1", "{rec:?}");
    assert!(rec["requeued_at"].ends_with('Z'), "{rec:?}");
    assert_eq!(set_of(&server, &env, &id), Some("PENDING_AND_RUNNING"));
    scancel(&id);
    wait_drained(&server, &env, &d, Duration::from_secs(60));
    let rec = server.hgetall(&env.job(&id));
    assert!(rec["state"].starts_with("CANCELLED"), "{rec:?}");
    assert_eq!(rec["restarts"], "1", "{rec:?}");
    assert_invariant(&server, &env);
}

#[test]
fn node_failure_without_requeue_is_failed() {
    let Some((server, env, _node)) = slurm::setup_exclusive() else {
        return;
    };
    let id = launch(&env, &["--no-requeue", "--wrap", "sleep 300"]);
    wait_state(&id, "RUNNING", Duration::from_secs(60));
    testbed(&["node-down"]);
    let result = std::panic::catch_unwind(|| {
        util::wait_until(Duration::from_secs(60), "NODE_FAIL", || {
            slurm::state(&id).as_deref() == Some("NODE_FAIL")
        })
    });
    testbed(&["node-resume"]);
    result.unwrap();
    accounted_as(&id, "NODE_FAIL");
    let out = env.run("rj-track", &["--once"]);
    assert!(out.stdout().contains(&format!("{id} FAILED")), "{out:?}");
    assert_eq!(set_of(&server, &env, &id), Some("FAILED"));
    assert_eq!(server.hgetall(&env.job(&id))["state"], "NODE_FAIL");
    assert_invariant(&server, &env);
}

#[test]
fn unknown_jobs_stay_until_lost_after() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    env.run("rj-launch", &["--record", "999999991"]).ok();
    let first = env.run("rj-track", &["--once", "--lost-after", "2s"]);
    assert_eq!(first.stdout(), "");
    assert!(first.stderr().contains("unknown to Slurm"), "{first:?}");
    assert_eq!(
        set_of(&server, &env, "999999991"),
        Some("PENDING_AND_RUNNING")
    );
    std::thread::sleep(Duration::from_millis(2500));
    let out = env.run("rj-track", &["--once", "--lost-after", "2s"]).ok();
    assert_eq!(out, format!("{} 999999991 FAILED - LOST\n", env.tag));
    assert_eq!(server.hgetall(&env.job("999999991"))["state"], "LOST");
    assert_one_event_per_move(&server, &env);
    assert_invariant(&server, &env);
}

#[test]
fn several_tags_and_all_tags() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let a = launch(&env, &["--wrap", "exit 0"]);
    let env2 = TestEnv::new(&server);
    let b = launch(&env2, &["--wrap", "exit 1"]);
    slurm::wait_finished(&a, Duration::from_secs(60));
    slurm::wait_finished(&b, Duration::from_secs(60));
    own_accounting_record(&a);
    own_accounting_record(&b);
    // Another program's key whose name is not UTF-8 must not hide the tags from the SCAN.
    let _: () = redis::cmd("SADD")
        .arg(&b"other\xff_PENDING_AND_RUNNING"[..])
        .arg("1")
        .query(&mut server.client())
        .unwrap();
    let out = env.run("rj-track", &["--once", "--all-tags"]).ok();
    assert!(out.contains(&format!("{} {a} COMPLETED", env.tag)), "{out}");
    assert!(out.contains(&format!("{} {b} FAILED", env2.tag)), "{out}");
    // Nothing left to move: a second run prints nothing.
    let tags = ["--once", "--tag", &env.tag, "--tag", &env2.tag];
    assert_eq!(ok(&run(env.cmd("rj-track").args(tags))), "");
    assert_one_event_per_move(&server, &env);
    assert_one_event_per_move(&server, &env2);
    assert_invariant(&server, &env);
    assert_invariant(&server, &env2);
}

#[test]
fn job_moved_by_someone_else_is_not_reported() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let id = launch(&env, &["--wrap", "exit 0"]);
    slurm::wait_finished(&id, Duration::from_secs(60));
    // The old shell script got there first.
    server.cli(&[
        "SMOVE",
        &env.key("PENDING_AND_RUNNING"),
        &env.key("COMPLETED"),
        &id,
    ]);
    assert_eq!(ok(&run(env.cmd("rj-track").args(["--once"]))), "");
    assert!(move_events(&server, &env).is_empty());
    assert_invariant(&server, &env);
}

#[test]
fn unreadable_squeue_output_is_exit_65() {
    let Some((_server, env, _node)) = slurm::setup() else {
        return;
    };
    env.run("rj-launch", &["--record", "12345"]).ok();
    // Real Slurm never prints this; a broken wrapper or a future format might.
    let path = env.fake_tools(&[("squeue", "echo 'this is not squeue output'")]);
    let out = run(env.cmd("rj-track").env("PATH", &path).args(["--once"]));
    let line = out.fails(65);
    assert!(line.contains("squeue"), "{line}");
}

#[test]
fn survives_a_redis_restart_and_loses_nothing() {
    let Some((mut server, env, _node)) = slurm::setup_with(RedisOptions {
        persistent: true,
        ..RedisOptions::default()
    }) else {
        return;
    };
    let first = launch(&env, &["--wrap", "exit 0"]);
    let d = Tracker::start(&env, "track", &[]);
    util::wait_until(Duration::from_secs(60), "first move", || {
        set_of(&server, &env, &first) == Some("COMPLETED")
    });
    let second = launch(&env, &["--wrap", "sleep 3; exit 2"]);
    server.kill();
    std::thread::sleep(Duration::from_secs(5));
    server.restart();
    let mut d = d;
    wait_drained(&server, &env, &d, Duration::from_secs(90));
    assert!(d.alive(), "rj-track died with Redis:\n{}", d.stderr());
    assert_eq!(set_of(&server, &env, &second), Some("FAILED"));
    assert!(d.stderr().contains("retrying in"), "{}", d.stderr());
    assert_eq!(d.moves_with(2).len(), 2, "{}", d.stdout());
    assert_one_event_per_move(&server, &env);
    assert_invariant(&server, &env);
}

#[test]
fn slurmctld_outage_moves_nothing_and_recovers() {
    let Some((server, env, _node)) = slurm::setup_exclusive() else {
        return;
    };
    let id = launch(&env, &["--wrap", "sleep 4"]);
    wait_state(&id, "RUNNING", Duration::from_secs(60));
    let mut d = Tracker::start(&env, "track", &[]);
    testbed(&["stop-ctld"]);
    std::thread::sleep(Duration::from_secs(30));
    let during = d.stderr();
    let moves_during = d.moves().len();
    testbed(&["start-ctld"]);
    assert_eq!(moves_during, 0);
    assert!(during.contains("Slurm controller unreachable"), "{during}");
    assert!(d.alive());
    wait_drained(&server, &env, &d, Duration::from_secs(90));
    assert_eq!(set_of(&server, &env, &id), Some("COMPLETED"));
    assert_invariant(&server, &env);
}

#[test]
fn sigterm_finishes_the_tick_then_exits_0() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let id = launch(&env, &["--wrap", "exit 0"]);
    slurm::wait_finished(&id, Duration::from_secs(60));
    own_accounting_record(&id);
    // Slow squeue down (it takes 9-18 s when slurmctld is unwell) so the signal lands mid-tick.
    let (path, mark) = slow_squeue(&env, 2);
    let mut d = Tracker::start_with(track_command(&env, Some(&path)), &env, "track", &[]);
    util::wait_until(Duration::from_secs(20), "squeue to start", || mark.exists());
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let st = d.wait(Duration::from_secs(30));
    assert_eq!(st.code(), Some(0), "{}", d.stderr());
    assert_eq!(
        set_of(&server, &env, &id),
        Some("COMPLETED"),
        "{}",
        d.stderr()
    );
    assert_eq!(d.moves().len(), 1);
    // The lease is given back for a standby.
    assert_eq!(server.cli(&["EXISTS", &env.key("TRACKER")]).trim(), "0");
    assert_invariant(&server, &env);
}

#[test]
fn two_trackers_one_lease_and_takeover_after_kill_9() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let mut a = Tracker::start(&env, "a", &[]);
    util::wait_until(Duration::from_secs(10), "a to take the lease", || {
        server.cli(&["EXISTS", &env.key("TRACKER")]).trim() == "1"
    });
    let mut b = Tracker::start(&env, "b", &[]);
    let ids: Vec<String> = (0..4)
        .map(|i| launch(&env, &["--wrap", &format!("exit {}", i % 2)]))
        .collect();
    wait_drained(&server, &env, &a, Duration::from_secs(90));
    std::thread::sleep(Duration::from_secs(2));
    let mut all: Vec<String> = a
        .moves()
        .into_iter()
        .chain(b.moves())
        .map(|m| m.0)
        .collect();
    all.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(all, want, "each job reported exactly once");
    assert!(
        b.moves().is_empty(),
        "the standby moved jobs:\n{}",
        b.stdout()
    );

    a.signal(nix::sys::signal::Signal::SIGKILL);
    a.wait(Duration::from_secs(5));
    let late = launch(&env, &["--wrap", "exit 0"]);
    let t = Instant::now();
    wait_drained(&server, &env, &b, Duration::from_secs(60));
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "takeover took {:?}",
        t.elapsed()
    );
    assert!(
        b.moves_with(1).iter().any(|m| m.0 == late),
        "b moved {late} but never reported it\nstdout:\n{}\nstderr:\n{}",
        b.stdout(),
        b.stderr()
    );
    assert!(b.alive(), "{}", b.stderr());
    assert_one_event_per_move(&server, &env);
    assert_invariant(&server, &env);
}

#[test]
fn a_move_whose_reply_was_lost_is_still_reported_once() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let id = launch(&env, &["--wrap", "exit 0"]);
    slurm::wait_finished(&id, Duration::from_secs(60));
    // The connection drops after the move script reached Redis, before its reply came back.
    let proxy = CutProxy::start(server.port, b"SMOVE", Duration::from_millis(500));
    let mut cmd = track_command(&env, None);
    cmd.env("REDIS_URL", format!("redis://127.0.0.1:{}", proxy.port));
    let d = Tracker::start_with(cmd, &env, "track", &[]);
    wait_drained(&server, &env, &d, Duration::from_secs(60));
    assert!(proxy.cut(), "the move never went through the proxy");
    let moves = d.moves_with(1);
    assert_eq!(moves.len(), 1, "{}\n{}", d.stdout(), d.stderr());
    assert_eq!(
        (moves[0].0.as_str(), moves[0].1.as_str()),
        (id.as_str(), "COMPLETED")
    );
    // A few more ticks: reported once, not again.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(d.moves().len(), 1, "{}", d.stdout());
    let err = d.stderr();
    assert!(err.contains("retrying in"), "{err}");
    assert!(err.contains("reported 1 move(s)"), "{err}");
    assert!(server.hgetall(&env.job(&id))["tracked_by"].contains(':'));
    assert_one_event_per_move(&server, &env);
    assert_invariant(&server, &env);
}

/// A tracker killed with -9 in the middle of a tick (inside squeue, before any move): the
/// standby takes over and moves every job, and the stream has exactly one entry per move.
#[test]
fn a_kill_9_mid_tick_and_a_takeover_give_one_event_per_move() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let ids: Vec<String> = (0..3)
        .map(|i| launch(&env, &["--wrap", &format!("exit {}", i % 2)]))
        .collect();
    for id in &ids {
        slurm::wait_finished(id, Duration::from_secs(60));
    }
    let (path, mark) = slow_squeue(&env, 30);
    let mut a = Tracker::start_with(track_command(&env, Some(&path)), &env, "a", &[]);
    util::wait_until(Duration::from_secs(10), "a inside squeue", || mark.exists());
    let b = Tracker::start(&env, "b", &[]);
    a.signal(nix::sys::signal::Signal::SIGKILL);
    a.wait(Duration::from_secs(5));
    wait_drained(&server, &env, &b, Duration::from_secs(60));
    assert_eq!(a.moves().len(), 0, "{}", a.stdout());
    assert_eq!(b.moves_with(3).len(), 3, "{}\n{}", b.stdout(), b.stderr());
    assert_one_event_per_move(&server, &env);
    assert_invariant(&server, &env);
}

/// `--events-max 0`: the job moves, and no event is written.
#[test]
fn events_max_0_writes_no_event() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let id = seed_finished(&server, &env);
    let out = ok(&run(env.cmd("rj-track").args([
        "--once",
        "--events-max",
        "0",
    ])));
    assert_eq!(out, format!("{} {id} COMPLETED 0:0 COMPLETED\n", env.tag));
    assert_eq!(server.cli(&["EXISTS", &env.key("EVENTS")]).trim(), "0");
    // The default writes one.
    let id2 = seed_finished(&server, &env);
    ok(&run(env.cmd("rj-track").args(["--once"])));
    let events = move_events(&server, &env);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0][0], ("job".to_string(), id2));
    assert_invariant(&server, &env);
}

/// A T_EVENTS that is not a stream: nothing moves, nothing is recorded, exit 65 naming the
/// key; with `--events-max 0` the stream is not touched and the job moves.
#[test]
fn an_event_stream_of_the_wrong_type_moves_nothing_and_is_65() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let id = seed_finished(&server, &env);
    server.cli(&["SET", &env.key("EVENTS"), "not a stream"]);
    let out = run(env.cmd("rj-track").args(["--once"]));
    let line = check::fails(&out, 65, "rj-track");
    assert!(line.contains(&env.key("EVENTS")), "{line}");
    assert!(line.contains("nothing moved"), "{line}");
    assert_eq!(check::stdout(&out), "");
    assert_eq!(set_of(&server, &env, &id), Some("PENDING_AND_RUNNING"));
    assert!(server.hgetall(&env.job(&id)).is_empty());
    assert_eq!(server.cli(&["TYPE", &env.key("EVENTS")]).trim(), "string");
    let out = ok(&run(env.cmd("rj-track").args([
        "--once",
        "--events-max",
        "0",
    ])));
    assert!(out.contains(&format!("{id} COMPLETED")), "{out}");
    assert_invariant(&server, &env);
}

/// After a tick the lease holder's T_TRACKER:tick holds the figures of that tick: the Slurm
/// commands its -v line counts, the pending jobs, the moved and the unknown ones, its owner,
/// when it started and how long it took; the hash has no TTL.
#[test]
fn a_tick_writes_its_figures() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let done = seed_finished(&server, &env);
    let running = launch(&env, &["--wrap", "sleep 300"]);
    ok(&run(env.cmd("rj-launch").args(["--record", "999999991"])));
    let secs = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let before = secs();
    let started = Instant::now();
    let out = run(env.cmd("rj-track").args(["--once", "-v"]));
    let took = started.elapsed();
    let after = secs();
    scancel(&running);
    assert!(ok(&out).contains(&format!("{done} COMPLETED")), "{out:?}");
    let err = check::stderr(&out);
    let tick = err
        .lines()
        .find_map(|l| l.split_once(" tick: ").map(|(_, t)| t.to_string()))
        .unwrap_or_else(|| panic!("no tick line in {err}"));
    // "3 tracked, 1 moved, 0 refused, 1 unknown, 0 unanswered, 3 Slurm command(s)"
    let n: Vec<&str> = tick
        .split(", ")
        .map(|p| p.split(' ').next().unwrap())
        .collect();
    let h = server.hgetall(&env.key("TRACKER:tick"));
    let mut names: Vec<&str> = h.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "at",
            "duration_ms",
            "moved",
            "owner",
            "slurm_commands",
            "tracked",
            "unknown"
        ]
    );
    assert_eq!(h["slurm_commands"], n[5], "{tick}");
    assert_ne!(h["slurm_commands"], "0");
    assert_eq!((h["tracked"].as_str(), n[0]), ("3", "3"), "{tick}");
    assert_eq!((h["moved"].as_str(), n[1]), ("1", "1"), "{tick}");
    assert_eq!((h["unknown"].as_str(), n[3]), ("1", "1"), "{tick}");
    assert_eq!(h["owner"], server.hgetall(&env.job(&done))["tracked_by"]);
    let at: u64 = h["at"].parse().unwrap();
    assert!(
        before <= at && at <= after,
        "at {at} not in [{before}, {after}]"
    );
    let ms: u128 = h["duration_ms"].parse().unwrap();
    assert!(ms <= took.as_millis(), "{ms} ms, but rj-track ran {took:?}");
    assert_eq!(server.cli(&["TTL", &env.key("TRACKER:tick")]).trim(), "-1");
    assert_invariant(&server, &env);
}

#[test]
fn spool_is_replayed_each_tick() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let spool = env.spool();
    std::fs::create_dir_all(spool.parent().unwrap()).unwrap();
    std::fs::write(
        &spool,
        "{\"id\":\"999999992\",\"fields\":[[\"host\",\"x\"]]}\n",
    )
    .unwrap();
    let out = env.run("rj-track", &["--once"]);
    out.code(0);
    assert_eq!(
        set_of(&server, &env, "999999992"),
        Some("PENDING_AND_RUNNING")
    );
    assert_eq!(std::fs::metadata(&spool).unwrap().len(), 0);
    assert_invariant(&server, &env);
}

/// slurmdbd down (sacct fails with a generic error) and scontrol failing too: a job squeue no
/// longer lists is not judged, so --lost-after never starts counting and nothing becomes LOST.
#[test]
fn failing_accounting_never_makes_a_job_lost() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    env.run("rj-launch", &["--record", "999999993"]).ok();
    let path = env.fake_tools(&[
        (
            "sacct",
            "echo 'sacct: error: Problem talking to the database: Connection refused' >&2; exit 1",
        ),
        (
            "scontrol",
            "echo 'slurm_load_jobs error: Socket timed out on send/recv operation' >&2; exit 1",
        ),
    ]);
    let lost_after = ["--once", "--lost-after", "1s"];
    for _ in 0..2 {
        let out = run(env.cmd("rj-track").env("PATH", &path).args(lost_after));
        out.code(0);
        assert_eq!(out.stdout(), "");
        let err = out.stderr();
        assert!(err.contains("sacct") && err.contains("this tick"), "{err}");
        assert!(!err.contains("unknown to Slurm"), "{err}");
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert_eq!(
        set_of(&server, &env, "999999993"),
        Some("PENDING_AND_RUNNING")
    );
    // Slurm answers again: the clock starts now, not at the first failed tick.
    let out = run(env.cmd("rj-track").args(lost_after));
    assert_eq!(out.stdout(), "", "{}", out.stderr());
    assert!(out.stderr().contains("unknown to Slurm"), "{out:?}");
    assert_eq!(
        set_of(&server, &env, "999999993"),
        Some("PENDING_AND_RUNNING")
    );
    assert_invariant(&server, &env);
}

/// A tick slower than the lease (squeue hangs 8 s; the lease of --interval 1s is 5 s) keeps
/// its lease: the standby does not take over mid-tick, and the job is moved once, by the
/// active tracker.
#[test]
fn a_tick_slower_than_the_lease_keeps_it() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let id = launch(&env, &["--wrap", "exit 0"]);
    slurm::wait_finished(&id, Duration::from_secs(60));
    let (path, mark) = slow_squeue(&env, 8);
    let a = Tracker::start_with(track_command(&env, Some(&path)), &env, "a", &[]);
    util::wait_until(Duration::from_secs(20), "a's squeue to start", || {
        mark.exists()
    });
    let b = Tracker::start(&env, "b", &[]);
    util::wait_until(Duration::from_secs(30), "a to move the job", || {
        !a.moves().is_empty()
    });
    assert_eq!(a.moves()[0].0, id, "{}", a.stderr());
    assert!(!a.stderr().contains("lost the lease"), "{}", a.stderr());
    assert!(b.moves().is_empty(), "the standby moved:\n{}", b.stdout());
    assert!(!b.stderr().contains("took the lease"), "{}", b.stderr());
    assert_eq!(set_of(&server, &env, &id), Some("COMPLETED"));
    assert_invariant(&server, &env);
}

// ------------------------------------------------- all-or-nothing moves, permanent errors

/// What rj-track needs for a tick that moves jobs (lease, pending set, the cluster of each new
/// job from its hash, move script, release); `-` entries are left out, to show which
/// permission a test takes away.
const TRACK_ACL: &[&str] = &[
    "+ping",
    "+eval",
    "+smembers",
    "+hget",
    "+get",
    "+set",
    "+del",
    "+pexpire",
    "+smove",
    "+hset",
    "+type",
    "+xadd",
];

/// What the script that times the jobs Slurm does not know needs on top of `TRACK_ACL`.
const UNKNOWN_ACL: &[&str] = &["+hkeys", "+hdel", "+hsetnx", "+hget"];

/// A Redis user `u` (password `pw-u`) limited to the tag's keys and `TRACK_ACL` without
/// `without`; returns the REDIS_URL that logs in as it.
fn acl_user(server: &RedisServer, env: &TestEnv, without: &[&str]) -> String {
    acl_user_with(server, env, &[], without)
}

/// [`acl_user`] with the permissions `extra` as well.
fn acl_user_with(server: &RedisServer, env: &TestEnv, extra: &[&str], without: &[&str]) -> String {
    let keys = format!("~{}*", env.tag);
    let mut args = vec![
        "ACL", "SETUSER", "u", "reset", "on", ">pw-u", &keys, "-@all",
    ];
    args.extend(
        TRACK_ACL
            .iter()
            .chain(extra)
            .filter(|p| !without.contains(p)),
    );
    assert_eq!(server.cli(&args).trim(), "OK");
    format!("redis://u:pw-u@127.0.0.1:{}", server.port)
}

/// A redis-server started with options rj-track must cope with (renamed commands, cluster
/// mode, an eviction policy). Its `cli` returns what redis-cli printed, error replies
/// (`MOVED`, `CLUSTERDOWN`) included, where the shared fixture's asserts success.
struct OddServer(RedisServer);

impl OddServer {
    fn start(args: &[&str]) -> Option<OddServer> {
        RedisServer::with(RedisOptions::args(args)).map(OddServer)
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port().to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn port(&self) -> u16 {
        self.0.port
    }

    fn url(&self) -> String {
        self.0.url()
    }
}

/// The last line of a daemon's stderr, which is its final error line.
fn last_line(d: &Tracker) -> String {
    d.stderr().lines().last().unwrap_or_default().to_string()
}

/// One job hash holds a string: that job is refused (named, left pending) and the other
/// finished jobs move; --once says so and exits 65; a daemon keeps going, says it each tick,
/// and moves the job once the key is repaired.
#[test]
fn a_job_hash_of_the_wrong_type_is_refused_and_the_others_move() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let bad = launch(&env, &["--wrap", "exit 0"]);
    let good = launch(&env, &["--wrap", "exit 0"]);
    slurm::wait_finished(&bad, Duration::from_secs(60));
    slurm::wait_finished(&good, Duration::from_secs(60));
    own_accounting_record(&bad);
    own_accounting_record(&good);
    let hash = env.job(&bad);
    server.cli(&["DEL", &hash]);
    server.cli(&["SET", &hash, "not a hash"]);

    let out = env.run("rj-track", &["--once"]);
    let line = out.fails(65);
    assert!(line.contains(&hash) && line.contains("string"), "{line}");
    assert_eq!(
        out.stdout(),
        format!("{} {good} COMPLETED 0:0 COMPLETED\n", env.tag)
    );
    assert_eq!(set_of(&server, &env, &bad), Some("PENDING_AND_RUNNING"));
    assert_eq!(server.cli(&["GET", &hash]).trim(), "not a hash");
    assert_eq!(set_of(&server, &env, &good), Some("COMPLETED"));
    assert_eq!(server.hgetall(&env.job(&good))["state"], "COMPLETED");
    assert_invariant(&server, &env);

    let mut d = Tracker::start(&env, "track", &[]);
    util::wait_until(
        Duration::from_secs(20),
        "two ticks refusing the job",
        || d.stderr().matches(&format!("error: {hash}")).count() >= 2,
    );
    assert!(d.alive(), "{}", d.stderr());
    assert!(d.moves().is_empty(), "{}", d.stdout());
    server.cli(&["DEL", &hash]);
    wait_drained(&server, &env, &d, Duration::from_secs(30));
    assert_eq!(d.moves_with(1)[0].0, bad, "{}", d.stdout());
    assert_eq!(server.hgetall(&hash)["state"], "COMPLETED");
    assert_invariant(&server, &env);
}

/// Without any one of +hset, +smove, +type, +xadd (or +expire with --record-ttl) nothing moves (the
/// job stays pending, unrecorded) and --once exits 77 naming the command and the key; with the
/// whole set the same job moves.
#[test]
fn a_move_the_user_may_not_make_moves_nothing_and_is_77() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let id = launch(&env, &["--wrap", "exit 0"]);
    slurm::wait_finished(&id, Duration::from_secs(60));
    // Each --once below must get as far as the move, not stop at a placeholder record.
    own_accounting_record(&id);
    let ttl = ["--once", "--record-ttl", "1d"];
    for (missing, key, args) in [
        ("+hset", env.job(&id), &ttl[..1]),
        ("+smove", env.key("PENDING_AND_RUNNING"), &ttl[..1]),
        ("+type", env.key("PENDING_AND_RUNNING"), &ttl[..1]),
        ("+xadd", env.key("EVENTS"), &ttl[..1]),
        ("+expire", env.job(&id), &ttl[..]),
    ] {
        let url = acl_user_with(&server, &env, &["+expire"], &[missing]);
        let out = run(env.cmd("rj-track").env("REDIS_URL", url).args(args));
        let line = out.fails(77);
        let cmd = missing[1..].to_ascii_uppercase();
        assert!(line.contains(&format!("run {cmd} on {key} ")), "{line}");
        assert!(line.contains("nothing moved"), "{line}");
        assert_eq!(out.stdout(), "");
        assert_eq!(set_of(&server, &env, &id), Some("PENDING_AND_RUNNING"));
        assert!(!server.hgetall(&env.job(&id)).contains_key("state"));
    }
    let url = acl_user_with(&server, &env, &["+expire"], &[]);
    let out = run(env.cmd("rj-track").env("REDIS_URL", url).args(ttl)).ok();
    assert_eq!(out, format!("{} {id} COMPLETED 0:0 COMPLETED\n", env.tag));
    let left: i64 = server.cli(&["TTL", &env.job(&id)]).trim().parse().unwrap();
    assert!(left > 0 && left <= 86400, "TTL {left}");
    assert_invariant(&server, &env);
}

/// The script that times unknown jobs checks its permissions before its first write: without
/// +hsetnx it forgets no stale entry half-way, changes nothing, and --once exits 77 naming
/// HSETNX; with it the clock starts.
#[test]
fn the_unknown_jobs_script_changes_nothing_it_may_not_finish() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    env.run("rj-launch", &["--record", "999999994"]).ok();
    let unknown = env.key("TRACKER:unknown");
    // An ID that Slurm knew again since: the script would forget it first.
    server.cli(&["HSET", &unknown, "999999995", "1"]);
    let url = acl_user_with(&server, &env, UNKNOWN_ACL, &["+hsetnx"]);
    let out = run(env.cmd("rj-track").env("REDIS_URL", &url).args(["--once"]));
    let line = out.fails(77);
    assert!(line.contains("HSETNX") && line.contains(&unknown), "{line}");
    assert_eq!(
        server.hgetall(&unknown).keys().collect::<Vec<_>>(),
        ["999999995"]
    );

    let url = acl_user_with(&server, &env, UNKNOWN_ACL, &[]);
    let out = run(env.cmd("rj-track").env("REDIS_URL", &url).args(["--once"]));
    out.code(0);
    assert!(out.stderr().contains("unknown to Slurm"), "{out:?}");
    assert_eq!(
        server.hgetall(&unknown).keys().collect::<Vec<_>>(),
        ["999999994"]
    );
    assert_invariant(&server, &env);
}

/// A daemon that can never succeed exits with the code of the cause, so systemd shows it
/// failed, instead of retrying for ever.
#[test]
fn a_daemon_that_may_not_eval_exits_77() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let url = acl_user(&server, &env, &["+eval"]);
    let mut cmd = track_command(&env, None);
    cmd.env("REDIS_URL", url);
    let mut d = Tracker::start_with(cmd, &env, "track", &[]);
    let st = d.wait(Duration::from_secs(10));
    assert_eq!(st.code(), Some(77), "{}", d.stderr());
    let line = last_line(&d);
    assert!(line.starts_with("rj-track: error: "), "{line}");
    assert!(
        line.contains("EVAL") && line.contains("scripting"),
        "{line}"
    );
}

#[test]
fn a_daemon_with_a_wrong_password_exits_77() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    acl_user(&server, &env, &[]);
    let mut cmd = track_command(&env, None);
    cmd.env(
        "REDIS_URL",
        format!("redis://u:wrong@127.0.0.1:{}", server.port),
    );
    let mut d = Tracker::start_with(cmd, &env, "track", &[]);
    assert_eq!(
        d.wait(Duration::from_secs(10)).code(),
        Some(77),
        "{}",
        d.stderr()
    );
    assert!(!d.stderr().contains("wrong@"), "{}", d.stderr());
}

/// EVAL renamed away in redis.conf: one line saying rj-track needs scripting, without the
/// script's text that Redis echoes in its reply.
#[test]
fn a_daemon_on_a_server_without_eval_exits_69_saying_it_needs_scripting() {
    let Some(server) = OddServer::start(&["--rename-command", "EVAL", ""]) else {
        return;
    };
    let Some(shared) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&shared);
    let mut cmd = track_command(&env, None);
    cmd.env("REDIS_URL", server.url());
    let mut d = Tracker::start_with(cmd, &env, "track", &[]);
    assert_eq!(
        d.wait(Duration::from_secs(10)).code(),
        Some(69),
        "{}",
        d.stderr()
    );
    let line = last_line(&d);
    assert!(line.contains("Lua scripting (EVAL)"), "{line}");
    assert!(!line.contains("redis.call"), "{line}");
}

/// A node of a Redis Cluster with a tag that has no hash tag (its sets would be in different
/// slots, tests/cluster.rs): a configuration error, permanent.
#[test]
fn a_daemon_pointed_at_a_cluster_node_without_a_hash_tag_exits_78() {
    let cluster = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"];
    let Some(a) = OddServer::start(&cluster) else {
        return;
    };
    let b = OddServer::start(&cluster).unwrap();
    assert_eq!(
        b.cli(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]).trim(),
        "OK"
    );
    a.cli(&["CLUSTER", "MEET", "127.0.0.1", &b.port().to_string()]);
    util::wait_until(Duration::from_secs(20), "the cluster to form", || {
        a.cli(&["GET", "x"]).starts_with("MOVED")
    });
    let Some(shared) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&shared);
    let mut cmd = track_command(&env, None);
    cmd.env("REDIS_URL", a.url());
    let mut d = Tracker::start_with(cmd, &env, "track", &[]);
    assert_eq!(
        d.wait(Duration::from_secs(10)).code(),
        Some(78),
        "{}",
        d.stderr()
    );
    let line = last_line(&d);
    assert!(line.contains("Redis Cluster"), "{}", d.stderr());
    assert!(line.contains(&format!("{{{}}}", env.tag)), "{}", d.stderr());
}

/// A tag's pending set that some script overwrote as a string can never be read: 65.
#[test]
fn a_daemon_whose_pending_set_is_a_string_exits_65() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let pending = env.key("PENDING_AND_RUNNING");
    server.cli(&["SET", &pending, "oops"]);
    let mut d = Tracker::start(&env, "track", &[]);
    assert_eq!(
        d.wait(Duration::from_secs(10)).code(),
        Some(65),
        "{}",
        d.stderr()
    );
    let line = last_line(&d);
    assert!(
        line.contains(&pending) && line.contains("WRONGTYPE"),
        "{line}"
    );
}

/// What a retry can outlive keeps the daemon running: a server turned read-only replica (a
/// failover), then killed and restarted; it comes back to work each time.
#[test]
fn a_daemon_outlives_read_only_and_dead_redis() {
    let Some((mut server, env)) = util::redis() else {
        return;
    };
    let tracker = env.key("TRACKER");
    let mut d = Tracker::start(&env, "track", &[]);
    util::wait_until(Duration::from_secs(10), "the lease", || {
        server.cli(&["EXISTS", &tracker]).trim() == "1"
    });
    // The lease is ours: its renewal is a write, which a replica refuses.
    server.cli(&["REPLICAOF", "127.0.0.1", &util::free_port().to_string()]);
    util::wait_until(Duration::from_secs(10), "READONLY retries", || {
        d.stderr().contains("read only replica")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(d.alive(), "{}", d.stderr());
    server.cli(&["REPLICAOF", "NO", "ONE"]);
    server.cli(&["DEL", &tracker]);
    util::wait_until(
        Duration::from_secs(40),
        "the lease after the failover",
        || server.cli(&["EXISTS", &tracker]).trim() == "1",
    );
    server.kill();
    std::thread::sleep(Duration::from_secs(3));
    assert!(d.alive(), "{}", d.stderr());
    // Not persistent: the restarted server is empty until the daemon takes the lease again.
    server.restart();
    util::wait_until(
        Duration::from_secs(40),
        "the lease after the restart",
        || server.cli(&["EXISTS", &tracker]).trim() == "1",
    );
    assert!(d.alive(), "{}", d.stderr());
}

/// An allkeys-* eviction policy is warned about once per process, also across reconnects,
/// and tracking still works.
#[test]
fn an_evicting_server_is_warned_about_once() {
    let Some(server) = OddServer::start(&["--maxmemory-policy", "allkeys-lru"]) else {
        return;
    };
    let Some(shared) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&shared);
    let out = run(env
        .cmd("rj-track")
        .env("REDIS_URL", server.url())
        .args(["--once"]));
    out.code(0);
    let err = out.stderr();
    assert_eq!(
        err.matches("maxmemory-policy allkeys-lru").count(),
        1,
        "{err}"
    );
    assert!(err.contains("warning: "), "{err}");

    let mut cmd = track_command(&env, None);
    cmd.env("REDIS_URL", server.url());
    let mut d = Tracker::start_with(cmd, &env, "track", &[]);
    util::wait_until(Duration::from_secs(10), "the lease", || {
        server.cli(&["EXISTS", &env.key("TRACKER")]).trim() == "1"
    });
    server.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
    util::wait_until(Duration::from_secs(20), "the reconnect", || {
        d.stderr().contains("reconnected to Redis")
    });
    assert!(d.alive(), "{}", d.stderr());
    let err = d.stderr();
    assert_eq!(
        err.matches("maxmemory-policy allkeys-lru").count(),
        1,
        "{err}"
    );
}
