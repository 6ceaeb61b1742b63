//! rj-launch (ARCHITECTURE.md §4) against a real redis-server: --record, the spool and its replay,
//! and the failures of sbatch (a fake sbatch only for what real Slurm cannot do on demand).
use std::time::Duration;

use crate::util::check::{self, all_keys, fails, ok, run};
use crate::util::{self, RedisOptions, RedisServer, TestEnv};

pub(crate) const JOB_DONE: Duration = Duration::from_secs(120);

/// A job script that writes `$JOB_TAG-$SLURM_JOB_ID:*` keys with plain redis-cli, finding the
/// server through `$RJ_CONFIG` as a user's script would.
pub(crate) const JOB_SCRIPT: &str = r#"#!/bin/sh
#SBATCH --job-name=rj-test
port=$(sed -n 's/.*"port": *\([0-9]*\).*/\1/p' "$RJ_CONFIG")
k="$JOB_TAG-$SLURM_JOB_ID"
redis-cli -p "$port" SET "$k:job_tag" "$job_tag" >/dev/null
redis-cli -p "$port" SET "$k:rj_config" "$RJ_CONFIG" >/dev/null
redis-cli -p "$port" HSET "$k:result" loss 0.5 epoch 3 >/dev/null
"#;

fn is_job_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The job ID rj-launch printed: stdout must be exactly one ID line.
pub(crate) fn printed_id(out: &std::process::Output) -> String {
    let s = check::stdout(out);
    let id = s
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("no ID line: {s:?}"));
    assert!(is_job_id(id), "stdout is only the job ID: {s:?}");
    id.to_string()
}

// --- Without Slurm: --record, and fake sbatch for failures real Slurm cannot produce. ---

/// A fake sbatch that logs its arguments and prints `body`'s output.
fn fake_sbatch(env: &TestEnv, body: &str) -> String {
    env.fake_tools(&[(
        "sbatch",
        &format!(
            "printf '%s\\n' \"$@\" > '{}/fake-argv'\n{body}",
            env.path().display()
        ),
    )])
}

#[test]
fn record_ids_from_arguments_and_stdin() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    server.cli(&["CONFIG", "RESETSTAT"]);
    let out = env.run("rj-launch", &["--record", "12", "9", "12", "7_3"]);
    assert_eq!(out.ok(), "12\n9\n7_3\n");
    assert!(out.stderr.is_empty(), "{}", out.stderr());
    assert_eq!(server.smembers(&env.key("ALL")), ["12", "7_3", "9"]);
    assert_eq!(
        server.smembers(&env.key("PENDING_AND_RUNNING")),
        ["12", "7_3", "9"]
    );
    // One script for the batch: both SADDs and the hashes.
    assert_eq!(check::calls(&server, "eval"), 1);
    assert_eq!(check::calls(&server, "exec"), 0);
    assert_eq!(check::calls(&server, "sadd"), 2);
    let h = server.hgetall(&env.job("9"));
    assert!(
        h.contains_key("submitted") && !h.contains_key("sbatch_args"),
        "{h:?}"
    );

    let out = run(env
        .cmd("rj-launch")
        .args(["--record", "-"])
        .write_stdin("  100\n101;clusterB\t102_4\n\n"));
    assert_eq!(out.ok(), "100\n101\n102_4\n");
    assert_eq!(
        server.smembers(&env.key("ALL")),
        ["100", "101", "102_4", "12", "7_3", "9"]
    );
    assert_eq!(server.hgetall(&env.job("101"))["cluster"], "clusterB");
    assert!(!server.hgetall(&env.job("100")).contains_key("cluster"));
}

#[test]
fn record_rejects_bad_ids_before_writing_anything() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    for (args, stdin) in [
        (&["--record", "12", "12x"][..], ""),
        (&["--record", "-"], "12\n1_[2-3]\n"),
        (&["--record", "-"], ""),
        (&["--record", "12;c", "*"], ""),
    ] {
        let out = run(env.cmd("rj-launch").args(args).write_stdin(stdin));
        out.fails(65);
        assert!(out.stdout.is_empty());
    }
    assert!(all_keys(&server).is_empty());
    let line = env.run("rj-launch", &[]).fails(2);
    assert!(line.contains("--record"), "{line}");
}

#[test]
fn already_recorded_ids_stay_in_their_final_set() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    env.run("rj-launch", &["--record", "5", "6"]).ok();
    server.cli(&[
        "SMOVE",
        &env.key("PENDING_AND_RUNNING"),
        &env.key("COMPLETED"),
        "5",
    ]);
    server.cli(&["HSET", &env.key("JOB:5"), "state", "COMPLETED"]);
    let out = env.run("rj-launch", &["--record", "5", "8"]);
    assert_eq!(out.ok(), "5\n8\n");
    let err = out.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("job 5 was already recorded"), "{err}");
    assert_eq!(server.smembers(&env.key("ALL")), ["5", "6", "8"]);
    assert_eq!(server.smembers(&env.key("PENDING_AND_RUNNING")), ["6", "8"]);
    assert_eq!(server.smembers(&env.key("COMPLETED")), ["5"]);
    assert_eq!(server.hgetall(&env.job("5"))["state"], "COMPLETED");
}

