//! rj-launch (ARCHITECTURE.md §4): real sbatch on the Slurm testbed, --record, the spool and its replay,
//! and the failures of sbatch (a fake sbatch only for what real Slurm cannot do on demand).
use std::process::Stdio;
use std::time::Duration;

use crate::util::check::{self, all_keys, fails, ok, run};
use crate::util::{self, slurm, RedisOptions, RedisServer, TestEnv};

const JOB_DONE: Duration = Duration::from_secs(120);

/// A job script that writes `$JOB_TAG-$SLURM_JOB_ID:*` keys with plain redis-cli, finding the
/// server through `$RJ_CONFIG` as a user's script would.
const JOB_SCRIPT: &str = r#"#!/bin/sh
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
fn printed_id(out: &std::process::Output) -> String {
    let s = check::stdout(out);
    let id = s
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("no ID line: {s:?}"));
    assert!(is_job_id(id), "stdout is only the job ID: {s:?}");
    id.to_string()
}

#[test]
fn real_job_runs_is_recorded_and_its_keys_are_read_back() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    std::fs::write(env.path().join("job.sbatch"), JOB_SCRIPT).unwrap();
    let out = env.run("rj-launch", &["--", "--time=5", "job.sbatch"]);
    out.code(0);
    assert!(out.stderr.is_empty(), "{}", out.stderr());
    let id = printed_id(&out);
    assert_eq!(server.smembers(&env.key("ALL")), [id.as_str()]);
    assert_eq!(
        server.smembers(&env.key("PENDING_AND_RUNNING")),
        [id.as_str()]
    );
    let h = server.hgetall(&env.job(&id));
    for f in ["submitted", "host", "user", "cwd"] {
        assert!(h.get(f).is_some_and(|v| !v.is_empty()), "{f} in {h:?}");
    }
    assert_eq!(h["sbatch_args"], r#"["--time=5","job.sbatch"]"#);
    assert_eq!(
        std::path::Path::new(&h["cwd"]).canonicalize().unwrap(),
        env.path().canonicalize().unwrap()
    );
    slurm::wait_finished(&id, JOB_DONE);
    assert_eq!(slurm::state(&id).as_deref(), Some("COMPLETED"));

    let t = &env.tag;
    let out = env.run("rj-last", &[]).ok();
    let want = format!(
        "Key:  {t}-{id}:job_tag\nValue: {t}\n---\n\
         Key:  {t}-{id}:result\nValue: {{\"epoch\":\"3\",\"loss\":\"0.5\"}}\n---\n\
         Key:  {t}-{id}:rj_config\nValue: {}\n---\n",
        env.config.display()
    );
    assert_eq!(
        out, want,
        "the job saw JOB_TAG, job_tag and an absolute RJ_CONFIG"
    );
}

#[test]
fn array_job_records_the_parent_id() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let out = env.run(
        "rj-launch",
        &["--", "--array=1-3", "--output=/dev/null", "--wrap", "true"],
    );
    out.code(0);
    let id = printed_id(&out);
    assert_eq!(server.smembers(&env.key("ALL")), [id.as_str()]);
    assert_eq!(
        server.smembers(&env.key("PENDING_AND_RUNNING")),
        [id.as_str()]
    );
    for task in 1..=3 {
        slurm::wait_finished(&format!("{id}_{task}"), JOB_DONE);
    }
}

#[test]
fn pipe_from_sbatch_parsable_into_record_stdin() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    // sbatch --parsable --wrap true | rj-launch --record -
    let mut sbatch = std::process::Command::new("sbatch")
        .args(["--parsable", "--output=/dev/null", "--wrap", "true"])
        .current_dir(env.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = sbatch.stdout.take().unwrap();
    let out = env
        .std_command(util::bin_path("rj-launch"))
        .args(["--record", "-"])
        .stdin(pipe)
        .output()
        .unwrap();
    assert!(sbatch.wait().unwrap().success());
    check::code(&out, 0);
    let id = printed_id(&out);
    assert_eq!(server.smembers(&env.key("ALL")), [id.as_str()]);
    assert_eq!(
        server.smembers(&env.key("PENDING_AND_RUNNING")),
        [id.as_str()]
    );
    slurm::wait_finished(&id, JOB_DONE);
}

