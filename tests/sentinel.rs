//! Redis Sentinel with real processes on loopback: a master, its replica and three sentinels.
//! The tools find the master through "sentinels"/"master" in redis.json and through
//! redis+sentinel:// URLs, ride through a kill -9 of the master (spooled as a temporary failure,
//! then the new master), ask the next sentinel when one is down, and say in one line when no
//! sentinel answers or none knows the master's name. `Store::wait_replicas` against real
//! replicas.
use std::time::Duration;

use crate::util::check::{self, fails, ok, run};
use crate::util::sentinel_support::{SentinelProc, SentinelSetup};
use crate::util::tls::TlsRedis;
use crate::util::{self, free_port, RedisOptions, RedisServer, TestEnv};

/// A TestEnv whose redis.json is `json` (mode 0600).
fn env_with(json: serde_json::Value) -> TestEnv {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("redis.json");
    std::fs::write(&config, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    util::set_mode(&config, 0o600);
    TestEnv {
        dir,
        tag: util::unique_tag("sent"),
        config,
        port: 0,
    }
}

fn members(server: &RedisServer, key: &str) -> Vec<String> {
    server.smembers(key)
}

fn plain(env: &TestEnv, args: &[&str]) -> check::Ran {
    run(env.cmd("rj-status").args(["--format", "plain"]).args(args))
}

/// The whole path: record and read through the sentinels (file and URL form), kill -9 the
/// master, a launch meanwhile is spooled as temporary (75), and once the sentinels promoted
/// the replica every job is on the new master.
#[test]
fn the_tools_follow_the_master_through_a_failover() {
    let Some(mut setup) = SentinelSetup::start("rjmaster", 3) else {
        return;
    };
    let env = env_with(serde_json::json!({
        "sentinels": setup.nodes(),
        "master": setup.name,
    }));
    assert_eq!(
        ok(&run(env.cmd("rj-launch").args(["--record", "1", "2"]))),
        "1\n2\n"
    );
    assert_eq!(members(&setup.master, &env.key("ALL")), ["1", "2"]);
    let out = plain(&env, &["-v", "--state", "ALL"]);
    assert_eq!(ok(&out), "1\n2\n");
    let err = check::stderr(&out);
    assert!(
        err.contains("master rjmaster via sentinels") && err.contains(&setup.nodes()[2]),
        "-v says where the master is looked up: {err}"
    );

    // The URL form, the same server.
    let url = format!(
        "redis+sentinel://{},{}/{}",
        setup.nodes()[0],
        setup.nodes()[1],
        setup.name
    );
    let out = run(env
        .cmd("rj-status")
        .env("REDIS_URL", &url)
        .args(["--count", "--state", "ALL", "--format", "plain"]));
    assert_eq!(ok(&out), "2\n");
    let out = run(env.cmd("rj-launch").args(["--url", &url, "--record", "3"]));
    assert_eq!(ok(&out), "3\n");

    util::wait_until(Duration::from_secs(10), "the replica to have job 3", || {
        members(&setup.replica, &env.key("ALL")) == ["1", "2", "3"]
    });
    setup.master.kill();
    // The sentinels cannot call the master down before down-after-milliseconds (1 s), so they
    // still name the dead one: the ID is printed, spooled, and the failure is temporary.
    let out = run(env.cmd("rj-launch").args(["--record", "4"]));
    assert_eq!(check::stdout(&out), "4\n");
    let line = fails(&out, 75, "rj-launch");
    assert!(line.contains(&setup.master.port.to_string()), "{line}");
    assert!(env.spool().exists(), "spooled");

    setup.wait_for_failover();
    // Asked again, the sentinels name the new master; the spool is replayed there.
    assert_eq!(
        ok(&run(env.cmd("rj-launch").args(["--record", "5"]))),
        "5\n"
    );
    assert_eq!(
        members(&setup.replica, &env.key("ALL")),
        ["1", "2", "3", "4", "5"]
    );
    let out = plain(&env, &["--state", "PENDING_AND_RUNNING"]);
    assert_eq!(ok(&out), "1\n2\n3\n4\n5\n");
    let out = run(env
        .cmd("rj-status")
        .env("REDIS_URL", &url)
        .args(["--count", "--state", "ALL", "--format", "plain"]));
    assert_eq!(ok(&out), "5\n");
}

/// A sentinel that is down, or not a sentinel at all, is skipped for the next; with none
/// answering the tools say so in one line naming every sentinel (69, temporary: rj-launch
/// spools and exits 75); a master name no sentinel knows is a configuration error (78).
#[test]
fn the_next_sentinel_is_asked_and_none_answering_is_one_line() {
    let Some(mut setup) = SentinelSetup::start("rjnext", 3) else {
        return;
    };
    let dead = format!("127.0.0.1:{}", free_port());
    let plain_server = format!("127.0.0.1:{}", setup.replica.port);
    setup.sentinels[0].kill();
    let mut nodes = vec![dead.clone(), plain_server.clone()];
    nodes.extend(setup.nodes());
    let env = env_with(serde_json::json!({"sentinels": nodes, "master": setup.name}));
    assert_eq!(
        ok(&run(env.cmd("rj-launch").args(["--record", "7"]))),
        "7\n"
    );
    assert_eq!(members(&setup.master, &env.key("ALL")), ["7"]);
    assert_eq!(ok(&plain(&env, &["--state", "ALL"])), "7\n");

    // Every sentinel down.
    for s in &mut setup.sentinels {
        s.kill();
    }
    let down = env_with(serde_json::json!({
        "sentinels": [&dead, &setup.nodes()[1]],
        "master": setup.name,
        "sentinel_password": "never-shown-9",
    }));
    let line = fails(&plain(&down, &[]), 69, "rj-status");
    assert!(
        line.contains(&dead) && line.contains(&setup.nodes()[1]),
        "{line}"
    );
    assert!(
        line.contains("sentinel") && line.contains(&setup.name),
        "{line}"
    );
    assert!(!line.contains("never-shown-9"), "{line}");
    let out = run(down.cmd("rj-launch").args(["--record", "8"]));
    assert_eq!(check::stdout(&out), "8\n");
    fails(&out, 75, "rj-launch");

    // Only a plain server where the sentinels should be: permanent, named.
    let wrong = env_with(serde_json::json!({"sentinels": [&plain_server], "master": "m"}));
    let line = fails(&plain(&wrong, &[]), 69, "rj-status");
    assert!(
        line.contains(&plain_server) && line.contains("not a Redis Sentinel"),
        "{line}"
    );
    let out = run(wrong.cmd("rj-launch").args(["--record", "9"]));
    fails(&out, 69, "rj-launch");
}

#[test]
fn a_master_name_no_sentinel_knows_is_a_configuration_error() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let sentinel = SentinelProc::start("known", server.port, 1, "");
    let env = env_with(serde_json::json!({
        "sentinels": [sentinel.addr()],
        "master": "unknown-name",
    }));
    for (bin, args) in [
        ("rj-status", &[][..]),
        ("rj-launch", &["--record", "1"][..]),
    ] {
        let line = fails(&run(env.cmd(bin).args(args)), 78, bin);
        assert!(
            line.contains("\"unknown-name\"") && line.contains(&sentinel.addr()),
            "{line}"
        );
        assert!(line.contains("SENTINEL masters"), "{line}");
    }
    // The URL form, too.
    let url = format!("redis+sentinel://{}/unknown-name", sentinel.addr());
    let line = fails(
        &run(env.cmd("rj-status").env("REDIS_URL", &url)),
        78,
        "rj-status",
    );
    assert!(line.contains("REDIS_URL"), "{line}");
    assert!(check::all_keys(&server).is_empty());
}