#[test]
fn record_with_redis_down_spools_and_next_record_replays() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let dead = format!("redis://127.0.0.1:{}", util::free_port());
    let out = run(env
        .cmd("rj-launch")
        .env("REDIS_URL", &dead)
        .args(["--record", "41", "42;cl"]));
    assert_eq!(out.stdout(), "41\n42\n", "IDs printed all the same");
    let line = out.fails(75);
    let spool = env.spool();
    assert!(line.contains(spool.to_str().unwrap()), "{line}");
    // A job spooled twice (two failed attempts) is still one job.
    let out = run(env
        .cmd("rj-launch")
        .env("REDIS_URL", &dead)
        .args(["--record", "41", "43"]));
    out.fails(75);
    assert!(all_keys(&server).is_empty());

    let out = env.run("rj-launch", &["--record", "44"]);
    assert_eq!(out.ok(), "44\n");
    let err = out.stderr();
    assert!(err.contains("recorded 3 spooled job(s)"), "{err}");
    assert_eq!(server.smembers(&env.key("ALL")), ["41", "42", "43", "44"]);
    assert_eq!(
        server.smembers(&env.key("PENDING_AND_RUNNING")),
        ["41", "42", "43", "44"]
    );
    assert_eq!(server.hgetall(&env.job("42"))["cluster"], "cl");
    assert_eq!(std::fs::read_to_string(&spool).unwrap(), "");
}

#[test]
fn unreadable_spool_lines_are_set_aside_and_the_rest_replayed() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let spool = env.spool();
    std::fs::create_dir_all(spool.parent().unwrap()).unwrap();
    // A good entry, a write torn by a crash, an entry whose ID is not a job ID, a good entry.
    let torn = "{\"id\":\"52\",\"fie";
    let junk = "{\"id\":\"x; FLUSHALL\",\"fields\":[]}";
    std::fs::write(
        &spool,
        format!(
            "{{\"id\":\"51\",\"fields\":[[\"host\",\"n1\"]]}}\n{torn}\n{junk}\n{{\"id\":\"53\",\"fields\":[]}}\n"
        ),
    )
    .unwrap();
    let out = env.run("rj-launch", &["--record", "54"]);
    assert_eq!(out.ok(), "54\n");
    let err = out.stderr();
    assert!(err.contains("recorded 2 spooled job(s)"), "{err}");
    let bad = format!("{}.bad", spool.display());
    let warning = err
        .lines()
        .find(|l| l.contains("unreadable"))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(
        warning.contains("set 2 unreadable line(s) aside") && warning.contains(&bad),
        "{warning}"
    );
    assert!(
        warning.contains("line 2:"),
        "names the first bad line: {warning}"
    );
    assert_eq!(server.smembers(&env.key("ALL")), ["51", "53", "54"]);
    assert_eq!(server.hgetall(&env.job("51"))["host"], "n1");
    assert_eq!(std::fs::read_to_string(&spool).unwrap(), "");
    assert_eq!(
        std::fs::read_to_string(&bad).unwrap(),
        format!("{torn}\n{junk}\n"),
        "the bad lines are kept as they were"
    );
    // The next replay has nothing left to say.
    let out = env.run("rj-launch", &["--record", "55"]);
    assert_eq!(out.stderr(), "");
}

#[test]
fn sbatch_missing_is_69_and_nothing_written() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let empty = env.only_tools("empty-bin", &[]);
    let out = run(env
        .cmd("rj-launch")
        .env("PATH", &empty)
        .args(["--", "job.sbatch"]));
    let line = out.fails(69);
    assert!(line.contains("sbatch not found on PATH"), "{line}");
    assert!(out.stdout.is_empty());
    assert!(all_keys(&server).is_empty());
}

#[test]
fn sbatch_cluster_output_keeps_cluster_in_job_hash() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let path = fake_sbatch(&env, "echo '123;clusterA'");
    let out = run(env.cmd("rj-launch").env("PATH", &path).args([
        "--tag",
        &env.tag,
        "--",
        "--time=1",
        "job.sbatch",
    ]));
    assert_eq!(out.ok(), "123\n");
    let argv = std::fs::read_to_string(env.path().join("fake-argv")).unwrap();
    assert_eq!(argv, "--parsable\n--time=1\njob.sbatch\n");
    assert_eq!(server.smembers(&env.key("ALL")), ["123"]);
    assert_eq!(server.smembers(&env.key("PENDING_AND_RUNNING")), ["123"]);
    let h = server.hgetall(&env.job("123"));
    assert_eq!(h["cluster"], "clusterA");
    assert_eq!(h["sbatch_args"], r#"["--time=1","job.sbatch"]"#);
}