#[test]
fn redis_down_after_sbatch_spools_and_next_launch_replays() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let dead = env.path().join("dead.json");
    std::fs::write(
        &dead,
        format!(r#"{{"host": "127.0.0.1", "port": {}}}"#, util::free_port()),
    )
    .unwrap();
    let spool = env.spool();
    let wrap = ["--", "--output=/dev/null", "--wrap", "true"];
    let out = run(env.cmd("rj-launch").env("RJ_CONFIG", &dead).args(wrap));
    let first = printed_id(&out);
    let line = out.fails(75);
    assert!(
        line.contains(spool.to_str().unwrap()),
        "names the spool: {line}"
    );
    assert!(line.contains("cannot connect to Redis"), "{line}");
    assert!(line.contains(&first), "{line}");
    assert!(std::fs::read_to_string(&spool).unwrap().contains(&first));
    assert!(all_keys(&server).is_empty());

    let out = run(env.cmd("rj-launch").args(wrap));
    out.code(0);
    let second = printed_id(&out);
    let err = out.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("recorded 1 spooled job(s)"), "{err}");
    let mut want = vec![first.clone(), second.clone()];
    want.sort();
    assert_eq!(server.smembers(&env.key("ALL")), want);
    assert_eq!(server.smembers(&env.key("PENDING_AND_RUNNING")), want);
    assert!(server.hgetall(&env.job(&first)).contains_key("submitted"));
    assert_eq!(
        std::fs::read_to_string(&spool).unwrap(),
        "",
        "spool emptied"
    );
    slurm::wait_finished(&first, JOB_DONE);
    slurm::wait_finished(&second, JOB_DONE);
}

#[test]
fn real_sbatch_failure_shows_its_message_and_writes_nothing() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let out = env.run("rj-launch", &["--", "no-such-script.sbatch"]);
    out.code(69);
    let err = out.stderr();
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 2, "sbatch's own message first: {err}");
    assert!(lines[0].starts_with("sbatch: error"), "{err}");
    assert!(
        lines.last().unwrap().starts_with(
            "rj-launch: error: sbatch --parsable no-such-script.sbatch failed (exit status 1)"
        ),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    check::nothing_written(&server, &env);
}

