//! rj on a real Redis Cluster (ARCHITECTURE.md §3): three masters with a replica each on
//! loopback, the tools named the one node that does not own the tag's slot, a slot half-way
//! through a resharding (ASK), a cluster that speaks TLS, a tag without a hash tag refused, and
//! rj-track with rj-wait following real Slurm jobs while the tag's slot moves and its master
//! fails over.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::check::{run, TOOLS};
use crate::util::redis_cluster::{key_slot, rbench_walk, RedisCluster};
use crate::util::sentinel_support::SentinelProc;
use crate::util::tracker::Tracker;
use crate::util::wait_support::{self, Waiting};
use crate::util::{self, slurm, RedisServer, TestEnv};

/// A `{…}` tag of its own, and a TestEnv whose redis.json names a master that does not own the
/// tag's slot; the slot.
fn tagged_env(c: &RedisCluster, prefix: &str) -> (TestEnv, u16) {
    let tag = format!("{{{}}}", util::unique_tag(prefix));
    let slot = key_slot(&tag);
    let owner = c.owner(slot);
    let seed = c.masters().into_iter().find(|&p| p != owner).unwrap();
    let mut env = TestEnv::new(c.node(seed));
    env.tag = tag;
    (env, slot)
}

/// The master that serves `slot` now.
fn owner(c: &RedisCluster, slot: u16) -> &RedisServer {
    c.node(c.owner(slot))
}

/// Every key of the tag, wherever it is in the cluster (KEYS on each master: private servers).
fn tag_keys(c: &RedisCluster, env: &TestEnv) -> Vec<String> {
    let mut all: Vec<String> = c
        .masters()
        .into_iter()
        .flat_map(|p| {
            redis::cmd("KEYS")
                .arg(format!("{}*", env.tag))
                .query::<Vec<String>>(&mut c.node(p).client())
                .unwrap()
        })
        .collect();
    all.sort();
    all
}

/// Each ID of T_ALL in exactly one of the five other sets; the sets by name.
fn assert_invariant(server: &RedisServer, env: &TestEnv) -> BTreeMap<String, Vec<String>> {
    let sets: BTreeMap<String, Vec<String>> = util::SETS
        .iter()
        .map(|s| (s.to_string(), server.smembers(&env.key(s))))
        .collect();
    for id in &sets["ALL"] {
        let n = util::SETS[1..]
            .iter()
            .filter(|s| sets[**s].contains(id))
            .count();
        assert_eq!(n, 1, "job {id} is in {n} of the five sets: {sets:?}");
    }
    for s in &util::SETS[1..] {
        for id in &sets[*s] {
            assert!(sets["ALL"].contains(id), "{id} of {s} is not in T_ALL");
        }
    }
    sets
}

#[test]
fn rj_keys_hash_as_the_server_does() {
    let Some(c) = RedisCluster::start(3, 0) else {
        return;
    };
    let n = &c.nodes[0];
    let keys = rj::keys::Keys::new(rj::keys::Tag::new("{exp}.v2").unwrap());
    for key in [
        keys.set(rj::keys::Set::All),
        keys.events(),
        keys.data_key("4238610_7", "bd29"),
        "plain_ALL".to_string(),
        "foo{}{bar}".to_string(),
    ] {
        let server: u16 = n.cli(&["CLUSTER", "KEYSLOT", &key]).trim().parse().unwrap();
        assert_eq!(rj::keys::key_slot(key.as_bytes()), server, "{key}");
    }
}

/// On a plain server a hash-tagged tag is a tag like any other: its keys are named with it.
#[test]
fn a_hash_tagged_tag_is_a_plain_tag_on_a_plain_server() {
    let Some((server, mut env)) = util::redis() else {
        return;
    };
    env.tag = format!("{{{}}}.v2", util::unique_tag("p"));
    env.run("rj-launch", &["--record", "5"]).ok();
    run(env
        .cmd("rj-put")
        .env("SLURM_JOB_ID", "5")
        .args(["loss", "1"]))
    .ok();
    assert_eq!(server.smembers(&env.key("PENDING_AND_RUNNING")), ["5"]);
    let last = env.run("rj-last", &[]).ok();
    assert!(last.contains(&format!("{}-5:loss", env.tag)), "{last}");
    env.run("rj-status", &["--check"]).ok();
}