#[test]
fn sbatch_garbage_or_crash_writes_nothing() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let path = fake_sbatch(&env, "echo 'Submitted batch job 12'");
    let out = run(env.cmd("rj-launch").env("PATH", &path).arg("job.sbatch"));
    let line = out.fails(65);
    assert!(
        line.contains("sbatch output \"Submitted batch job 12\""),
        "{line}"
    );
    assert!(out.stdout.is_empty());

    let path = fake_sbatch(&env, "kill -9 $$");
    let out = run(env.cmd("rj-launch").env("PATH", &path).arg("job.sbatch"));
    let line = out.fails(69);
    assert!(
        line.contains("sbatch --parsable job.sbatch failed (killed by a signal)"),
        "{line}"
    );

    let path = fake_sbatch(
        &env,
        "echo 'sbatch: error: Batch job submission failed' >&2; exit 1",
    );
    let out = run(env.cmd("rj-launch").env("PATH", &path).arg("job.sbatch"));
    out.code(69);
    let err = out.stderr();
    assert!(
        err.starts_with("sbatch: error: Batch job submission failed\n"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    check::nothing_written(&server, &env);
}

#[test]
fn refused_password_stops_before_sbatch() {
    let Some((server, env)) = util::redis_with(RedisOptions {
        password: Some("pw-launch-2".into()),
        ..Default::default()
    }) else {
        return;
    };
    let path = fake_sbatch(&env, "echo 55");
    let line = fails(
        &run(env
            .cmd("rj-launch")
            .env("PATH", &path)
            .env(
                "REDIS_URL",
                format!("redis://:wrong-pw@127.0.0.1:{}", server.port),
            )
            .arg("job.sbatch")),
        77,
        "rj-launch",
    );
    assert!(!line.contains("wrong-pw"), "{line}");
    assert!(!env.path().join("fake-argv").exists(), "sbatch never ran");
    assert!(!env.path().join("state").exists(), "nothing spooled");
}

#[test]
fn redis_down_and_spool_unwritable_is_69_naming_both() {
    let Some((_server, env)) = util::redis() else {
        return;
    };
    let not_a_dir = env.path().join("state-file");
    std::fs::write(&not_a_dir, "").unwrap();
    let out = run(env
        .cmd("rj-launch")
        .env("XDG_STATE_HOME", &not_a_dir)
        .env(
            "REDIS_URL",
            format!("redis://127.0.0.1:{}", util::free_port()),
        )
        .args(["--record", "61"]));
    assert_eq!(out.stdout(), "61\n", "the ID is still printed");
    let line = out.fails(69);
    assert!(line.contains("job(s) 61 NOT recorded"), "{line}");
    assert!(line.contains("cannot connect to Redis"), "{line}");
    assert!(line.contains(not_a_dir.to_str().unwrap()), "{line}");
}

// --- Failures after the job exists: spooled always, 75 only when a retry can fix them. ---

/// A redis.json for `server` that logs in as ACL user `user` with password `pw`.
fn acl_config(env: &TestEnv, server: &RedisServer, user: &str, pw: &str) -> std::path::PathBuf {
    let p = env.path().join(format!("{user}.json"));
    std::fs::write(
        &p,
        serde_json::json!({"host": "127.0.0.1", "port": server.port, "username": user, "password": pw})
            .to_string(),
    )
    .unwrap();
    util::set_mode(&p, 0o600);
    p
}

/// The IDs in the spool of `env`'s tag, in order.
fn spooled(env: &TestEnv) -> Vec<String> {
    std::fs::read_to_string(env.spool())
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn permanent_redis_refusals_spool_but_exit_with_their_cause() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    server.cli(&[
        "ACL", "SETUSER", "nosadd", "on", ">pw-7", "~*", "+@all", "-sadd",
    ]);
    let nosadd = acl_config(&env, &server, "nosadd", "pw-7");

    // NOPERM: the user may not SADD. 77, the ID printed and spooled, and no promise of a replay.
    let out = run(env
        .cmd("rj-launch")
        .env("RJ_CONFIG", &nosadd)
        .args(["--record", "21"]));
    assert_eq!(out.stdout(), "21\n");
    let line = out.fails(77);
    assert!(line.to_ascii_uppercase().contains("NOPERM"), "{line}");
    assert!(
        line.contains(env.spool().to_str().unwrap()),
        "names the spool: {line}"
    );
    assert!(line.contains("will not drain until it is fixed"), "{line}");
    assert!(!line.contains("will be recorded"), "{line}");
    assert!(!line.contains("pw-7"), "{line}");
    assert_eq!(spooled(&env), ["21"]);

    // The same through sbatch: the job exists, so it is printed and spooled just the same.
    let path = fake_sbatch(&env, "echo 22");
    let out = run(env
        .cmd("rj-launch")
        .env("RJ_CONFIG", &nosadd)
        .env("PATH", &path)
        .arg("job.sbatch"));
    assert_eq!(out.stdout(), "22\n");
    out.fails(77);
    assert_eq!(spooled(&env), ["21", "22"]);

    // WRONGTYPE: T_ALL is a string. 65.
    server.cli(&["SET", &env.key("ALL"), "x"]);
    let out = env.run("rj-launch", &["--record", "23"]);
    assert_eq!(out.stdout(), "23\n");
    let line = out.fails(65);
    assert!(
        line.contains("WRONGTYPE") && line.contains(&env.key("ALL")),
        "{line}"
    );
    assert!(line.contains("will not drain until it is fixed"), "{line}");
    assert_eq!(spooled(&env), ["21", "22", "23"]);

    // Once the causes are fixed, the next launch records everything.
    server.cli(&["DEL", &env.key("ALL")]);
    let out = env.run("rj-launch", &["--record", "24"]);
    assert_eq!(out.ok(), "24\n");
    assert!(out.stderr().contains("recorded 3 spooled job(s)"));
    assert_eq!(server.smembers(&env.key("ALL")), ["21", "22", "23", "24"]);
    assert_eq!(spooled(&env), Vec::<String>::new());
}

#[test]
fn a_refused_login_still_spools_the_ids_to_record() {
    let Some((server, env)) = util::redis_with(RedisOptions {
        password: Some("pw-right-8".into()),
        ..Default::default()
    }) else {
        return;
    };
    let wrong = format!("redis://:pw-wrong-8@127.0.0.1:{}", server.port);
    let out = run(env
        .cmd("rj-launch")
        .env("REDIS_URL", &wrong)
        .args(["--record", "-"])
        .write_stdin("31\n32\n"));
    assert_eq!(out.stdout(), "31\n32\n", "the IDs are not lost");
    let line = out.fails(77);
    assert!(line.contains("will not drain until it is fixed"), "{line}");
    assert!(!line.contains("pw-wrong-8"), "{line}");
    assert_eq!(spooled(&env), ["31", "32"]);
    // With the right password the spool drains.
    env.run("rj-launch", &["--record", "33"]).ok();
    assert_eq!(server.smembers(&env.key("ALL")), ["31", "32", "33"]);
}

#[test]
fn a_server_that_is_down_stays_a_temporary_failure() {
    let Some((mut server, env)) = util::redis() else {
        return;
    };
    server.kill();
    let out = env.run("rj-launch", &["--record", "41"]);
    assert_eq!(out.stdout(), "41\n");
    let line = out.fails(75);
    assert!(
        line.contains("will be recorded by the next rj-launch or rj-track"),
        "{line}"
    );
    assert_eq!(spooled(&env), ["41"]);
}

// --- Job IDs: one spelling per job, no job 0, and a million IDs in linear time. ---

#[test]
fn ids_are_recorded_without_leading_zeros_and_job_0_is_refused() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let out = env.run(
        "rj-launch",
        &["--record", "12", "00012", "7_03", "7_3;c", "5_0"],
    );
    assert_eq!(out.ok(), "12\n7_3\n5_0\n");
    assert_eq!(server.smembers(&env.key("ALL")), ["12", "5_0", "7_3"]);
    assert!(server.hgetall(&env.job("00012")).is_empty());
    // rj-last finds the job however its ID is typed.
    server.cli(&["SET", &format!("{}-12:x", env.tag), "1"]);
    let out = env.run("rj-last", &["--job", "0012"]).ok();
    assert!(out.contains(&format!("{}-12:x", env.tag)), "{out}");

    for bad in ["0", "0_1", "000"] {
        let line = fails(
            &env.run("rj-launch", &["--record", "13", bad]),
            65,
            "rj-launch",
        );
        assert!(line.contains("start at 1"), "{line}");
    }
    // sbatch's own output and the spool are read the same way.
    let path = fake_sbatch(&env, "echo 0014");
    assert_eq!(
        run(env.cmd("rj-launch").env("PATH", &path).arg("job.sbatch")).ok(),
        "14\n"
    );
    std::fs::create_dir_all(env.spool().parent().unwrap()).unwrap();
    std::fs::write(
        env.spool(),
        "{\"id\":\"0015\",\"fields\":[]}\n{\"id\":\"15\",\"fields\":[]}\n{\"id\":\"12\",\"fields\":[]}\n",
    )
    .unwrap();
    let out = env.run("rj-launch", &["--record", "016"]);
    assert_eq!(out.ok(), "16\n");
    assert!(out.stderr().contains("recorded 2 spooled job(s)"));
    assert_eq!(
        server.smembers(&env.key("ALL")),
        ["12", "14", "15", "16", "5_0", "7_3"]
    );
}

