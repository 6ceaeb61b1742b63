//! Cross-compatibility with the original shell scripts (ARCHITECTURE.md §2): what plain redis-cli wrote, rj
//! reads; what rj writes, redis-cli sees under the same names.
use crate::util::check::{self, all_keys, run};
use crate::util::{self, RedisOptions, RedisServer, TestEnv};

/// The original scripts' life cycle of one tag, through redis-cli only.
fn original_scripts(server: &RedisServer, env: &TestEnv) {
    let t = &env.tag;
    let all = env.key("ALL");
    let pending = env.key("PENDING_AND_RUNNING");
    // launch.sh: one SADD each, per job.
    for id in ["4238610", "4238611", "4238612", "4238613", "4238614"] {
        server.cli(&["SADD", &all, id]);
        server.cli(&["SADD", &pending, id]);
    }
    // the tracker: SMOVE to the final set.
    server.cli(&["SMOVE", &pending, &env.key("COMPLETED"), "4238610"]);
    server.cli(&["SMOVE", &pending, &env.key("FAILED"), "4238611"]);
    server.cli(&["SMOVE", &pending, &env.key("TIMEOUT"), "4238612"]);
    server.cli(&["SMOVE", &pending, &env.key("CANCELLED"), "4238613"]);
    // the jobs: T-$SLURM_JOB_ID:<uuid>.
    server.cli(&[
        "SET",
        &format!("{t}-4238614:bd291298-f442-11ea-ab10-0cc47af587f7"),
        "{\"energy\": -1.5}",
    ]);
    server.cli(&["SET", &format!("{t}-4238610:result"), "done"]);
}

#[test]
fn rj_reads_what_the_original_scripts_wrote() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    original_scripts(&server, &env);
    let v = env.run("rj-status", &["--format", "json"]).json();
    let ids: Vec<(String, Vec<String>)> = v["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["key"].as_str().unwrap().to_string(),
                serde_json::from_value(s["ids"].clone()).unwrap(),
            )
        })
        .collect();
    let s = |suffix: &str, ids: &[&str]| {
        (
            env.key(suffix),
            ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        ids,
        [
            s(
                "ALL",
                &["4238610", "4238611", "4238612", "4238613", "4238614"]
            ),
            s("PENDING_AND_RUNNING", &["4238614"]),
            s("COMPLETED", &["4238610"]),
            s("FAILED", &["4238611"]),
            s("TIMEOUT", &["4238612"]),
            s("CANCELLED", &["4238613"]),
        ]
    );
    let out = env.run("rj-last", &[]).ok();
    assert_eq!(
        out,
        format!(
            "Key:  {}-4238614:bd291298-f442-11ea-ab10-0cc47af587f7\nValue: {{\"energy\": -1.5}}\n---\n",
            env.tag
        )
    );
    env.run("rj-cleanup", &["--keys", "--yes"]).ok();
    assert!(all_keys(&server).is_empty());
}

#[test]
fn redis_cli_sees_what_rj_writes() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    original_scripts(&server, &env);
    // rj records a job next to the scripts' jobs; the scripts' view is plain SMEMBERS.
    env.run("rj-launch", &["--record", "4238615"]).ok();
    let members = |key: &str| -> Vec<String> {
        let mut v: Vec<String> = server
            .cli(&["SMEMBERS", key])
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        members(&env.key("ALL")),
        ["4238610", "4238611", "4238612", "4238613", "4238614", "4238615"]
    );
    assert_eq!(
        members(&env.key("PENDING_AND_RUNNING")),
        ["4238614", "4238615"]
    );
    // The original tracker's SMOVE works on rj's record.
    server.cli(&[
        "SMOVE",
        &env.key("PENDING_AND_RUNNING"),
        &env.key("COMPLETED"),
        "4238615",
    ]);
    assert_eq!(members(&env.key("COMPLETED")), ["4238610", "4238615"]);
    // Besides the six sets, rj added only its job hash and the event stream, of names no
    // script pattern matches.
    let t = &env.tag;
    let mut want = vec![
        env.key("ALL"),
        env.key("CANCELLED"),
        env.key("COMPLETED"),
        env.key("EVENTS"),
        env.key("FAILED"),
        env.key("JOB:4238615"),
        env.key("PENDING_AND_RUNNING"),
        env.key("TIMEOUT"),
        format!("{t}-4238610:result"),
        format!("{t}-4238614:bd291298-f442-11ea-ab10-0cc47af587f7"),
    ];
    want.sort();
    assert_eq!(all_keys(&server), want);
    assert_eq!(
        server.cli(&["TYPE", &env.key("JOB:4238615")]).trim(),
        "hash"
    );
    assert!(server
        .cli(&["KEYS", &format!("{t}-*:*")])
        .lines()
        .all(|k| !k.contains("JOB") && !k.contains("EVENTS")));
    // The original cleanup: DEL of the six sets leaves rj nothing to trip over.
    for set in util::SETS {
        server.cli(&["DEL", &env.key(set)]);
    }
    let out = env.run("rj-last", &[]);
    out.code(1);
    let out = env.run("rj-status", &["--count", "--format", "plain"]).ok();
    assert_eq!(out, "0\n0\n0\n0\n0\n0\n");
}