/// rj-launch --record, rj-put, rj-wait, rj-status (--check, --long, openmetrics --all-tags),
/// rj-last and rj-cleanup on a `{tag}`, all through a node that does not own its slot; then the
/// same half-way through a resharding of the slot, where the owner answers ASK for the keys
/// already moved and a transaction is refused (rj-launch spools, exit 75, and the next one
/// replays it).
#[test]
fn every_tool_works_on_a_hash_tagged_tag_through_any_node() {
    let Some(c) = RedisCluster::start(3, 1) else {
        return;
    };
    let (env, slot) = tagged_env(&c, "cl");
    let home = owner(&c, slot);
    let seed = c.node(env.port);
    assert_ne!(home.port, seed.port);

    let out = env
        .run("rj-launch", &["--record", "101", "102", "103"])
        .ok();
    assert_eq!(out, "101\n102\n103\n");
    assert_eq!(home.smembers(&env.key("ALL")), ["101", "102", "103"]);
    assert_eq!(
        seed.cli(&["DBSIZE"]).trim(),
        "0",
        "nothing on the node named"
    );
    let put = |job: &str, args: &[&str]| {
        run(env.cmd("rj-put").env("SLURM_JOB_ID", job).args(args)).ok();
    };
    put("101", &["loss", "0.25"]);
    put("101", &["--hash", "stats", "steps=100"]);
    put("103", &["--push", "curve", "1", "2"]);

    let v = env.run("rj-status", &["--format", "json"]).json();
    let count = |set: &str| {
        v["sets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["set"] == set)
            .unwrap()["count"]
            .clone()
    };
    assert_eq!(count("ALL"), 3, "{v}");
    assert_eq!(count("PENDING_AND_RUNNING"), 3, "{v}");

    // rj-wait blocks on the owner's stream; two moves as rj-track makes them end it.
    let waiting = Waiting::start(home, &env, &["101", "102"]);
    wait_support::moves(
        home,
        &env,
        &[wait_support::completed("101"), wait_support::failed("102")],
        None,
    );
    let ended = waiting.end(Duration::from_secs(20));
    assert_eq!(ended.code(), Some(3), "{}", ended.stderr);
    assert_eq!(ended.stdout.lines().count(), 2, "{}", ended.stdout);
    env.run("rj-status", &["--check"]).ok();
    let long = env
        .run(
            "rj-status",
            &["--long", "--format", "csv", "--state", "FAILED"],
        )
        .ok();
    assert!(long.contains("102,FAILED,FAILED"), "{long}");

    // rj-last: the last job (103) and a named one, their keys found by SCAN on every master.
    let last = env.run("rj-last", &[]).ok();
    assert!(last.contains(&format!("{}-103:curve", env.tag)), "{last}");
    let one = env
        .run("rj-last", &["--job", "101", "--format", "json"])
        .json();
    let names: Vec<&str> = one["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    let (loss, stats) = (
        format!("{}-101:loss", env.tag),
        format!("{}-101:stats", env.tag),
    );
    assert_eq!(names, [loss.as_str(), stats.as_str()], "{one}");
    assert_eq!(one["keys"][0]["value"], "0.25");

    // Half-way through a resharding: the job's data keys already on the new master, the sets
    // still on the old one, which answers ASK for what it no longer has.
    let to = c.masters().into_iter().find(|&p| p != home.port).unwrap();
    let from = c.start_move(slot, to);
    c.migrate(from, to, &[&loss, &stats]);
    let one = env
        .run("rj-last", &["--job", "101", "--format", "json"])
        .json();
    assert_eq!(one["keys"][0]["value"], "0.25", "read by ASK: {one}");
    assert_eq!(one["keys"][1]["value"]["steps"], "100", "{one}");
    put("101", &["acc", "0.9"]);
    let (_, acc): ((), String) = redis::pipe()
        .cmd("ASKING")
        .cmd("GET")
        .arg(format!("{}-101:acc", env.tag))
        .query(&mut c.node(to).client())
        .unwrap();
    assert_eq!(
        acc, "0.9",
        "a new key of a migrating slot is on the importing master"
    );
    // Each set alone is read by ASK where it is missing; the check's one transaction over all
    // six (some missing) is what Redis refuses while the slot moves: TRYAGAIN, a retry fixes it.
    let v = env.run("rj-status", &["--format", "json"]).json();
    assert_eq!(
        v["sets"][0]["ids"],
        serde_json::json!(["101", "102", "103"])
    );
    let line = env.run("rj-status", &["--check"]).fails(69);
    assert!(line.contains("TRYAGAIN"), "{line}");
    // A recording with a key the old master no longer has is refused whole: spooled, 75. The
    // recording script is refused with TRYAGAIN (its keys are split by the move), a MULTI/EXEC
    // with ASK: either says the slot is moving.
    let out = env.run("rj-launch", &["--record", "104"]);
    assert_eq!(out.stdout(), "104\n");
    let line = out.fails(75);
    assert!(line.contains("ASK") || line.contains("TRYAGAIN"), "{line}");
    assert!(env.spool().exists());
    c.finish_move(slot, from, to);
    assert_eq!(c.owner(slot), to);

    // After the move: the spool drains into the new master with the next rj-launch.
    env.run("rj-launch", &["--record", "105"]).ok();
    let home = owner(&c, slot);
    assert_eq!(
        home.smembers(&env.key("ALL")),
        ["101", "102", "103", "104", "105"]
    );
    let sets = assert_invariant(home, &env);
    assert_eq!(sets["PENDING_AND_RUNNING"], ["103", "104", "105"]);
    env.run("rj-status", &["--check"]).ok();
    // --repair's WATCH and MULTI/EXEC reach the slot's master too.
    home.cli(&["SADD", &env.key("COMPLETED"), "105"]);
    env.run("rj-status", &["--check"]).fails(65);
    env.run("rj-status", &["--check", "--repair"]).ok();
    assert_eq!(
        home.smembers(&env.key("PENDING_AND_RUNNING")),
        ["103", "104"]
    );

    // --all-tags finds the tags of every master; one without a hash tag is skipped, said once.
    let (env2, slot2) = (0..50)
        .map(|_| tagged_env(&c, "cl2"))
        .find(|(_, s)| c.owner(*s) != c.owner(slot))
        .unwrap();
    env2.run("rj-launch", &["--record", "7"]).ok();
    let plain = util::unique_tag("plain");
    owner(&c, key_slot(&format!("{plain}_ALL"))).cli(&["SADD", &format!("{plain}_ALL"), "1"]);
    let out = env.run("rj-status", &["--format", "openmetrics", "--all-tags"]);
    let text = out.ok();
    for (tag, n) in [(&env.tag, 5), (&env2.tag, 1)] {
        let line = format!("rj_jobs{{tag=\"{tag}\",set=\"ALL\"}} {n}");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    assert!(!text.contains(&plain), "{text}");
    let err = out.stderr();
    assert!(
        err.contains(&format!("skipping tag {plain}")) && err.contains(&format!("{{{plain}}}")),
        "{err}"
    );

    // rj-cleanup finds the data keys on every master and deletes everything of the tag.
    let dry = env
        .run("rj-cleanup", &["--keys", "--records", "--dry-run"])
        .ok();
    for k in [&loss, &stats, &format!("{}-103:curve", env.tag)] {
        assert!(dry.lines().any(|l| l == k), "{k} in\n{dry}");
    }
    env.run("rj-cleanup", &["--keys", "--records", "--yes"])
        .ok();
    assert_eq!(tag_keys(&c, &env), Vec::<String>::new());
    assert_eq!(owner(&c, slot2).smembers(&env2.key("ALL")), ["7"]);
}

/// A cluster that speaks TLS only to rj (`tls-cluster yes`; the plain ports are the test's):
/// named one node's TLS port, every tool finds the tag's master by CLUSTER SLOTS, which gives
/// a TLS client the other nodes' TLS ports, and opens each connection to them with the same
/// CA. A plain connection to a TLS port, or TLS to a plain one, would fail the tool.
#[test]
fn every_tool_reaches_a_tls_cluster_by_its_tls_ports() {
    use crate::util::tls::{env_for, TlsRedis};
    let Some(certs) = TlsRedis::certs_only() else {
        return;
    };
    let Some((c, tls)) = RedisCluster::start_tls(3, certs.path()) else {
        return;
    };
    let tag = format!("{{{}}}", util::unique_tag("cltls"));
    let slot = key_slot(&tag);
    let home = owner(&c, slot);
    let seed = c.masters().into_iter().find(|&p| p != home.port).unwrap();
    let port = tls[&seed];
    let ca = certs.path().join("ca.pem");
    let mut env = env_for(
        port,
        &format!(
            r#"{{"host": "127.0.0.1", "port": {port}, "tls": true, "tls_ca": "{}"}}"#,
            ca.display()
        ),
    );
    env.tag = tag;
    // The seed's TLS port refuses plain clients: the tools must speak TLS to reach it.
    let plain = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "PING"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("PONG"),
        "{plain:?}"
    );

    let out = env.run("rj-launch", &["--record", "101", "102"]).ok();
    assert_eq!(out, "101\n102\n");
    assert_eq!(home.smembers(&env.key("ALL")), ["101", "102"]);
    assert_eq!(c.node(seed).cli(&["DBSIZE"]).trim(), "0");
    run(env
        .cmd("rj-put")
        .env("SLURM_JOB_ID", "101")
        .args(["loss", "0.25"]))
    .ok();
    let one = env
        .run("rj-last", &["--job", "101", "--format", "json"])
        .json();
    assert_eq!(one["keys"][0]["value"], "0.25", "{one}");

    let waiting = Waiting::start(home, &env, &["101", "102"]);
    wait_support::moves(
        home,
        &env,
        &[
            wait_support::completed("101"),
            wait_support::completed("102"),
        ],
        None,
    );
    let ended = waiting.end(Duration::from_secs(20));
    assert_eq!(ended.code(), Some(0), "{}", ended.stderr);
    let v = env.run("rj-status", &["--format", "json"]).json();
    assert_eq!(
        v["sets"][0]["ids"],
        serde_json::json!(["101", "102"]),
        "{v}"
    );
    env.run("rj-status", &["--check"]).ok();

    // rbench over TLS to every master: every key written, then every GET hits.
    let doc = env.run("rbench", &rbench_walk("set", "2", "tls:")).json();
    assert_eq!(
        doc["config"]["cluster_masters"].as_array().unwrap().len(),
        3,
        "{doc}"
    );
    assert_eq!(doc["results"]["tests"]["SET"]["successes"], 3000, "{doc}");
    let keys: Vec<usize> = c
        .masters()
        .into_iter()
        .map(|p| c.node(p).cli(&["KEYS", "tls:*"]).lines().count())
        .collect();
    assert!(keys.iter().all(|&n| n > 0), "{keys:?}");
    assert_eq!(keys.iter().sum::<usize>(), 600);
    let doc = env.run("rbench", &rbench_walk("get", "2", "tls:")).json();
    let r = &doc["results"]["tests"]["GET"];
    assert_eq!((&r["hits"], &r["misses"]), (&3000.into(), &0.into()), "{r}");
}

/// On a cluster a tag's six sets must share a slot: a tag without a hash tag is one line, exit
/// 78, saying to write `{tag}`, before anything is written or submitted; so are sentinels that
/// name a cluster node.
#[test]
fn a_tag_without_a_hash_tag_is_one_configuration_error() {
    let Some(c) = RedisCluster::start(3, 0) else {
        return;
    };
    let env = TestEnv::new(&c.nodes[0]);
    let hint = format!("{{{}}}", env.tag);
    let mut tools: Vec<(&str, &[&str])> = TOOLS.to_vec();
    tools.extend([
        ("rj-put", &["--job", "1", "loss", "1"][..]),
        ("rj-wait", &["1"][..]),
        ("rj-track", &["--once"][..]),
        ("rj-status", &["--format", "openmetrics"][..]),
        // Refused before sbatch runs: PATH has none, which would be 69.
        ("rj-launch", &["--", "--wrap", "true"][..]),
    ]);
    for (bin, args) in tools {
        let mut cmd = env.cmd(bin);
        cmd.args(args);
        if args.first() == Some(&"--") {
            cmd.env("PATH", env.only_tools("nothing", &[]));
        }
        let line = run(&mut cmd).fails(78);
        assert!(line.contains("Redis Cluster"), "{bin}: {line}");
        assert!(line.contains(&hint), "{bin}: {line}");
    }
    for n in &c.nodes {
        assert_eq!(n.cli(&["DBSIZE"]).trim(), "0", "nothing written");
    }
    // The job recorded by hand exists in Slurm: spooled, though the spool waits for the fix.
    let out = env.run("rj-launch", &["--record", "51"]);
    assert_eq!(out.stdout(), "51\n");
    let line = out.fails(78);
    assert!(line.contains("will not drain until it is fixed"), "{line}");
    assert!(std::fs::read_to_string(env.spool())
        .unwrap()
        .contains("\"51\""));

    // Sentinels naming a cluster node as their master: not a setup rj can follow.
    let sentinel = SentinelProc::start("m", c.nodes[0].port, 1, "");
    let conf = env.path().join("sentinels.json");
    std::fs::write(
        &conf,
        format!(r#"{{"sentinels": ["{}"], "master": "m"}}"#, sentinel.addr()),
    )
    .unwrap();
    let line = run(env
        .cmd("rj-status")
        .env("RJ_CONFIG", &conf)
        .env("JOB_TAG", &hint))
    .fails(78);
    assert!(line.contains("Redis Cluster node"), "{line}");
    assert!(line.contains("\"sentinels\""), "{line}");
}

/// Wait until job `id` is in `set` (read from whichever master serves the slot now).
fn wait_in(c: &RedisCluster, env: &TestEnv, slot: u16, id: &str, set: &str, t: &Tracker) {
    let start = Instant::now();
    while !owner(c, slot)
        .smembers(&env.key(set))
        .iter()
        .any(|m| m == id)
    {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "job {id} not in {set} after 90 s\nstdout:\n{}\nstderr:\n{}",
            t.stdout(),
            t.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A job that waits for `flag` to exist (two minutes at most: a test that died must not leave
/// it holding a CPU of the shared testbed), then runs `then`.
fn gated(flag: &Path, then: &str) -> String {
    format!(
        "i=0; while [ ! -e '{}' ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done; {then}",
        flag.display()
    )
}

/// Cancels the test's Slurm jobs on Drop (a failed test's gated job would wait on).
struct Cancel(Vec<String>);

impl Drop for Cancel {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = std::process::Command::new("scancel").args(&self.0).output();
        }
    }
}

/// rj-track tracks real Slurm jobs through a replica, the node the configuration names: one job
/// ends before the tag's slot moves, one after the move, one after the master that took it
/// fails over to its replica (the node named), one after that master is killed and the other
/// is elected. rj-wait follows the stream all along. Every job ends in its set once, with one
/// event and one line of rj-track each, and the invariant holds. A second tag on another master
/// is tracked in the same ticks (their figures are one pipeline split over two masters);
/// `--all-tags` finds both and skips a tag without a hash tag.
#[test]
fn rj_track_follows_a_resharding_a_failover_and_a_dead_master() {
    let _node = slurm::shared();
    if !slurm::available() {
        return;
    }
    let Some(mut c) = RedisCluster::start(3, 1) else {
        return;
    };
    let tag = format!("{{{}}}", util::unique_tag("tr"));
    let slot = key_slot(&tag);
    let first = c.owner(slot);
    let to = c.masters().into_iter().find(|&p| p != first).unwrap();
    // The node named is the replica of the master the slot will move to.
    let named = c.replica_of(to).port;
    let mut env = TestEnv::new(c.node(named));
    env.tag = tag;
    let flag = |name: &str| env.path().join(name);
    let jobs = std::cell::RefCell::new(Cancel(Vec::new()));
    let launch = |wrap: &str| {
        let out = run(env
            .cmd("rj-launch")
            .env("PATH", util::path_with_rj())
            .args(["--", "-o", "/dev/null", "--wrap", wrap]));
        let id = out.ok().trim().to_string();
        jobs.borrow_mut().0.push(id.clone());
        id
    };
    let (env2, slot2) = (0..50)
        .map(|_| tagged_env(&c, "tr2"))
        .find(|(_, s)| c.owner(*s) != first)
        .unwrap();
    let other = run(env2
        .cmd("rj-launch")
        .args(["--", "-o", "/dev/null", "--wrap", "exit 0"]))
    .ok()
    .trim()
    .to_string();
    let plain = format!("{}_PENDING_AND_RUNNING", util::unique_tag("plain"));
    owner(&c, key_slot(&plain)).cli(&["SADD", &plain, "1"]);
    // A job waiting for its flag holds one of the testbed's two CPUs: one at a time.
    let b = launch(&gated(&flag("moved"), "exit 3"));
    // --all-tags finds the tags on every master, and skips the one without a hash tag.
    let out = run(env.cmd("rj-track").args(["--once", "--all-tags", "-v"]));
    out.ok();
    let err = out.stderr();
    assert!(err.contains("skipping tag plain_"), "{err}");
    for t in [&env.tag, &env2.tag] {
        assert!(err.contains(&format!("{t}_TRACKER")), "{t} found: {err}");
    }
    let a = launch("rj-put loss 0.5");
    let mut tracker = Tracker::start(&env, "track", &["--tag", &env.tag, "--tag", &env2.tag]);

    // a ends on the first master; b after its slot moved to another.
    wait_in(&c, &env, slot, &a, "COMPLETED", &tracker);
    c.move_slot(slot, to);
    std::fs::write(flag("moved"), "").unwrap();
    wait_in(&c, &env, slot, &b, "FAILED", &tracker);
    // It followed the slot to its new master (under -v it says so).
    let moved = format!("hash slot {slot} moved to 127.0.0.1:{to} (MOVED)");
    assert!(tracker.stderr().contains(&moved), "{}", tracker.stderr());

    // c ends after that master failed over to its replica, rj-wait blocked on the stream.
    let c_job = launch(&gated(&flag("failed-over"), "rj-put done yes"));
    let waiting = Waiting::start(owner(&c, slot), &env, &[&b, &c_job]);
    assert!(
        owner(&c, slot)
            .smembers(&env.key("PENDING_AND_RUNNING"))
            .contains(&c_job),
        "{c_job} is still tracked when its master fails over"
    );
    assert_eq!(c.failover(to), named);
    std::fs::write(flag("failed-over"), "").unwrap();
    wait_in(&c, &env, slot, &c_job, "COMPLETED", &tracker);
    let ended = waiting.end(Duration::from_secs(60));
    assert_eq!(ended.code(), Some(3), "b failed: {}", ended.stderr);
    for id in [&b, &c_job] {
        let n = ended
            .stdout
            .lines()
            // The ID is the line's second word: as a substring, `3` would also be in the tag.
            .filter(|l| l.split_whitespace().nth(1) == Some(id.as_str()))
            .count();
        assert_eq!(n, 1, "{id} once in rj-wait's output:\n{}", ended.stdout);
    }

    // d ends after the master, the node named, died and its replica was elected: the
    // tracker and rj-wait, running, go on through the nodes they saw.
    let d = launch(&gated(&flag("killed"), "true"));
    let waiting = Waiting::start(owner(&c, slot), &env, &[&d]);
    let replica = c.node(to);
    util::wait_until(Duration::from_secs(20), "the replica to have c", || {
        let (_, done): ((), Vec<String>) = redis::pipe()
            .cmd("READONLY")
            .cmd("SMEMBERS")
            .arg(env.key("COMPLETED"))
            .query(&mut replica.client())
            .unwrap();
        done.contains(&c_job)
    });
    assert_eq!(c.kill_master(named), to);
    std::fs::write(flag("killed"), "").unwrap();
    wait_in(&c, &env, slot, &d, "COMPLETED", &tracker);
    let ended = waiting.end(Duration::from_secs(60));
    assert_eq!(ended.code(), Some(0), "{}", ended.stderr);
    assert!(
        tracker.stderr().contains("which does not answer"),
        "{}",
        tracker.stderr()
    );

    let home = owner(&c, slot);
    let sets = assert_invariant(home, &env);
    let mut done = vec![a.clone(), c_job.clone(), d.clone()];
    done.sort();
    assert_eq!(sets["COMPLETED"], done, "{sets:?}");
    assert_eq!(sets["FAILED"], std::slice::from_ref(&b));
    assert!(sets["PENDING_AND_RUNNING"].is_empty());
    // A new process starts from the node named, which is dead: name a live one.
    let live = c.url();
    let tool = |bin: &str, args: &[&str]| run(env.cmd(bin).env("REDIS_URL", &live).args(args));
    tool("rj-status", &["--check"]).ok();
    // One event and one line per move.
    let events: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(env.key("EVENTS"))
        .arg("-")
        .arg("+")
        .query(&mut home.client())
        .unwrap();
    for id in [&a, &b, &c_job, &d] {
        let moves = events
            .iter()
            .filter(|(_, kv)| kv[1] == **id && kv[5] != "recorded")
            .count();
        assert_eq!(moves, 1, "{id}: {events:?}");
        let lines = tracker
            .stdout()
            .lines()
            .filter(|l| l.split(' ').nth(1) == Some(id.as_str()))
            .count();
        assert_eq!(lines, 1, "{id} in\n{}", tracker.stdout());
    }
    // The other tag, on another master, was tracked alongside, and both got their figures.
    wait_in(&c, &env2, slot2, &other, "COMPLETED", &tracker);
    let text = tool(
        "rj-status",
        &[
            "--format",
            "openmetrics",
            "--tag",
            &env.tag,
            "--tag",
            &env2.tag,
        ],
    )
    .ok();
    for t in [&env.tag, &env2.tag] {
        let want = format!("rj_tracker_last_tick_timestamp_seconds{{tag=\"{t}\"}}");
        assert!(text.contains(&want), "{want} in\n{text}");
    }

    // The jobs' rj-put reached the cluster too.
    let last = tool("rj-last", &["--job", &a]).ok();
    assert!(last.contains("0.5"), "{last}");
    let last = tool("rj-last", &["--job", &c_job]).ok();
    assert!(last.contains("yes"), "{last}");
    assert!(
        tracker.alive(),
        "rj-track is still running:\n{}",
        tracker.stderr()
    );
    // A tick that met the slot half-moved (TRYAGAIN, ASK in a script) or a master turning
    // replica may fail; it is retried at the next tick, nothing worse.
    for l in tracker.stderr().lines().filter(|l| l.contains("error")) {
        assert!(l.contains("; retrying in "), "{l}\n{}", tracker.stderr());
    }
}

/// The least-privilege users of the ACL table, made on every node (a cluster's ACL is each
/// node's own), with the three commands a cluster adds for every tool (`+info`,
/// `+cluster|slots`, `+asking`): rj-launch records and rj-status lists through a node that does
/// not own the tag's slot. Without `+cluster|slots` or `+info` the tool exits 77 saying what is
/// missing, and nothing is written.
#[test]
fn least_privilege_users_need_info_cluster_slots_and_asking() {
    let Some(c) = RedisCluster::start(3, 0) else {
        return;
    };
    let (env, slot) = tagged_env(&c, "acl");
    let home = owner(&c, slot);
    let user = |name: &str, tool: &str, without: Option<&str>| -> TestEnv {
        let row = rj::cli::ACL
            .iter()
            .find(|r| r.tool == tool && r.with.is_empty())
            .unwrap();
        for port in c.masters() {
            let mut admin = c.node(port).client();
            crate::util::check::setuser(&mut admin, name, row, "cl-acl-pw", &env.tag);
            let extra: Vec<&str> = ["+info", "+cluster|slots", "+asking"]
                .into_iter()
                .filter(|c| Some(*c) != without)
                .collect();
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg(name)
                .arg(extra)
                .query::<()>(&mut admin)
                .unwrap();
        }
        let mut e = TestEnv::new(c.node(env.port));
        e.tag = env.tag.clone();
        let json = serde_json::json!({
            "host": "127.0.0.1", "port": env.port, "username": name, "password": "cl-acl-pw",
        });
        std::fs::write(&e.config, serde_json::to_vec(&json).unwrap()).unwrap();
        util::set_mode(&e.config, 0o600);
        e
    };

    let refused = user("launch-no-slots", "rj-launch", Some("+cluster|slots"));
    let line = refused.run("rj-launch", &["--record", "7"]).fails(77);
    assert!(line.to_ascii_uppercase().contains("CLUSTER"), "{line}");
    assert!(tag_keys(&c, &env).is_empty(), "{:?}", tag_keys(&c, &env));
    // Without +info the node looks like a plain server and answers MOVED: a retry cannot
    // help, so it is 77 naming what to grant, not the 75 of a resharding. The ID is printed
    // and kept in the spool (nothing reached the cluster).
    let blind = user("launch-no-info", "rj-launch", Some("+info"));
    let out = blind.run("rj-launch", &["--record", "7"]);
    let line = out.fails(77);
    assert!(
        line.contains("MOVED") && line.contains("may not run INFO") && line.contains("+info"),
        "{line}"
    );
    assert!(line.contains("will not drain until it is fixed"), "{line}");
    assert_eq!(out.stdout(), "7\n");
    assert!(tag_keys(&c, &env).is_empty(), "{:?}", tag_keys(&c, &env));

    let launch = user("launch", "rj-launch", None);
    assert_eq!(
        launch.run("rj-launch", &["--record", "7", "8"]).ok(),
        "7\n8\n"
    );
    assert_eq!(home.smembers(&env.key("ALL")), ["7", "8"]);
    let status = user("status", "rj-status", None);
    let out = status.run("rj-status", &["--state", "ALL", "--format", "plain"]);
    assert_eq!(out.ok(), "7\n8\n");
}