/// `--record -` with 50,001 IDs (one repeated): deduplicating with Vec::contains took 27 s for
/// this in a debug build, sorting takes about one; 12 s leaves room for a loaded machine. The
/// IDs are printed once each, in order, and recorded in transactions of 1,000.
#[test]
fn many_ids_on_stdin_are_recorded_in_linear_time() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let n = 50_000u64;
    let mut input: String = (1..=n).map(|i| format!("{} ", 1_000_000 + i)).collect();
    input.push_str("1000001\n");
    server.cli(&["CONFIG", "RESETSTAT"]);
    let start = std::time::Instant::now();
    let out = run(env
        .cmd("rj-launch")
        .args(["--record", "-"])
        .write_stdin(input));
    let took = start.elapsed();
    let printed = out.ok();
    assert_eq!(printed.lines().count(), n as usize);
    assert_eq!(printed.lines().next(), Some("1000001"));
    assert_eq!(printed.lines().last(), Some("1050000"));
    assert_eq!(server.cli(&["SCARD", &env.key("ALL")]), format!("{n}\n"));
    assert_eq!(
        server.cli(&["SCARD", &env.key("PENDING_AND_RUNNING")]),
        format!("{n}\n")
    );
    assert_eq!(check::calls(&server, "eval"), n / 1000);
    assert!(took < Duration::from_secs(12), "took {took:?}");
}

#[test]
fn an_evicting_server_is_warned_about_once() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    server.cli(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    let out = env.run("rj-launch", &["--record", "1", "2"]);
    assert_eq!(out.ok(), "1\n2\n");
    let err = out.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("rj-launch: warning: ") && err.contains("allkeys-lru"),
        "{err}"
    );
    assert_eq!(server.smembers(&env.key("ALL")), ["1", "2"]);

    server.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    let out = env.run("rj-launch", &["--record", "3"]);
    assert_eq!(out.ok(), "3\n");
    assert_eq!(out.stderr(), "");
}

// --- sbatch's stdout with more than the job ID. ---