/// On a terminal rj-cleanup asks; "y" deletes the job data, anything else deletes nothing.
#[test]
fn cleanup_asks_on_a_terminal() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    if which::which("script").is_err() {
        crate::util::missing("script (util-linux), to give rj-cleanup a terminal");
        return;
    }
    let env = TestEnv::new(&server);
    original_scripts(&server, &env);
    let before = all_keys(&server);
    let in_pty = |answer: &str| {
        let line = format!("{} --keys", crate::util::bin_path("rj-cleanup").display());
        run(check::program(&env, "script")
            .args(["-qec", &line, "/dev/null"])
            .write_stdin(format!("{answer}\n")))
    };
    let out = in_pty("n");
    assert!(
        check::stdout(&out).contains("? [y/N]"),
        "{}",
        check::stdout(&out)
    );
    assert_eq!(all_keys(&server), before, "answer n deletes nothing");
    let out = in_pty("y");
    check::code(&out, 0);
    assert!(all_keys(&server).is_empty(), "{}", check::stdout(&out));
}

/// A Redis older than 6.2 (6.0.16, Debian 11's, from `scripts/redis-old`) has no SMISMEMBER:
/// every tool refuses it at connect by its version, one line, exit 69, with nothing written
/// (rj-launch spools the IDs it was given and says a retry will not help); a user refused INFO
/// gets the server's refusal of SMISMEMBER with what it means; rbench still benchmarks it.
#[test]
fn a_redis_older_than_6_2_is_refused_by_its_version_before_any_write() {
    let Some(old) = std::env::var_os("RJ_REDIS_OLD") else {
        util::missing(
            "RJ_REDIS_OLD (eval \"$(scripts/redis-old env)\" after scripts/redis-old install)",
        );
        return;
    };
    let Some(server) = RedisServer::with(RedisOptions {
        program: Some(old.into()),
        ..RedisOptions::default()
    }) else {
        return;
    };
    let mut conn = server.client();
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn).unwrap();
    assert!(info.contains("redis_version:6.0."), "{info}");

    let env = TestEnv::new(&server);
    let refused = |line: &str| {
        assert!(
            line.contains("is version 6.0.") && line.contains("rj needs Redis 6.2 or later"),
            "{line}"
        );
        assert_eq!(line.lines().count(), 1, "{line}");
    };
    let out = env.run("rj-launch", &["--record", "7"]);
    assert_eq!(out.stdout(), "7\n");
    let line = out.fails(69);
    refused(&line);
    assert!(line.contains("a retry cannot fix this"), "{line}");
    assert!(env.spool().exists(), "the ID is kept");
    refused(&env.run("rj-status", &[]).fails(69));
    refused(&env.run("rj-last", &[]).fails(69));
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(dbsize, 0, "nothing written");
    // A user refused INFO cannot be told by the version: the server's refusal of SMISMEMBER
    // says what it means.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "noinfo", "on", ">pw", "~*", "+@all", "-info"])
        .query(&mut conn)
        .unwrap();
    let port = server.port;
    let noinfo = crate::util::tls::env_for(
        port,
        &format!(
            r#"{{"host": "127.0.0.1", "port": {port}, "username": "noinfo", "password": "pw"}}"#
        ),
    );
    util::set_mode(&noinfo.config, 0o600);
    for set in ["ALL", "PENDING_AND_RUNNING"] {
        let _: () = redis::cmd("SADD")
            .arg(noinfo.key(set))
            .arg(7)
            .query(&mut conn)
            .unwrap();
    }
    let line = noinfo.run("rj-wait", &["--timeout", "2s", "7"]).fails(69);
    assert!(
        line.contains("unknown command") && line.contains("SMISMEMBER came with Redis 6.2"),
        "{line}"
    );

    let doc = env
        .run(
            "rbench",
            &[
                "run", "-t", "set", "-n", "200", "-c", "2", "--format", "json",
            ],
        )
        .json();
    assert_eq!(doc["results"]["tests"]["SET"]["successes"], 200, "{doc}");
}
