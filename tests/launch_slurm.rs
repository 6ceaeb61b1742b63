//! rj-launch (ARCHITECTURE.md §4) with real sbatch on the Slurm testbed: jobs submitted,
//! recorded and run, the job's environment, sbatch's own failures and output. These are the
//! rj-launch tests that scripts/test runs again on every Slurm testbed (slurmdbd, 24.11); the
//! ones that need only Redis stay in tests/launch.rs and run once.
use std::process::Stdio;
use std::time::Duration;

use crate::launch::{printed_id, JOB_DONE, JOB_SCRIPT};
use crate::util::check::{self, all_keys, run};
use crate::util::{self, slurm, RedisOptions};

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
