//! rj-launch (DESIGN §4): real sbatch on the Slurm testbed, --record, the spool and its replay,
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
    let out = run(env.cmd("rj-launch").args(["--", "--time=5", "job.sbatch"]));
    check::code(&out, 0);
    assert!(out.stderr.is_empty(), "{}", check::stderr(&out));
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
    let out = ok(&run(&mut env.cmd("rj-last")));
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
    let out = run(env.cmd("rj-launch").args([
        "--",
        "--array=1-3",
        "--output=/dev/null",
        "--wrap",
        "true",
    ]));
    check::code(&out, 0);
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
    let line = fails(&out, 75, "rj-launch");
    assert!(
        line.contains(spool.to_str().unwrap()),
        "names the spool: {line}"
    );
    assert!(line.contains("cannot connect to Redis"), "{line}");
    assert!(line.contains(&first), "{line}");
    assert!(std::fs::read_to_string(&spool).unwrap().contains(&first));
    assert!(all_keys(&server).is_empty());

    let out = run(env.cmd("rj-launch").args(wrap));
    check::code(&out, 0);
    let second = printed_id(&out);
    let err = check::stderr(&out);
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
    let out = run(env.cmd("rj-launch").args(["--", "no-such-script.sbatch"]));
    check::code(&out, 69);
    let err = check::stderr(&out);
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
    assert!(all_keys(&server).is_empty());
    assert!(!env.path().join("state").exists(), "nothing spooled");
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
    let bin = env.path().join("bin");
    util::write_script(
        &bin,
        "sbatch",
        &format!(
            "printf '%s\\n' \"$@\" > '{d}/argv'\nenv > '{d}/env'\nexec '{}' \"$@\"",
            real.display(),
            d = env.path().display()
        ),
    );
    // A relative --config reaches the job as an absolute RJ_CONFIG.
    let out = run(env
        .cmd("rj-launch")
        .env("PATH", util::path_with(&bin))
        .env_remove("RJ_CONFIG")
        .args(["--config", "redis.json"])
        .args(["--", "--output=/dev/null", "--wrap", "true"]));
    check::code(&out, 0);
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
    assert!(!check::stderr(&out).contains("job-secret-4"));
    assert_eq!(server.smembers(&env.key("ALL")), [id.as_str()]);
    slurm::wait_finished(&id, JOB_DONE);
}

// --- Without Slurm: --record, and fake sbatch for failures real Slurm cannot produce. ---

/// A fake sbatch that logs its arguments and prints `body`'s output.
fn fake_sbatch(env: &TestEnv, body: &str) -> String {
    let bin = env.path().join("fake-bin");
    util::write_script(
        &bin,
        "sbatch",
        &format!(
            "printf '%s\\n' \"$@\" > '{}/fake-argv'\n{body}",
            env.path().display()
        ),
    );
    util::path_with(&bin)
}

#[test]
fn record_ids_from_arguments_and_stdin() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    server.cli(&["CONFIG", "RESETSTAT"]);
    let out = run(env
        .cmd("rj-launch")
        .args(["--record", "12", "9", "12", "7_3"]));
    assert_eq!(ok(&out), "12\n9\n7_3\n");
    assert!(out.stderr.is_empty(), "{}", check::stderr(&out));
    assert_eq!(server.smembers(&env.key("ALL")), ["12", "7_3", "9"]);
    assert_eq!(
        server.smembers(&env.key("PENDING_AND_RUNNING")),
        ["12", "7_3", "9"]
    );
    // One MULTI/EXEC for the batch: both SADDs and the hashes.
    assert_eq!(check::calls(&server, "multi"), 1);
    assert_eq!(check::calls(&server, "exec"), 1);
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
    assert_eq!(ok(&out), "100\n101\n102_4\n");
    assert_eq!(
        server.smembers(&env.key("ALL")),
        ["100", "101", "102_4", "12", "7_3", "9"]
    );
    assert_eq!(server.hgetall(&env.job("101"))["cluster"], "clusterB");
    assert!(!server.hgetall(&env.job("100")).contains_key("cluster"));
}

#[test]
fn record_rejects_bad_ids_before_writing_anything() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    for (args, stdin) in [
        (&["--record", "12", "12x"][..], ""),
        (&["--record", "-"], "12\n1_[2-3]\n"),
        (&["--record", "-"], ""),
        (&["--record", "12;c", "*"], ""),
    ] {
        let out = run(env.cmd("rj-launch").args(args).write_stdin(stdin));
        fails(&out, 65, "rj-launch");
        assert!(out.stdout.is_empty());
    }
    assert!(all_keys(&server).is_empty());
    let line = fails(&run(&mut env.cmd("rj-launch")), 2, "rj-launch");
    assert!(line.contains("--record"), "{line}");
}