/// A sentinel's answer can name a server that is a replica (a failover under way): rj checks
/// ROLE and fails temporarily instead of writing to it. Here a sentinel watches a replica as
/// if it were the master, with a down-after so long that it never acts on it.
#[test]
fn a_replica_named_as_master_is_a_temporary_failure() {
    let Some(master) = RedisServer::start() else {
        return;
    };
    let replica = RedisServer::with(RedisOptions::args(&[
        "--replicaof",
        "127.0.0.1",
        &master.port.to_string(),
    ]))
    .unwrap();
    let sentinel = SentinelProc::start(
        "stale",
        replica.port,
        1,
        "sentinel down-after-milliseconds stale 600000",
    );
    let env = env_with(serde_json::json!({"sentinels": [sentinel.addr()], "master": "stale"}));
    let line = fails(&plain(&env, &[]), 69, "rj-status");
    assert!(
        line.contains(&format!("127.0.0.1:{}", replica.port))
            && line.contains("replica")
            && line.contains("failover"),
        "{line}"
    );
    let out = run(env.cmd("rj-launch").args(["--record", "11"]));
    assert_eq!(check::stdout(&out), "11\n");
    fails(&out, 75, "rj-launch");
    assert!(check::all_keys(&master).is_empty(), "nothing written");
}

