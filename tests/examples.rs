//! The example job scripts in share/examples, submitted for real with rj-launch on the Slurm
//! testbed: they must find the server the way the rj tools do (REDIS_URL, then "url" in
//! redis.json, then its host/port/db fields), and never put the password on a command line.
//! job.sbatch and array-job.sbatch write with rj-put (found on PATH, as on a node where rj is
//! installed); job-redis-cli.sbatch, for sites without rj on the compute nodes, with redis-cli.
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::check::{self, run};
use crate::util::{self, slurm, RedisOptions, TestEnv};

const JOB_DONE: Duration = Duration::from_secs(120);

/// A password with characters that must be percent-encoded in a URL.
const PASSWORD: &str = "s3cr$t!pw";
const PASSWORD_IN_URL: &str = "s3cr%24t%21pw";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("share/examples")
        .join(name)
}

/// Submit an example with rj-launch (extra sbatch options first); the job's output goes to
/// `<temp dir>/job-%j.out` (`%A_%a` for arrays). Returns the printed job ID.
fn launch(env: &TestEnv, cmd: &mut assert_cmd::Command, script: &str, extra: &[&str]) -> String {
    let pattern = if extra.iter().any(|a| a.starts_with("--array")) {
        "job-%A_%a.out"
    } else {
        "job-%j.out"
    };
    let mut args = vec![
        "--".to_string(),
        format!("--output={}", env.path().join(pattern).display()),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.push(example(script).display().to_string());
    let out = run(cmd.env("PATH", util::path_with_rj()).args(&args));
    out.code(0);
    let id = out.stdout().trim().to_string();
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
        "rj-launch printed a job ID: {id:?}"
    );
    id
}

/// The job's output file, for failure messages and the secret check.
fn output_of(env: &TestEnv, name: &str) -> String {
    std::fs::read_to_string(env.path().join(name)).unwrap_or_default()
}