#[test]
fn sbatch_exit_0_without_one_job_id_says_the_job_may_exist() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let path = fake_sbatch(&env, "echo 'warning: a'; echo 'warning: b'");
    let out = run(env.cmd("rj-launch").env("PATH", &path).arg("job.sbatch"));
    let line = out.fails(65);
    assert!(
        line.contains(r#"cannot find a job ID in sbatch output "warning: a\nwarning: b""#),
        "the whole output, on one line: {line}"
    );
    assert!(line.contains("may have been submitted"), "{line}");
    assert!(line.contains("rj-launch --record"), "{line}");
    assert!(out.stdout.is_empty());

    // Two numbers: rj-launch does not guess which one is the job.
    let path = fake_sbatch(&env, "echo 102; echo 'jobs in queue:'; echo 3");
    let out = run(env.cmd("rj-launch").env("PATH", &path).arg("job.sbatch"));
    let line = out.fails(65);
    assert!(line.contains("two job IDs, 102 and 3"), "{line}");
    assert!(line.contains("may have been submitted"), "{line}");
    assert!(out.stdout.is_empty());

    // Nothing at all.
    let path = fake_sbatch(&env, "true");
    let line = fails(
        &run(env.cmd("rj-launch").env("PATH", &path).arg("job.sbatch")),
        65,
        "rj-launch",
    );
    assert!(
        line.contains("no job ID") && line.contains("may have been submitted"),
        "{line}"
    );
    check::nothing_written(&server, &env);
}

/// `sbatch --wait` prints the ID at submission and exits with the job's status when it ends:
/// a failed job is still a job Slurm accepted, and must be recorded.
#[test]
fn sbatch_wait_with_a_failed_job_still_records_it() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let path = fake_sbatch(&env, "echo 555; exit 3");
    let out = run(env
        .cmd("rj-launch")
        .env("PATH", &path)
        .args(["--", "--wait", "job.sbatch"]));
    out.code(3);
    assert_eq!(out.stdout(), "555\n");
    let err = out.stderr();
    assert!(err.contains("exited 3 after accepting job 555"), "{err}");
    assert_eq!(server.smembers(&env.key("ALL")), ["555"]);
    assert_eq!(server.smembers(&env.key("PENDING_AND_RUNNING")), ["555"]);

    // Without an ID on stdout a failing sbatch submitted nothing: nothing is recorded.
    let path = fake_sbatch(&env, "echo 'sbatch: error: invalid partition' >&2; exit 1");
    let out = run(env.cmd("rj-launch").env("PATH", &path).arg("job.sbatch"));
    out.code(69);
    let err = out.stderr();
    assert!(
        err.contains("invalid partition"),
        "sbatch's own message: {err}"
    );
    assert!(err.contains("nothing was recorded"), "{err}");
    assert_eq!(server.smembers(&env.key("ALL")), ["555"]);
}

/// The entries of the tag's event stream, each as its (field, value) pairs in order.
fn events(server: &RedisServer, env: &TestEnv) -> Vec<Vec<(String, String)>> {
    let raw: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(env.key("EVENTS"))
        .arg("-")
        .arg("+")
        .query(&mut server.client())
        .unwrap();
    raw.into_iter()
        .map(|(_, fv)| fv.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect())
        .collect()
}

/// The `job` of each event, in stream order.
fn event_jobs(server: &RedisServer, env: &TestEnv) -> Vec<String> {
    events(server, env)
        .iter()
        .map(|e| e.iter().find(|(k, _)| k == "job").unwrap().1.clone())
        .collect()
}

#[test]
fn each_recorded_job_gets_one_event_and_one_recorded_before_none() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    server.cli(&["CONFIG", "RESETSTAT"]);
    ok(&run(env.cmd("rj-launch").args(["--record", "5", "6;cl"])));
    let got = events(&server, &env);
    assert_eq!(got.len(), 2, "{got:?}");
    for (e, id) in got.iter().zip(["5", "6"]) {
        let at = server.hgetall(&env.job(id))["submitted"].clone();
        let want: Vec<(String, String)> = [
            ("job", id),
            ("set", "PENDING_AND_RUNNING"),
            ("state", "recorded"),
            ("exit_code", ""),
            ("tracked_at", at.as_str()),
            ("tracker", "rj-launch"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(e, &want, "the T_EVENTS contract, fields in order");
    }
    // In the one script that recorded them.
    assert_eq!(check::calls(&server, "eval"), 1);
    assert_eq!(check::calls(&server, "xadd"), 2);

    // Job 5 finished meanwhile: recorded again it stays where it is, and gets no event.
    server.cli(&[
        "SMOVE",
        &env.key("PENDING_AND_RUNNING"),
        &env.key("COMPLETED"),
        "5",
    ]);
    ok(&run(env.cmd("rj-launch").args(["--record", "5", "7"])));
    assert_eq!(event_jobs(&server, &env), ["5", "6", "7"]);
    ok(&run(env.cmd("rj-launch").args(["--record", "6", "7"])));
    assert_eq!(event_jobs(&server, &env), ["5", "6", "7"]);
    assert_eq!(server.smembers(&env.key("COMPLETED")), ["5"]);
}

#[test]
fn events_max_trims_the_stream_and_0_writes_none() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    server.cli(&["CONFIG", "RESETSTAT"]);
    ok(&run(env.cmd("rj-launch").args([
        "--events-max",
        "0",
        "--record",
        "8",
        "9",
    ])));
    assert_eq!(server.smembers(&env.key("ALL")), ["8", "9"]);
    assert!(!all_keys(&server).contains(&env.key("EVENTS")));
    assert_eq!(check::calls(&server, "xadd"), 0);
    // No stream written, so none checked: a T_EVENTS of another type does not matter.
    server.cli(&["SET", &env.key("EVENTS"), "not a stream"]);
    ok(&run(env.cmd("rj-launch").args([
        "--events-max",
        "0",
        "--record",
        "10",
    ])));
    assert_eq!(server.smembers(&env.key("ALL")), ["10", "8", "9"]);
    server.cli(&["DEL", &env.key("EVENTS")]);

    // MAXLEN ~ 10: trimmed by whole stream nodes, so to about 10 entries, never below.
    let ids: String = (1000..3000).map(|i| format!("{i}\n")).collect();
    ok(&run(env
        .cmd("rj-launch")
        .args(["--events-max", "10", "--record", "-"])
        .write_stdin(ids)));
    let len: u64 = server
        .cli(&["XLEN", &env.key("EVENTS")])
        .trim()
        .parse()
        .unwrap();
    assert!((10..2000).contains(&len), "XLEN {len}");
    assert_eq!(event_jobs(&server, &env).last().unwrap(), "2999");
}