/// Sentinels with a password of their own (`requirepass` on the sentinel) and a master with
/// another: "sentinel_password" logs in to the sentinels, "password" to the master; neither
/// is ever in a message.
#[test]
fn sentinel_and_master_passwords_are_separate() {
    let Some(master) = RedisServer::with(RedisOptions {
        password: Some("master-pw-5".into()),
        ..RedisOptions::default()
    }) else {
        return;
    };
    let sentinel = SentinelProc::start(
        "guarded",
        master.port,
        1,
        "requirepass sentinel-pw-6\nsentinel auth-pass guarded master-pw-5",
    );
    let good = env_with(serde_json::json!({
        "sentinels": [sentinel.addr()],
        "master": "guarded",
        "password": "master-pw-5",
        "sentinel_password": "sentinel-pw-6",
    }));
    assert_eq!(
        ok(&run(good.cmd("rj-launch").args(["--record", "21"]))),
        "21\n"
    );
    assert_eq!(master.smembers(&good.key("ALL")), ["21"]);
    // The URL form with the master's password in it keeps the file's sentinel password.
    let out = run(good
        .cmd("rj-status")
        .env(
            "REDIS_URL",
            format!("redis+sentinel://:master-pw-5@{}/guarded", sentinel.addr()),
        )
        .args(["--count", "--state", "ALL", "--format", "plain"]));
    assert_eq!(ok(&out), "1\n");

    for (json, code) in [
        // No sentinel password: the sentinel refuses (NOAUTH), 77.
        (
            serde_json::json!({"sentinels": [sentinel.addr()], "master": "guarded",
                               "password": "master-pw-5"}),
            77,
        ),
        // The master's password given to the sentinel: refused too.
        (
            serde_json::json!({"sentinels": [sentinel.addr()], "master": "guarded",
                               "password": "master-pw-5", "sentinel_password": "master-pw-5"}),
            77,
        ),
        // The right sentinel password, no master password: the master refuses, 77.
        (
            serde_json::json!({"sentinels": [sentinel.addr()], "master": "guarded",
                               "sentinel_password": "sentinel-pw-6"}),
            77,
        ),
    ] {
        let env = env_with(json);
        let line = fails(&plain(&env, &[]), code, "rj-status");
        assert!(
            !line.contains("master-pw-5") && !line.contains("sentinel-pw-6"),
            "{line}"
        );
        assert!(line.contains(&sentinel.addr()), "{line}");
    }
}

/// A master and one replica in sync with it.
fn master_with_replica() -> Option<(RedisServer, RedisServer)> {
    let master = RedisServer::start()?;
    let replica = RedisServer::with(RedisOptions::args(&[
        "--replicaof",
        "127.0.0.1",
        &master.port.to_string(),
    ]))
    .unwrap();
    util::wait_until(Duration::from_secs(30), "the replica to sync", || {
        replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
    });
    Some((master, replica))
}

