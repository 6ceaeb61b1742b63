//! Redis as sites really run it, seen through every tool's one connection: a paused server, a
//! read-only replica, an ACL user short of a command, a Sentinel, a Cluster node, a port that
//! is not Redis at all. Each failure is one line that says what the server is or refused.
use std::io::Write;
use std::time::{Duration, Instant};

use crate::util::check::{self, run};
use crate::util::{self, RedisOptions, RedisServer, TestEnv};

/// A `redis.json` for `env` that logs in as `user` with password `pw`.
fn login_as(env: &TestEnv, user: &str, pw: &str) {
    let json = serde_json::json!({
        "host": "127.0.0.1", "port": env.port, "username": user, "password": pw,
    });
    std::fs::write(&env.config, json.to_string()).unwrap();
}

#[test]
fn a_transaction_against_a_paused_server_ends_within_the_timeout() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    // What a failover does for its duration; redis-rs read the rest of the transaction's
    // replies after the first timeout, each with the full 15 s again.
    server.cli(&["CLIENT", "PAUSE", "60000", "WRITE"]);
    let start = Instant::now();
    let out = env.run("rj-launch", &["--record", "41"]);
    let took = start.elapsed();
    server.cli(&["CLIENT", "UNPAUSE"]);
    let line = out.fails(75);
    assert!(line.contains("timed out"), "{line}");
    assert!(
        took < Duration::from_secs(40),
        "blocked {took:?} by a 60 s pause; every call is bounded by 15 s"
    );
}

#[test]
fn a_read_only_replica_is_one_short_line_for_any_number_of_ids() {
    let Some(master) = RedisServer::start() else {
        return;
    };
    let port = master.port.to_string();
    let Some(replica) = RedisServer::with(RedisOptions::args(&["--replicaof", "127.0.0.1", &port]))
    else {
        return;
    };
    let env = TestEnv::new(&replica);
    let ids: String = (1000..2000).map(|i| format!("{i}\n")).collect();
    // The Lua script, then MULTI/EXEC as a user refused EVAL (ACL users are the replica's own).
    replica.cli(&[
        "ACL", "SETUSER", "noeval", "on", ">pw", "~*", "+@all", "-eval",
    ]);
    for noeval in [false, true] {
        let mut cmd = env.cmd("rj-launch");
        if noeval {
            cmd.env(
                "REDIS_URL",
                format!("redis://noeval:pw@127.0.0.1:{}", replica.port),
            );
        }
        let out = run(cmd.args(["--record", "-"]).write_stdin(ids.clone()));
        let line = out.fails(75);
        assert!(
            line.contains("READONLY You can't write against a read only replica"),
            "{line}"
        );
        assert!(
            line.contains(&format!("{}_ALL", env.tag)),
            "names the first key: {line}"
        );
        if noeval {
            assert!(
                line.contains("commands of the transaction refused"),
                "{line}"
            );
        }
        assert!(!line.contains("script:"), "no script SHA or line: {line}");
        assert!(!line.contains("Index"), "no per-command list: {line}");
        assert!(line.len() < 1000, "{} bytes: {line}", line.len());
    }
}

#[test]
fn a_user_without_exec_is_refused_by_name_not_by_a_parser() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    // Refused EVAL too, so that rj-launch records with MULTI/EXEC.
    server.cli(&[
        "ACL", "SETUSER", "noexec", "on", ">pw", "~*", "+@all", "-exec", "-eval",
    ]);
    login_as(&env, "noexec", "pw");
    let out = env.run("rj-launch", &["--record", "42"]);
    let line = out.fails(77);
    assert!(
        line.contains("NOPERM") && line.contains("'exec'"),
        "names the refused command: {line}"
    );
    assert!(!line.contains("UnexpectedReturnType"), "{line}");
}