/// sbatch is wrapped (the real one still runs) to see the command line and environment rj builds.
#[test]
fn password_is_never_on_sbatch_argv_or_in_the_job_env() {
    let Some((server, env, _node)) = slurm::setup_with(RedisOptions {
        password: Some("job-secret-4".into()),
        ..Default::default()
    }) else {
        return;
    };
    let real = which::which("sbatch").unwrap();
    let path = env.fake_tools(&[(
        "sbatch",
        &format!(
            "printf '%s\\n' \"$@\" > '{d}/argv'\nenv > '{d}/env'\nexec '{}' \"$@\"",
            real.display(),
            d = env.path().display()
        ),
    )]);
    // A relative --config reaches the job as an absolute RJ_CONFIG.
    let out = run(env
        .cmd("rj-launch")
        .env("PATH", &path)
        .env_remove("RJ_CONFIG")
        .args(["--config", "redis.json"])
        .args(["--", "--output=/dev/null", "--wrap", "true"]));
    out.code(0);
    let id = printed_id(&out);
    let argv = std::fs::read_to_string(env.path().join("argv")).unwrap();
    assert_eq!(argv, "--parsable\n--output=/dev/null\n--wrap\ntrue\n");
    let job_env = std::fs::read_to_string(env.path().join("env")).unwrap();
    assert!(!job_env.contains("job-secret-4"), "{job_env}");
    assert!(job_env.contains(&format!("JOB_TAG={}\n", env.tag)));
    assert!(job_env.contains(&format!("job_tag={}\n", env.tag)));
    let rj_config = job_env
        .lines()
        .find_map(|l| l.strip_prefix("RJ_CONFIG="))
        .expect("RJ_CONFIG in the job's environment");
    assert!(rj_config.starts_with('/'), "{rj_config}");
    assert_eq!(
        std::fs::canonicalize(rj_config).unwrap(),
        std::fs::canonicalize(&env.config).unwrap()
    );
    assert!(!out.stderr().contains("job-secret-4"));
    assert_eq!(server.smembers(&env.key("ALL")), [id.as_str()]);
    slurm::wait_finished(&id, JOB_DONE);
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

/// The scripts users copy from share/examples run for real: job.sbatch writes its keys with
/// rj-put, and each task of array-job.sbatch writes `T-<array>_<task>:*`, which rj-last reads
/// back.
#[test]
fn share_example_job_scripts_run_on_slurm() {
    let Some((_server, env, _node)) = slurm::setup() else {
        return;
    };
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("share/examples");
    let out_file = env.path().join("slurm-%j.out");
    let launch = |script: &str, extra: &[&str]| {
        let mut args = vec!["--".to_string(), format!("--output={}", out_file.display())];
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push(examples.join(script).display().to_string());
        printed_id(&run(env
            .cmd("rj-launch")
            .env("PATH", util::path_with_rj())
            .args(&args)))
    };
    let job = launch("job.sbatch", &[]);
    let array = launch("array-job.sbatch", &["--array=1-2"]);
    slurm::wait_finished(&job, JOB_DONE);
    assert_eq!(slurm::state(&job).as_deref(), Some("COMPLETED"));
    for task in ["1", "2"] {
        slurm::wait_finished(&format!("{array}_{task}"), JOB_DONE);
    }

    let keys_of = |job_id: &str| -> Vec<(String, String)> {
        let out = env
            .run("rj-last", &["--job", job_id, "--format", "json"])
            .ok();
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                let name = k["key"].as_str().unwrap();
                let suffix = name.rsplit_once(':').unwrap().1.to_string();
                (suffix, k["type"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let t = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        keys_of(&job),
        t(&[
            ("finished", "string"),
            ("host", "string"),
            ("log", "list"),
            ("result", "hash"),
            ("started", "string"),
            ("summary.json", "string"),
        ])
    );
    for task in ["1", "2"] {
        let got = keys_of(&format!("{array}_{task}"));
        assert!(
            got.iter().any(|(k, _)| k == "result") && got.iter().any(|(k, _)| k == "finished"),
            "task {task}: {got:?}"
        );
    }
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

/// A Redis Cluster answers MOVED for a key of another node's slot: no retry fixes that (rj does
/// not follow redirections), so the job is spooled and the status is 69, not 75.
#[test]
fn a_cluster_redirection_is_not_temporary() {
    if which::which("redis-server").is_err() {
        return util::missing("redis-server");
    }
    let (a, b) = (ClusterNode::start(), ClusterNode::start());
    a.cli(&["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]);
    b.cli(&["CLUSTER", "ADDSLOTSRANGE", "8192", "16383"]);
    a.cli(&["CLUSTER", "MEET", "127.0.0.1", &b.port.to_string()]);
    util::wait_until(Duration::from_secs(30), "the cluster to form", || {
        a.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
            && b.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
    });
    // A tag whose T_ALL lives on b, asked of a.
    let tag = (0..1000)
        .map(|i| util::unique_tag(&format!("mv{i}")))
        .find(|t| {
            let slot: u32 = a
                .cli(&["CLUSTER", "KEYSLOT", &format!("{t}_ALL")])
                .trim()
                .parse()
                .unwrap();
            slot > 8191
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut assert_cmd::Command::from_std({
        let mut c = std::process::Command::new(util::bin_path("rj-launch"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .env("REDIS_URL", format!("redis://127.0.0.1:{}", a.port))
            .args(["--tag", &tag, "--record", "51"])
            .current_dir(dir.path());
        c
    }));
    assert_eq!(out.stdout(), "51\n");
    let line = out.fails(69);
    // MOVED, or (where rj detects a cluster node at connect) a word saying it is a cluster.
    assert!(
        line.to_ascii_uppercase().contains("MOVED") || line.contains("Cluster"),
        "{line}"
    );
    assert!(line.contains("will not drain until it is fixed"), "{line}");
    let spool = dir.path().join(format!("state/rj/{tag}.spool"));
    assert!(std::fs::read_to_string(spool).unwrap().contains("\"51\""));
}

/// A redis-server in cluster mode on a free port, in its own directory; Drop kills and waits.
struct ClusterNode {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl ClusterNode {
    fn start() -> ClusterNode {
        let dir = tempfile::tempdir().unwrap();
        let port = util::free_port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let node = ClusterNode {
            port,
            child,
            _dir: dir,
        };
        util::wait_until(Duration::from_secs(10), "redis-server to answer", || {
            std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string(), "PING"])
                .output()
                .is_ok_and(|o| o.stdout.starts_with(b"PONG"))
        });
        node
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// A site's sbatch wrapper around the real sbatch prints a warning after the ID, or before it:
/// the job is printed, recorded and shown to be in Slurm; the warning goes to stderr.
#[test]
fn a_wrapper_line_around_the_job_id_does_not_lose_the_job() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let real = which::which("sbatch").unwrap();
    for (n, body) in [
        "'{real}' \"$@\"; echo 'warning: project rjtest is at 91% of its quota'",
        "echo 'note: using the default account'; '{real}' \"$@\"; echo",
    ]
    .iter()
    .enumerate()
    {
        let bin = env.path().join(format!("wrap{n}"));
        util::write_script(
            &bin,
            "sbatch",
            &body.replace("{real}", real.to_str().unwrap()),
        );
        let out = run(env
            .cmd("rj-launch")
            .env("PATH", util::path_with(&bin))
            .args(["--", "--output=/dev/null", "--wrap", "true"]));
        out.code(0);
        let id = printed_id(&out);
        let err = out.stderr();
        let said = if n == 0 {
            "rj-launch: sbatch said: warning: project rjtest is at 91% of its quota\n"
        } else {
            "rj-launch: sbatch said: note: using the default account\n"
        };
        assert_eq!(err, said);
        assert!(server.smembers(&env.key("ALL")).contains(&id));
        assert!(slurm::state(&id).is_some(), "job {id} is in Slurm");
        slurm::wait_finished(&id, JOB_DONE);
    }
}

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

// --- What the job gets: every --export form, and the server behind --url / REDIS_URL. ---

/// The environment a job saw, written by the job itself as `env-<job id>` in `dir`.
fn job_env(dir: &std::path::Path, id: &str) -> std::collections::BTreeMap<String, String> {
    slurm::wait_finished(id, JOB_DONE);
    let p = dir.join(format!("env-{id}"));
    util::wait_until(Duration::from_secs(10), "the job's env file", || p.exists());
    std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A job script that writes its environment to `env-$SLURM_JOB_ID` in `dir`, with `directive`
/// among its #SBATCH lines.
fn env_script(dir: &std::path::Path, directive: &str) -> String {
    format!(
        "#!/bin/sh\n#SBATCH --job-name=rj-env\n{directive}\n/usr/bin/env > '{}/env-'\"$SLURM_JOB_ID\"\n",
        dir.display()
    )
}

/// One way of submitting: sbatch arguments, extra environment, a script on stdin, and whether
/// SECRET_X (set in rj-launch's environment) is to reach the job.
struct Case {
    what: &'static str,
    sbatch: &'static [&'static str],
    vars: Vec<(&'static str, &'static str)>,
    stdin: Option<&'static str>,
    secret: bool,
}

impl Case {
    fn new(what: &'static str, sbatch: &'static [&'static str]) -> Case {
        Case {
            what,
            sbatch,
            vars: Vec::new(),
            stdin: None,
            secret: false,
        }
    }
    fn env(mut self, k: &'static str, v: &'static str) -> Case {
        self.vars.push((k, v));
        self
    }
    fn stdin(mut self, script: &'static str) -> Case {
        self.stdin = Some(script);
        self
    }
    /// An ALL rule: everything is exported, SECRET_X too.
    fn all(mut self) -> Case {
        self.secret = true;
        self
    }
}

#[test]
fn every_export_form_lets_the_tag_through_and_nothing_else() {
    let Some((_server, env, _node)) = slurm::setup() else {
        return;
    };
    let d = env.path();
    std::fs::write(d.join("plain.sh"), env_script(d, "")).unwrap();
    std::fs::write(d.join("none.sh"), env_script(d, "#SBATCH --export=NONE")).unwrap();
    let cases = [
        Case::new("--export=NONE", &["--export=NONE", "plain.sh"]),
        Case::new("--export NONE", &["--export", "NONE", "plain.sh"]),
        Case::new("SBATCH_EXPORT=NONE", &["plain.sh"]).env("SBATCH_EXPORT", "NONE"),
        Case::new("#SBATCH --export=NONE", &["none.sh"]),
        Case::new("a list", &["--export=FOO_KEPT", "plain.sh"]),
        Case::new("a script on stdin", &[]).stdin("none.sh"),
        Case::new("NIL", &["--export=NIL", "plain.sh"]),
        Case::new("ALL,X=1", &["--export=ALL,X_ADDED=1", "plain.sh"]).all(),
        Case::new("command line beats script", &["--export=ALL", "none.sh"]).all(),
        Case::new("SBATCH_EXPORT beats script", &["none.sh"])
            .env("SBATCH_EXPORT", "ALL")
            .all(),
    ];
    let mut jobs = Vec::new();
    for c in cases {
        let mut cmd = env.cmd("rj-launch");
        cmd.env("SECRET_X", "must-stay-home")
            .env("FOO_KEPT", "foo")
            .args(["--", "--output=/dev/null"])
            .args(c.sbatch);
        for (k, v) in &c.vars {
            cmd.env(k, v);
        }
        if let Some(s) = c.stdin {
            cmd.write_stdin(std::fs::read(d.join(s)).unwrap());
        }
        let out = run(&mut cmd);
        out.code(0);
        jobs.push((c.what, printed_id(&out), c.secret));
    }
    for (what, id, secret) in jobs {
        let got = job_env(d, &id);
        assert_eq!(got.get("JOB_TAG"), Some(&env.tag), "{what}: {got:?}");
        assert_eq!(got.get("job_tag"), Some(&env.tag), "{what}");
        assert_eq!(
            got.get("RJ_CONFIG").map(std::path::PathBuf::from),
            Some(env.config.clone()),
            "{what}"
        );
        assert_eq!(got.contains_key("SECRET_X"), secret, "{what}: {got:?}");
        match what {
            "a list" => assert_eq!(got.get("FOO_KEPT").map(String::as_str), Some("foo")),
            "ALL,X=1" => assert_eq!(got.get("X_ADDED").map(String::as_str), Some("1")),
            _ if !secret => assert!(!got.contains_key("FOO_KEPT"), "{what}: {got:?}"),
            _ => {}
        }
    }
}

/// `--url` and `REDIS_URL` reach the job as a private redis.json in RJ_CONFIG: the example job
/// writes to that server and db, rj-last reads the same file, and the password is in neither the
/// job's environment, sbatch's command line nor `scontrol show job -dd`.
#[test]
fn a_url_server_reaches_the_job_without_its_password() {
    const PW: &str = "pw-url-5";
    let Some((server, env, _node)) = slurm::setup_with(RedisOptions {
        password: Some(PW.into()),
        ..Default::default()
    }) else {
        return;
    };
    let d = env.path();
    std::fs::remove_file(&env.config).unwrap();
    std::fs::write(d.join("env.sh"), env_script(d, "")).unwrap();
    let real = which::which("sbatch").unwrap();
    let bin = d.join("bin");
    util::write_script(
        &bin,
        "sbatch",
        &format!(
            "printf '%s\\n' \"$@\" >> '{d}/argv'\nexec '{}' \"$@\"",
            real.display(),
            d = d.display()
        ),
    );
    let launch = |cmd: &mut assert_cmd::Command, args: &[&str]| {
        let out = run(cmd
            .env_remove("RJ_CONFIG")
            .env("PATH", util::path_with(&bin))
            .arg("--")
            .args(args));
        out.code(0);
        assert!(!out.stderr().contains(PW));
        printed_id(&out)
    };
    let url = |db: u32| format!("redis://:{PW}@127.0.0.1:{}/{db}", server.port);
    // The redis-cli example: under --export=NONE the job has the login PATH, where this
    // test's rj-put is not (a site installs rj on that PATH).
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("share/examples/job-redis-cli.sbatch");
    let output = format!("--output={}/job-%j.out", d.display());

    // --url, with --export=NONE: the example job writes to db 2 of that server.
    let job = launch(
        env.cmd("rj-launch").args(["--url", &url(2)]),
        &["--export=NONE", &output, example.to_str().unwrap()],
    );
    // REDIS_URL with a password: it is not passed on; RJ_CONFIG is.
    let from_env = launch(
        env.cmd("rj-launch").env("REDIS_URL", url(3)),
        &["--output=/dev/null", "env.sh"],
    );
    // A URL without a password (the password from REDISCLI_AUTH) beats the REDIS_URL the job
    // would otherwise inherit.
    let plain = format!("redis://127.0.0.1:{}/4", server.port);
    let beaten = launch(
        env.cmd("rj-launch")
            .env("REDIS_URL", "redis://127.0.0.1:1/9")
            .env("REDISCLI_AUTH", PW)
            .args(["--url", &plain]),
        &["--output=/dev/null", "env.sh"],
    );

    slurm::wait_finished(&job, JOB_DONE);
    assert_eq!(
        slurm::state(&job).as_deref(),
        Some("COMPLETED"),
        "{}",
        std::fs::read_to_string(d.join(format!("job-{job}.out"))).unwrap_or_default()
    );
    let key = format!("{}-{job}:finished", env.tag);
    assert_eq!(server.cli(&["-n", "2", "EXISTS", &key]), "1\n", "in db 2");

    let got = job_env(d, &from_env);
    assert!(!got.contains_key("REDIS_URL"), "{got:?}");
    assert!(got.values().all(|v| !v.contains(PW)), "{got:?}");
    let private = std::path::PathBuf::from(&got["RJ_CONFIG"]);
    assert!(
        private.starts_with(d.join("state/rj/job-config")),
        "{}",
        private.display()
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&private).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // The tools read that file as a redis.json: db 3 of the server, with the password.
    server.cli(&["-n", "3", "SET", &format!("{}-{from_env}:x", env.tag), "1"]);
    let out = run(env
        .cmd("rj-last")
        .env("RJ_CONFIG", &private)
        .args(["--job", &from_env]))
    .ok();
    assert!(out.contains(&format!("{}-{from_env}:x", env.tag)), "{out}");

    let got = job_env(d, &beaten);
    assert_eq!(got.get("REDIS_URL"), Some(&plain));

    let argv = std::fs::read_to_string(d.join("argv")).unwrap();
    assert!(!argv.contains(PW), "{argv}");
    for id in [&job, &from_env, &beaten] {
        let shown = slurm::run("scontrol", &["show", "job", "-dd", id]);
        assert!(shown.contains(&format!("JobId={id}")), "{shown}");
        assert!(!shown.contains(PW), "{shown}");
    }
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