/// `Store::wait_replicas`: nothing sent without "min_replicas_acked"; with it, WAIT for that
/// many replicas, and fewer in time a temporary failure naming the setting.
#[test]
fn wait_replicas_counts_real_replicas() {
    let Some((master, replica)) = master_with_replica() else {
        return;
    };
    let store = |extra: serde_json::Value| {
        let mut json = serde_json::json!({"host": "127.0.0.1", "port": master.port});
        json.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let env = env_with(json);
        let cfg = rj::config::load(
            &rj::config::Request {
                config: Some(env.config.clone()),
                url: None,
            },
            &std::collections::HashMap::<&str, &str>::new(),
        )
        .unwrap();
        (env, rj::store::Store::connect(&cfg).unwrap())
    };
    master.cli(&["CONFIG", "RESETSTAT"]);
    let (_e, mut off) = store(serde_json::json!({}));
    off.wait_replicas().unwrap();
    assert_eq!(
        check::calls(&master, "wait"),
        0,
        "no WAIT without the setting"
    );

    let (_e, mut one) = store(serde_json::json!({"min_replicas_acked": 1}));
    one.query::<()>(redis::cmd("SET").arg("k").arg("v"), "k")
        .unwrap();
    one.wait_replicas().unwrap();
    assert_eq!(check::calls(&master, "wait"), 1);

    let (_e, mut two) = store(serde_json::json!({
        "min_replicas_acked": 2,
        "min_replicas_timeout_ms": 200,
    }));
    two.query::<()>(redis::cmd("SET").arg("k").arg("w"), "k")
        .unwrap();
    let e = two.wait_replicas().unwrap_err();
    assert!(rj::exit::is_transient(&e), "{e:#}");
    assert_eq!(rj::exit::code_for(&e), 69);
    let msg = format!("{e:#}");
    assert!(
        msg.contains("1 of the 2") && msg.contains("min_replicas_acked") && msg.contains("200 ms"),
        "{msg}"
    );

    // The replica gone: one replica asked for, none acknowledges.
    drop(replica);
    one.query::<()>(redis::cmd("SET").arg("k").arg("x"), "k")
        .unwrap();
    let e = one.wait_replicas().unwrap_err();
    assert!(rj::exit::is_transient(&e), "{e:#}");
    assert!(format!("{e:#}").contains("0 of the 1"), "{e:#}");
}

/// rj-launch waits for the replicas "min_replicas_acked" asks for after its transaction: with
/// a replica it reports the job recorded (0); with none it spools the job and exits 75, and
/// the spool's replay, idempotent, leaves the job recorded once.
#[test]
fn rj_launch_spools_what_the_replicas_did_not_acknowledge() {
    let Some((master, replica)) = master_with_replica() else {
        return;
    };
    let mut env = env_with(serde_json::json!({
        "host": "127.0.0.1",
        "port": master.port,
        "min_replicas_acked": 1,
        "min_replicas_timeout_ms": 300,
    }));
    env.port = master.port;
    ok(&run(env.cmd("rj-launch").args(["--record", "41"])));
    assert_eq!(members(&master, &env.key("ALL")), ["41"]);
    assert!(!env.spool().exists() || std::fs::read_to_string(env.spool()).unwrap().is_empty());

    drop(replica);
    let out = run(env.cmd("rj-launch").args(["--record", "42"]));
    fails(&out, 75, "rj-launch");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("min_replicas_acked") && err.contains("42"),
        "{err}"
    );
    let spooled = std::fs::read_to_string(env.spool()).unwrap();
    assert!(spooled.contains("42"), "{spooled}");
    // The write reached the master, which alone cannot promise it survives a failover.
    assert_eq!(members(&master, &env.key("ALL")), ["41", "42"]);
}