#[test]
fn a_stream_of_the_wrong_type_fails_the_recording_whole() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    server.cli(&["SET", &env.key("EVENTS"), "not a stream"]);
    let out = run(env.cmd("rj-launch").args(["--record", "21", "22"]));
    assert_eq!(check::stdout(&out), "21\n22\n", "the IDs are not lost");
    let line = fails(&out, 65, "rj-launch");
    assert!(
        line.contains(&env.key("EVENTS")) && line.contains("not a stream"),
        "{line}"
    );
    assert!(line.contains("will not drain until it is fixed"), "{line}");
    assert_eq!(all_keys(&server), [env.key("EVENTS")], "nothing written");
    assert_eq!(spooled(&env), ["21", "22"]);

    // Once the key is a stream (or gone), the replay records the spooled jobs with their
    // events, each at the time in its spooled record.
    server.cli(&["DEL", &env.key("EVENTS")]);
    let out = run(env.cmd("rj-launch").args(["--record", "23"]));
    assert_eq!(ok(&out), "23\n");
    assert!(check::stderr(&out).contains("recorded 2 spooled job(s)"));
    assert_eq!(event_jobs(&server, &env), ["21", "22", "23"]);
    for (e, id) in events(&server, &env).iter().zip(["21", "22"]) {
        let at = &e.iter().find(|(k, _)| k == "tracked_at").unwrap().1;
        assert_eq!(at, &server.hgetall(&env.job(id))["submitted"]);
    }
}

#[test]
fn replayed_spool_entries_get_their_event() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    let spool = env.spool();
    std::fs::create_dir_all(spool.parent().unwrap()).unwrap();
    // Spooled by an rj-launch that could not reach Redis; 32 is recorded already.
    std::fs::write(
        &spool,
        "{\"id\":\"31\",\"fields\":[[\"submitted\",\"2026-01-02T03:04:05Z\"]]}\n\
         {\"id\":\"32\",\"fields\":[]}\n",
    )
    .unwrap();
    check::sadd(&server, &env.key("ALL"), &["32"]);
    check::sadd(&server, &env.key("COMPLETED"), &["32"]);
    ok(&run(env.cmd("rj-launch").args(["--record", "33"])));
    assert_eq!(event_jobs(&server, &env), ["31", "33"]);
    let e = &events(&server, &env)[0];
    assert_eq!(
        e.iter().find(|(k, _)| k == "tracked_at").unwrap().1,
        "2026-01-02T03:04:05Z"
    );
    assert_eq!(server.smembers(&env.key("COMPLETED")), ["32"]);
    // --events-max 0 holds for the replay too.
    std::fs::write(&spool, "{\"id\":\"34\",\"fields\":[]}\n").unwrap();
    ok(&run(env.cmd("rj-launch").args([
        "--events-max",
        "0",
        "--record",
        "35",
    ])));
    assert_eq!(event_jobs(&server, &env), ["31", "33"]);
    assert_eq!(
        server.smembers(&env.key("ALL")),
        ["31", "32", "33", "34", "35"]
    );
}

/// Another writer changing T_ALL while rj-launch records (another rj-launch, a spool replay):
/// the script is atomic; on the MULTI/EXEC path EXECs return nil, and each such chunk is looked
/// at again, halved. Either way every job ends up recorded once, pending, with exactly one
/// event, and the other writer's jobs untouched.
#[test]
fn a_concurrent_writer_neither_loses_nor_doubles_a_job_or_its_event() {
    let Some((server, env)) = crate::util::redis() else {
        return;
    };
    let all = env.key("ALL");
    for (path, config) in recording_paths(&server, &env).iter().enumerate() {
        server.cli(&["FLUSHALL"]);
        server.cli(&["CONFIG", "RESETSTAT"]);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let other = {
            let stop = stop.clone();
            let mut c = server.client();
            let all = all.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    redis::cmd("SADD")
                        .arg(&all)
                        .arg(9_000_000 + n)
                        .query::<()>(&mut c)
                        .unwrap();
                    n += 1;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                n
            })
        };
        let ids: Vec<String> = (100_000..105_000).map(|i| i.to_string()).collect();
        let out = run(launch_as(&env, config)
            .args(["--record", "-"])
            .write_stdin(ids.join("\n")));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let theirs = other.join().unwrap();
        ok(&out);
        let mut pending = server.smembers(&env.key("PENDING_AND_RUNNING"));
        pending.sort();
        assert_eq!(pending, ids, "path {path}: every job pending, once");
        let mut jobs = event_jobs(&server, &env);
        jobs.sort();
        assert_eq!(jobs, ids, "path {path}: one event per job");
        let n_all: u64 = server.cli(&["SCARD", &all]).trim().parse().unwrap();
        assert_eq!(n_all, ids.len() as u64 + theirs, "path {path}");
        if config.is_none() {
            assert_eq!(check::calls(&server, "eval"), 5, "one script per chunk");
        } else {
            // At least one EXEC per chunk of 1,000; the ones beyond found T_ALL changed.
            assert!(check::calls(&server, "exec") >= 5);
        }
    }
}