/// `rj-last --job ID --format json` (with `cmd`'s environment): key suffix → (type, value).
fn keys_of(cmd: &mut assert_cmd::Command, job: &str) -> Vec<(String, String, serde_json::Value)> {
    let out = run(cmd.args(["--job", job, "--format", "json"])).ok();
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    doc["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("no keys in {out}"))
        .iter()
        .map(|k| {
            let name = k["key"].as_str().unwrap();
            let suffix = name.rsplit_once(':').unwrap().1.to_string();
            (
                suffix,
                k["type"].as_str().unwrap().to_string(),
                k["value"].clone(),
            )
        })
        .collect()
}

/// What job.sbatch writes: host, started, a log of 3, the result hash, summary.json, finished.
fn assert_single_job_keys(keys: &[(String, String, serde_json::Value)], what: &str) {
    let names: Vec<(&str, &str)> = keys
        .iter()
        .map(|(k, t, _)| (k.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("finished", "string"),
            ("host", "string"),
            ("log", "list"),
            ("result", "hash"),
            ("started", "string"),
            ("summary.json", "string"),
        ],
        "{what}"
    );
    let value = |name: &str| &keys.iter().find(|(k, _, _)| k == name).unwrap().2;
    assert_eq!(
        value("log"),
        &serde_json::json!(["step 1 loss 50", "step 2 loss 25", "step 3 loss 12"]),
        "{what}"
    );
    assert_eq!(value("result")["loss"], "12", "{what}");
    assert_eq!(value("result")["steps"], "3", "{what}");
    assert!(
        value("host").as_str().is_some_and(|h| !h.is_empty()),
        "{what}"
    );
    for k in ["started", "finished"] {
        assert!(
            value(k).as_str().is_some_and(|v| v.ends_with('Z')),
            "{k}: {what}"
        );
    }
}

/// Wait for a single job and insist it completed, showing its output file otherwise.
fn wait_completed(env: &TestEnv, id: &str, out_name: &str) {
    slurm::wait_finished(id, JOB_DONE);
    assert_eq!(
        slurm::state(id).as_deref(),
        Some("COMPLETED"),
        "job {id}; its output: {}",
        output_of(env, out_name)
    );
}

/// The single-job examples: with rj-put, and with plain redis-cli.
const SINGLE_JOB_SCRIPTS: [&str; 2] = ["job.sbatch", "job-redis-cli.sbatch"];

/// redis.json holds only `"url"` with a percent-encoded password and db 3: the job writes to
/// db 3 of that server, and the password is in neither its output nor a command line.
#[test]
fn job_example_follows_url_in_redis_json_to_db_3() {
    let Some((server, env, _node)) = slurm::setup_with(RedisOptions {
        password: Some(PASSWORD.into()),
        ..Default::default()
    }) else {
        return;
    };
    let url = format!("redis://:{PASSWORD_IN_URL}@127.0.0.1:{}/3", server.port);
    std::fs::write(&env.config, serde_json::json!({ "url": url }).to_string()).unwrap();
    util::set_mode(&env.config, 0o600);

    let ids: Vec<String> = SINGLE_JOB_SCRIPTS
        .iter()
        .map(|script| launch(&env, &mut env.cmd("rj-launch"), script, &[]))
        .collect();
    for (script, id) in SINGLE_JOB_SCRIPTS.iter().zip(&ids) {
        let out_name = format!("job-{id}.out");
        wait_completed(&env, id, &out_name);
        let output = output_of(&env, &out_name);
        let what = format!("{script}: {output}");

        let keys = keys_of(&mut env.cmd("rj-last"), id);
        assert_single_job_keys(&keys, &what);
        let key = format!("{}-{id}:finished", env.tag);
        assert_eq!(server.cli(&["-n", "3", "EXISTS", &key]), "1\n", "in db 3");
        assert_eq!(
            server.cli(&["-n", "0", "EXISTS", &key]),
            "0\n",
            "not in db 0: {what}"
        );
        assert!(
            output.contains(&format!("wrote {}-{id}:*", env.tag)),
            "{what}"
        );
        for secret in [PASSWORD, PASSWORD_IN_URL] {
            assert!(
                !output.contains(secret),
                "password in the job's output: {what}"
            );
        }
    }
}

/// REDIS_URL in the submitting environment wins over a redis.json whose host/port are dead:
/// the job inherits it through rj-launch's sbatch, as the rj tools read it.
#[test]
fn job_example_prefers_redis_url_over_redis_json() {
    let Some((server, env, _node)) = slurm::setup() else {
        return;
    };
    let dead = util::free_port();
    std::fs::write(
        &env.config,
        serde_json::json!({ "host": "127.0.0.1", "port": dead }).to_string(),
    )
    .unwrap();
    let url = format!("{}/2", server.url());

    let ids: Vec<String> = SINGLE_JOB_SCRIPTS
        .iter()
        .map(|script| {
            launch(
                &env,
                env.cmd("rj-launch").env("REDIS_URL", &url),
                script,
                &[],
            )
        })
        .collect();
    for (script, id) in SINGLE_JOB_SCRIPTS.iter().zip(&ids) {
        let out_name = format!("job-{id}.out");
        wait_completed(&env, id, &out_name);
        let keys = keys_of(env.cmd("rj-last").env("REDIS_URL", &url), id);
        assert_single_job_keys(&keys, &format!("{script}: {}", output_of(&env, &out_name)));
        let key = format!("{}-{id}:finished", env.tag);
        assert_eq!(server.cli(&["-n", "2", "EXISTS", &key]), "1\n", "in db 2");
    }
}

/// Redis unreachable from the job: every rj-put of job.sbatch spools (75) and the job goes on
/// to complete; the next rj-put of the tag, on the login node, replays it all, the list once.
#[test]
fn job_example_with_redis_unreachable_spools_and_is_replayed_whole() {
    let Some((mut server, env, _node)) = slurm::setup() else {
        return;
    };
    // Recorded while Redis is up; held until Redis is down, so that the job finds it gone.
    let id = launch(
        &env,
        env.cmd("rj-launch").env("RJ_PUT_RETRY_FOR", "0"),
        "job.sbatch",
        &["--hold"],
    );
    server.kill();
    slurm::run("scontrol", &["release", &id]);
    let out_name = format!("job-{id}.out");
    wait_completed(&env, &id, &out_name);
    let output = output_of(&env, &out_name);
    assert!(output.contains("spooled to"), "{output}");
    server.restart();
    let pattern = format!("{}-{id}:*", env.tag);
    assert_eq!(
        server.cli(&["--scan", "--pattern", &pattern]),
        "",
        "{output}"
    );

    let spool = env
        .path()
        .join("state/rj")
        .join(format!("{}.results", env.tag));
    assert_eq!(
        rj::results_spool::pending(&spool).unwrap().len(),
        6,
        "{output}"
    );
    let out = env.run("rj-put", &["--job", &id, "replayed", "yes"]);
    out.code(0);
    assert!(
        out.stderr().contains("replayed 6 spooled write(s)"),
        "{}",
        out.stderr()
    );
    let keys: Vec<_> = keys_of(&mut env.cmd("rj-last"), &id)
        .into_iter()
        .filter(|(k, _, _)| k != "replayed")
        .collect();
    assert_single_job_keys(&keys, &output);
    assert!(rj::results_spool::pending(&spool).unwrap().is_empty());
}

/// The array example with the plain host/port redis.json: every task writes its own keys,
/// which rj-last shows per task and under the array's parent ID.
#[test]
fn array_example_tasks_write_their_keys_with_plain_config() {
    let Some((_server, env, _node)) = slurm::setup() else {
        return;
    };
    let id = launch(
        &env,
        &mut env.cmd("rj-launch"),
        "array-job.sbatch",
        &["--array=1-3"],
    );
    for task in 1..=3 {
        let out_name = format!("job-{id}_{task}.out");
        wait_completed(&env, &format!("{id}_{task}"), &out_name);
    }
    for task in 1..=3 {
        let what = output_of(&env, &format!("job-{id}_{task}.out"));
        let keys = keys_of(&mut env.cmd("rj-last"), &format!("{id}_{task}"));
        let names: Vec<&str> = keys.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(names, ["finished", "host", "result", "started"], "{what}");
        let result = &keys.iter().find(|(k, _, _)| k == "result").unwrap().2;
        assert_eq!(result["task"], task.to_string(), "{what}");
        assert_eq!(result["loss"], (100 / task).to_string(), "{what}");
    }
    let out = env.run("rj-last", &["--job", &id, "--format", "json"]).ok();
    for task in 1..=3 {
        let key = format!("\"{}-{id}_{task}:result\"", env.tag);
        assert!(out.contains(&key), "parent shows task {task}: {out}");
    }
}

/// Without python3 a configured URL cannot be read: the job stops with one line on stderr and
/// writes nothing anywhere (not to 127.0.0.1:6379 or the file's host/port). Run outside Slurm
/// with a PATH that has everything the script needs but python3.
#[test]
fn redis_cli_example_without_python3_refuses_a_url() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    let bin = env.only_tools(
        "bin",
        &[
            "redis-cli",
            "sed",
            "head",
            "grep",
            "dirname",
            "hostname",
            "date",
            "cat",
        ],
    );
    let bash = which::which("bash").unwrap();
    // A flat one-field-per-line file (the sed fallback reads it) with a url on top.
    let text = format!(
        "{{\n  \"host\": \"127.0.0.1\",\n  \"port\": {},\n  \"url\": \"redis://127.0.0.1:{}/4\"\n}}\n",
        server.port, server.port
    );
    std::fs::write(&env.config, text).unwrap();
    for (what, url) in [("redis.json url", None), ("REDIS_URL", Some(server.url()))] {
        if url.is_some() {
            std::fs::write(
                &env.config,
                format!("{{\n  \"port\": {}\n}}\n", server.port),
            )
            .unwrap();
        }
        let mut cmd = env.std_command(&bash);
        cmd.arg(example("job-redis-cli.sbatch"))
            .env("PATH", &bin)
            .env("SLURM_JOB_ID", "77");
        if let Some(u) = &url {
            cmd.env("REDIS_URL", u);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert!(err.contains("python3"), "{what}: {err}");
        assert!(
            check::all_keys(&server).is_empty(),
            "{what}: nothing written"
        );
        assert_eq!(server.cli(&["-n", "4", "DBSIZE"]), "0\n", "{what}");
    }
}