/// rj-track as a daemon on the real Slurm testbed, through the sentinels: the master is killed
/// (-9) while a job runs; rj-track reconnects with backoff, asks the sentinels again, and moves
/// the job on the promoted replica, with every job in exactly one set.
#[test]
fn rj_track_rides_through_a_failover() {
    let _node = crate::util::slurm::shared();
    if !crate::util::slurm::available() {
        return;
    }
    let Some(mut setup) = SentinelSetup::start("rjtrack", 3) else {
        return;
    };
    let env = env_with(serde_json::json!({"sentinels": setup.nodes(), "master": setup.name}));
    let launch = |wrap: &str| {
        ok(&run(env.cmd("rj-launch").args([
            "--",
            "-o",
            "/dev/null",
            "--wrap",
            wrap,
        ])))
        .trim()
        .to_string()
    };
    let first = launch("exit 0");
    let err_path = env.path().join("track.err");
    let _track = util::Guard(
        env.std_command(util::bin_path("rj-track"))
            .args(["--interval", "1s", "-v"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .expect("spawn rj-track"),
    );
    let in_set = |server: &RedisServer, set: &str, id: &str| {
        members(server, &env.key(set)).iter().any(|m| m == id)
    };
    util::wait_until(Duration::from_secs(60), "the first move", || {
        in_set(&setup.master, "COMPLETED", &first)
    });
    let second = launch("sleep 4; exit 3");
    util::wait_until(Duration::from_secs(10), "the replica to have it", || {
        in_set(&setup.replica, "PENDING_AND_RUNNING", &second)
    });
    setup.master.kill();
    setup.wait_for_failover();
    util::wait_until(
        Duration::from_secs(90),
        "the move on the new master",
        || in_set(&setup.replica, "FAILED", &second),
    );
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert!(
        err.contains("reconnected to Redis") && err.contains("retrying in"),
        "{err}"
    );
    let all = members(&setup.replica, &env.key("ALL"));
    assert_eq!(all.len(), 2);
    for id in &all {
        let sets = [
            "PENDING_AND_RUNNING",
            "COMPLETED",
            "FAILED",
            "TIMEOUT",
            "CANCELLED",
        ]
        .iter()
        .filter(|s| in_set(&setup.replica, s, id))
        .count();
        assert_eq!(sets, 1, "job {id} in {sets} sets");
    }
}

/// TLS all the way: a TLS-only master and a TLS-only sentinel (`tls-replication yes`, so it
/// reaches the master over TLS too). rj speaks TLS to the sentinel and to the master it names,
/// with the same "tls_ca", and records and reads back through it.
#[test]
fn tls_sentinels_lead_to_a_tls_master() {
    let Some(master) = TlsRedis::start(false) else {
        return;
    };
    let c = master.certs().display();
    let sentinel = SentinelProc::start(
        "rjtls",
        master.port,
        1,
        &format!(
            "port 0\ntls-port {{port}}\ntls-cert-file {c}/srv.pem\ntls-key-file {c}/srv.key\n\
             tls-ca-cert-file {c}/ca.pem\ntls-auth-clients no\ntls-replication yes"
        ),
    );
    let env = env_with(serde_json::json!({
        "sentinels": [sentinel.addr()],
        "master": "rjtls",
        "tls": true,
        "tls_ca": "ca.pem",
    }));
    std::fs::copy(master.certs().join("ca.pem"), env.path().join("ca.pem")).unwrap();
    // The sentinel learns of the master over TLS before it can name it.
    util::wait_until(
        Duration::from_secs(20),
        "the sentinel to see the master",
        || {
            let out = env.run("rj-status", &["--count", "--format", "plain"]);
            out.status.success()
        },
    );
    assert_eq!(
        env.run("rj-launch", &["--record", "61", "62"]).ok(),
        "61\n62\n"
    );
    assert_eq!(plain(&env, &["--count", "--state", "ALL"]).ok(), "2\n");
    assert_eq!(
        plain(&env, &["--state", "PENDING_AND_RUNNING"]).ok(),
        "61\n62\n"
    );

    // Without TLS the sentinel's port does not answer in plain RESP: one line, no retry loop.
    let plain_env = env_with(serde_json::json!({
        "sentinels": [sentinel.addr()],
        "master": "rjtls",
    }));
    let out = plain_env.run("rj-status", &["--count"]);
    assert!(!out.status.success(), "{}", out.line);
    let err = out.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&sentinel.addr()), "{err}");
}

/// rbench dials the server itself: with sentinels it benchmarks the master they name (said on
/// stderr and in the JSON's server), natively and through redis-benchmark, never the
/// redis.json's default address.
#[test]
fn rbench_benchmarks_the_master_the_sentinels_name() {
    let Some(setup) = SentinelSetup::start("rbmaster", 1) else {
        return;
    };
    let env = env_with(serde_json::json!({
        "sentinels": setup.nodes(),
        "master": setup.name,
    }));
    let at = format!("127.0.0.1:{}", setup.master.port);
    for mode in ["run", "wrap"] {
        let out = run(env.cmd("rbench").args([
            mode, "-t", "set", "-n", "2000", "-c", "2", "--format", "json",
        ]));
        let doc: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
        let server = doc["config"]["server"].as_str().unwrap_or_default();
        assert!(server.contains(&at), "{mode}: {server}");
        let err = check::stderr(&out);
        assert!(
            err.contains(&format!("master \"rbmaster\" is {at} (by sentinel")),
            "{mode}: {err}"
        );
    }
    let keys: u64 = setup.master.cli(&["DBSIZE"]).trim().parse().unwrap();
    assert!(keys > 0, "the master got the writes");
}