// --- Keys of the wrong type: found before the first write, on both recording paths. ---

/// Both ways rj-launch records: its Lua script (the default), and MULTI/EXEC, which it falls
/// back to for a user refused EVALSHA and EVAL. The second is a user that may run everything
/// else; `None` is the default user.
fn recording_paths(server: &RedisServer, env: &TestEnv) -> [Option<std::path::PathBuf>; 2] {
    server.cli(&[
        "ACL", "SETUSER", "noeval", "on", ">pw-ne", "~*", "+@all", "-eval", "-evalsha",
    ]);
    [None, Some(acl_config(env, server, "noeval", "pw-ne"))]
}

/// rj-launch as the default user, or logged in through `config`.
fn launch_as(env: &TestEnv, config: &Option<std::path::PathBuf>) -> assert_cmd::Command {
    let mut c = env.cmd("rj-launch");
    if let Some(p) = config {
        c.env("RJ_CONFIG", p);
    }
    c
}

/// Every key and its value as `DUMP` gives it: what the server holds, to compare before and
/// after a run that must write nothing.
fn snapshot(server: &RedisServer) -> Vec<(String, Vec<u8>)> {
    all_keys(server)
        .into_iter()
        .map(|k| {
            let v: Vec<u8> = redis::cmd("DUMP")
                .arg(&k)
                .query(&mut server.client())
                .unwrap();
            (k, v)
        })
        .collect()
}

#[test]
fn a_pending_set_of_the_wrong_type_fails_the_recording_whole() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let pending = env.key("PENDING_AND_RUNNING");
    for (n, config) in recording_paths(&server, &env).iter().enumerate() {
        server.cli(&["FLUSHALL"]);
        let _ = std::fs::remove_file(env.spool());
        server.cli(&["SET", &pending, "not a set"]);
        let before = snapshot(&server);
        let out = run(launch_as(&env, config).args(["--record", "21", "22"]));
        assert_eq!(
            check::stdout(&out),
            "21\n22\n",
            "path {n}: the IDs are not lost"
        );
        assert_eq!(snapshot(&server), before, "path {n}: nothing written");
        let line = fails(&out, 65, "rj-launch");
        assert!(
            line.contains(&pending) && line.contains("string") && line.contains("WRONGTYPE"),
            "path {n}: names the key and its type: {line}"
        );
        assert!(line.contains("will not drain until it is fixed"), "{line}");
        assert_eq!(spooled(&env), ["21", "22"], "path {n}");

        // Fixed, the next launch records the spooled jobs and its own.
        server.cli(&["DEL", &pending]);
        let out = run(launch_as(&env, config).args(["--record", "23"]));
        assert_eq!(ok(&out), "23\n");
        assert_eq!(server.smembers(&pending), ["21", "22", "23"], "path {n}");
        assert_eq!(event_jobs(&server, &env), ["21", "22", "23"], "path {n}");
    }
}

#[test]
fn one_job_hash_of_the_wrong_type_among_many_fails_the_recording_whole() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let ids: Vec<String> = (601..=640).map(|i| i.to_string()).collect();
    let bad = env.job("617");
    for (n, config) in recording_paths(&server, &env).iter().enumerate() {
        server.cli(&["FLUSHALL"]);
        let _ = std::fs::remove_file(env.spool());
        // Another job's hash exists already: a hash is fine, only the list is refused.
        server.cli(&["HSET", &env.job("605"), "note", "kept"]);
        server.cli(&["RPUSH", &bad, "not a hash"]);
        let before = snapshot(&server);
        let out = run(launch_as(&env, config).arg("--record").args(&ids));
        assert_eq!(snapshot(&server), before, "path {n}: nothing written");
        let line = fails(&out, 65, "rj-launch");
        assert!(
            line.contains(&bad) && line.contains("list") && line.contains("WRONGTYPE"),
            "path {n}: names the key and its type: {line}"
        );
        assert!(line.contains("nothing was written"), "path {n}: {line}");
        assert_eq!(spooled(&env), ids, "path {n}: every job spooled");

        // The spool replays whole once the key is a hash (or gone).
        server.cli(&["DEL", &bad]);
        let out = run(launch_as(&env, config).args(["--record", "641"]));
        ok(&out);
        assert_eq!(server.smembers(&env.key("ALL")).len(), 41, "path {n}");
        assert_eq!(server.hgetall(&env.job("605"))["note"], "kept");
        assert!(server.hgetall(&env.job("605")).contains_key("submitted"));
        assert!(spooled(&env).is_empty());
    }
}