#[test]
fn a_port_that_is_not_redis_is_named_so() {
    let Some((_server, env)) = util::redis() else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let web = std::thread::spawn(move || {
        // An HTTP server's answer to anything it cannot read.
        if let Ok((mut c, _)) = listener.accept() {
            let _ = c.write_all(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let out = run(env
        .cmd("rj-status")
        .env("REDIS_URL", format!("redis://127.0.0.1:{port}")));
    let line = out.fails(69);
    assert!(line.contains("is not a Redis server"), "{line}");
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    web.join().unwrap();
}

/// A Sentinel named as the server is said to be one; a Cluster node is taken for what it is, and
/// a tag without a hash tag there is a configuration error (tests/cluster.rs has the rest).
#[test]
fn a_sentinel_is_no_server_and_a_cluster_node_needs_a_hash_tag() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let cluster = RedisServer::with(RedisOptions::args(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
    ]))
    .unwrap();
    let env = TestEnv::new(&cluster);
    let line = env.run("rj-status", &[]).fails(78);
    assert!(
        line.contains("is a Redis Cluster") && line.contains("hash tag"),
        "{line}"
    );
    // With one: this lone node serves no slot, which a retry may outlive.
    let tag = format!("{{{}}}", env.tag);
    let line = env.run("rj-status", &["--tag", &tag]).fails(69);
    assert!(line.contains("CLUSTERDOWN"), "{line}");

    // A Sentinel watching the plain server: redis-server --sentinel with its own config.
    let dir = tempfile::tempdir().unwrap();
    let sport = crate::util::free_port();
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {sport}\nbind 127.0.0.1\nsentinel monitor m 127.0.0.1 {} 1\n",
            server.port
        ),
    )
    .unwrap();
    let _sentinel = crate::util::Guard(
        std::process::Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("redis://127.0.0.1:{sport}");
    crate::util::wait_until(Duration::from_secs(10), "the sentinel to answer", || {
        redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    });
    let out = run(env.cmd("rj-status").env("REDIS_URL", &url));
    let line = out.fails(69);
    assert!(
        line.contains("is a Redis Sentinel") && line.contains("master"),
        "{line}"
    );
}

#[test]
fn a_user_without_multi_writes_nothing_outside_a_transaction() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    // Refused EVAL too, so that rj-launch records with MULTI/EXEC.
    server.cli(&[
        "ACL", "SETUSER", "nomulti", "on", ">pw", "~*", "+@all", "-multi", "-eval",
    ]);
    let json = serde_json::json!({
        "host": "127.0.0.1", "port": env.port, "username": "nomulti", "password": "pw",
    });
    std::fs::write(&env.config, json.to_string()).unwrap();
    let out = env.run("rj-launch", &["--record", "43"]);
    let err = crate::util::check::stderr(&out);
    assert!(err.contains("NOPERM") && err.contains("'multi'"), "{err}");
    assert_ne!(out.status.code(), Some(0));
    // Sent behind a refused MULTI, the SADDs and HSET would have run one by one, for real.
    assert_eq!(
        crate::util::check::all_keys(&server),
        Vec::<String>::new(),
        "nothing may be written when the transaction could not start"
    );
}

/// rj-launch records as `user` (password `pw`) of `server`.
fn launch_as_user(env: &TestEnv, server: &RedisServer, user: &str, ids: &[&str]) -> check::Ran {
    run(env
        .cmd("rj-launch")
        .env(
            "REDIS_URL",
            format!("redis://{user}:pw@127.0.0.1:{}", server.port),
        )
        .arg("--record")
        .args(ids))
}

/// Redis does not roll a script back: the recording script asks, before its first write,
/// whether this user may run each write on each key, so a refusal writes nothing and names the
/// command. Key by key: an ACL selector may grant HSET on one job's hash and not another's.
#[test]
fn the_recording_script_checks_every_permission_before_its_first_write() {
    let Some((server, env)) = util::redis() else {
        return;
    };
    for cmd in ["sadd", "hset", "xadd", "smismember", "type"] {
        server.cli(&["FLUSHALL"]);
        let _ = std::fs::remove_file(env.spool());
        let user = format!("no{cmd}");
        let minus = format!("-{cmd}");
        server.cli(&["ACL", "SETUSER", &user, "on", ">pw", "~*", "+@all", &minus]);
        let out = launch_as_user(&env, &server, &user, &["5", "6"]);
        assert_eq!(out.stdout(), "5\n6\n");
        let line = out.fails(77);
        assert!(
            line.contains(&format!("+{cmd}")) && line.contains("NOPERM"),
            "names the command: {line}"
        );
        assert!(!line.contains("script:"), "{line}");
        assert_eq!(
            check::all_keys(&server),
            Vec::<String>::new(),
            "{cmd}: nothing written"
        );
        assert!(env.spool().exists(), "{cmd}: spooled");
    }

    // HSET granted on job 5's hash only, by a selector: job 6's is refused before any write.
    server.cli(&["FLUSHALL"]);
    let five = env.job("5");
    let six = env.job("6");
    let selector = format!("(+hset ~{five})");
    server.cli(&[
        "ACL", "SETUSER", "onehash", "on", ">pw", "~*", "+@all", "-hset", &selector,
    ]);
    let line = launch_as_user(&env, &server, "onehash", &["5", "6"]).fails(77);
    assert!(line.contains(&six) && line.contains("+hset"), "{line}");
    assert_eq!(
        check::all_keys(&server),
        Vec::<String>::new(),
        "nothing written"
    );

    // EXISTS is a shortcut, not a need: without it each job hash's TYPE is read.
    server.cli(&["FLUSHALL"]);
    let _ = std::fs::remove_file(env.spool());
    server.cli(&[
        "ACL", "SETUSER", "noexists", "on", ">pw", "~*", "+@all", "-exists",
    ]);
    server.cli(&["HSET", &five, "note", "kept"]);
    launch_as_user(&env, &server, "noexists", &["5", "6"]).ok();
    assert_eq!(server.hgetall(&five)["note"], "kept");
    assert!(server.hgetall(&six).contains_key("submitted"));
    server.cli(&["RPUSH", &env.job("7"), "x"]);
    let line = launch_as_user(&env, &server, "noexists", &["8", "7"]).fails(65);
    assert!(
        line.contains(&env.job("7")) && line.contains("list"),
        "{line}"
    );
    assert_eq!(
        server.smembers(&env.key("ALL")),
        ["5", "6"],
        "nothing of 7 and 8"
    );
}