#[test]
fn already_recorded_ids_stay_in_their_final_set() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    ok(&run(env.cmd("rj-launch").args(["--record", "5", "6"])));
    server.cli(&[
        "SMOVE",
        &env.key("PENDING_AND_RUNNING"),
        &env.key("COMPLETED"),
        "5",
    ]);
    server.cli(&["HSET", &env.key("JOB:5"), "state", "COMPLETED"]);
    let out = run(env.cmd("rj-launch").args(["--record", "5", "8"]));
    assert_eq!(ok(&out), "5\n8\n");
    let err = check::stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("job 5 was already recorded"), "{err}");
    assert_eq!(server.smembers(&env.key("ALL")), ["5", "6", "8"]);
    assert_eq!(server.smembers(&env.key("PENDING_AND_RUNNING")), ["6", "8"]);
    assert_eq!(server.smembers(&env.key("COMPLETED")), ["5"]);
    assert_eq!(server.hgetall(&env.job("5"))["state"], "COMPLETED");
}

#[test]
fn record_with_redis_down_spools_and_next_record_replays() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let dead = format!("redis://127.0.0.1:{}", util::free_port());
    let out = run(env
        .cmd("rj-launch")
        .env("REDIS_URL", &dead)
        .args(["--record", "41", "42;cl"]));
    assert_eq!(check::stdout(&out), "41\n42\n", "IDs printed all the same");
    let line = fails(&out, 75, "rj-launch");
    let spool = env.spool();
    assert!(line.contains(spool.to_str().unwrap()), "{line}");
    // A job spooled twice (two failed attempts) is still one job.
    let out = run(env
        .cmd("rj-launch")
        .env("REDIS_URL", &dead)
        .args(["--record", "41", "43"]));
    fails(&out, 75, "rj-launch");
    assert!(all_keys(&server).is_empty());

    let out = run(env.cmd("rj-launch").args(["--record", "44"]));
    assert_eq!(ok(&out), "44\n");
    let err = check::stderr(&out);
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
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
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
    let out = run(env.cmd("rj-launch").args(["--record", "54"]));
    assert_eq!(ok(&out), "54\n");
    let err = check::stderr(&out);
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
    let out = run(env.cmd("rj-launch").args(["--record", "55"]));
    assert_eq!(check::stderr(&out), "");
}

#[test]
fn sbatch_missing_is_69_and_nothing_written() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let empty = env.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let out = run(env
        .cmd("rj-launch")
        .env("PATH", &empty)
        .args(["--", "job.sbatch"]));
    let line = fails(&out, 69, "rj-launch");
    assert!(line.contains("sbatch not found on PATH"), "{line}");
    assert!(out.stdout.is_empty());
    assert!(all_keys(&server).is_empty());
}

#[test]
fn sbatch_cluster_output_keeps_cluster_in_job_hash() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let path = fake_sbatch(&env, "echo '123;clusterA'");
    let out = run(env.cmd("rj-launch").env("PATH", &path).args([
        "--tag",
        &env.tag,
        "--",
        "--time=1",
        "job.sbatch",
    ]));
    assert_eq!(ok(&out), "123\n");
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
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
    let path = fake_sbatch(&env, "echo 'Submitted batch job 12'");
    let out = run(env.cmd("rj-launch").env("PATH", &path).arg("job.sbatch"));
    let line = fails(&out, 65, "rj-launch");
    assert!(
        line.contains("sbatch output \"Submitted batch job 12\""),
        "{line}"
    );
    assert!(out.stdout.is_empty());

    let path = fake_sbatch(&env, "kill -9 $$");
    let out = run(env.cmd("rj-launch").env("PATH", &path).arg("job.sbatch"));
    let line = fails(&out, 69, "rj-launch");
    assert!(
        line.contains("sbatch --parsable job.sbatch failed (killed by a signal)"),
        "{line}"
    );

    let path = fake_sbatch(
        &env,
        "echo 'sbatch: error: Batch job submission failed' >&2; exit 1",
    );
    let out = run(env.cmd("rj-launch").env("PATH", &path).arg("job.sbatch"));
    check::code(&out, 69);
    let err = check::stderr(&out);
    assert!(
        err.starts_with("sbatch: error: Batch job submission failed\n"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert!(all_keys(&server).is_empty());
    assert!(!env.path().join("state").exists(), "nothing spooled");
}

#[test]
fn refused_password_stops_before_sbatch() {
    let Some(server) = RedisServer::with(RedisOptions {
        password: Some("pw-launch-2".into()),
        ..Default::default()
    }) else {
        return;
    };
    let env = TestEnv::new(&server);
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
    let Some(server) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::new(&server);
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
    assert_eq!(check::stdout(&out), "61\n", "the ID is still printed");
    let line = fails(&out, 69, "rj-launch");
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
        let out = ok(&run(env
            .cmd("rj-last")
            .args(["--job", job_id, "--format", "json"])));
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