/// A chunk is all or nothing, a call of many chunks is not: a key of the wrong type in a later
/// chunk leaves the chunks before it recorded, says so, and spools the rest.
#[test]
fn a_wrong_type_in_a_later_chunk_keeps_the_chunks_before() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    // Chunks of 1,000 jobs for the script, of 100 for MULTI/EXEC.
    for (n, config) in recording_paths(&server, &env).iter().enumerate() {
        server.cli(&["FLUSHALL"]);
        let _ = std::fs::remove_file(env.spool());
        let (total, chunk) = if config.is_none() {
            (1500, 1000)
        } else {
            (150, 100)
        };
        let ids: Vec<String> = (1..=total).map(|i| (70_000 + i).to_string()).collect();
        server.cli(&["SET", &env.job(&ids[total - 10]), "x"]);
        let out = run(launch_as(&env, config)
            .args(["--record", "-"])
            .write_stdin(ids.join("\n")));
        let line = fails(&out, 65, "rj-launch");
        assert!(
            line.contains(&format!("the jobs before {} are recorded", ids[chunk])),
            "path {n}: {line}"
        );
        let n_all: usize = server
            .cli(&["SCARD", &env.key("ALL")])
            .trim()
            .parse()
            .unwrap();
        assert_eq!(n_all, chunk, "path {n}");
        assert_eq!(event_jobs(&server, &env).len(), chunk, "path {n}");
        assert_eq!(spooled(&env), ids[chunk..], "path {n}");
    }
}

/// The spool replay (rj-launch's here; rj-track's calls the same recording) is all or nothing
/// per batch too: a job hash of the wrong type keeps the whole spool, writes none of it, and the
/// launch's own job is still recorded.
#[test]
fn a_replay_that_meets_a_key_of_the_wrong_type_writes_none_of_its_batch() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    for (n, config) in recording_paths(&server, &env).iter().enumerate() {
        server.cli(&["FLUSHALL"]);
        let spool = env.spool();
        std::fs::create_dir_all(spool.parent().unwrap()).unwrap();
        let lines = "{\"id\":\"31\",\"fields\":[[\"submitted\",\"2026-01-02T03:04:05Z\"]]}\n\
                     {\"id\":\"32\",\"fields\":[[\"host\",\"h\"]]}\n";
        std::fs::write(&spool, lines).unwrap();
        server.cli(&["SET", &env.job("32"), "not a hash"]);
        let out = run(launch_as(&env, config).args(["--record", "33"]));
        assert_eq!(ok(&out), "33\n", "path {n}");
        assert_eq!(server.smembers(&env.key("ALL")), ["33"], "path {n}");
        let err = check::stderr(&out);
        assert!(
            err.contains(&env.job("32")) && err.contains("string"),
            "path {n}: the replay's failure is said: {err}"
        );
        assert!(!all_keys(&server).contains(&env.job("31")), "path {n}");
        assert_eq!(event_jobs(&server, &env), ["33"], "path {n}");
        assert_eq!(
            std::fs::read_to_string(&spool).unwrap(),
            lines,
            "spool kept whole"
        );
    }
}

/// A user refused EVAL records with MULTI/EXEC (said under -v), and the result is the one the
/// script writes: the same sets, hash fields and event fields.
#[test]
fn a_user_refused_eval_records_the_same_with_multi_exec() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let other = TestEnv::new(&server);
    let [_, noeval] = recording_paths(&server, &other);
    server.cli(&["CONFIG", "RESETSTAT"]);
    let out = run(env.cmd("rj-launch").args(["-v", "--record", "5", "6;cl"]));
    ok(&out);
    assert!(
        !check::stderr(&out).contains("MULTI/EXEC"),
        "{}",
        check::stderr(&out)
    );
    assert_eq!(
        (check::calls(&server, "eval"), check::calls(&server, "exec")),
        (1, 0)
    );
    server.cli(&["CONFIG", "RESETSTAT"]);
    let out = run(launch_as(&other, &noeval).args(["-v", "--record", "5", "6;cl"]));
    ok(&out);
    let err = check::stderr(&out);
    assert!(
        err.contains("recording with MULTI/EXEC") && err.contains("refused EVAL"),
        "{err}"
    );
    assert_eq!(check::calls(&server, "exec"), 1);

    for set in ["ALL", "PENDING_AND_RUNNING"] {
        assert_eq!(
            server.smembers(&env.key(set)),
            server.smembers(&other.key(set))
        );
    }
    for id in ["5", "6"] {
        let mut a = server.hgetall(&env.job(id));
        let mut b = server.hgetall(&other.job(id));
        // Each TestEnv runs in its own directory; the time is each run's own.
        for f in ["submitted", "cwd"] {
            assert!(a.remove(f).is_some() && b.remove(f).is_some(), "{f}");
        }
        assert_eq!(a, b, "job {id}'s hash");
    }
    let without_time = |e: Vec<(String, String)>| -> Vec<(String, String)> {
        e.into_iter()
            .map(|(k, v)| {
                if k == "tracked_at" {
                    (k, String::new())
                } else {
                    (k, v)
                }
            })
            .collect()
    };
    let a: Vec<_> = events(&server, &env)
        .into_iter()
        .map(without_time)
        .collect();
    let b: Vec<_> = events(&server, &other)
        .into_iter()
        .map(without_time)
        .collect();
    assert_eq!(a.len(), 2);
    assert_eq!(a, b, "the same events");
}
