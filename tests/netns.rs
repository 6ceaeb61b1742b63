//! Real network faults between separate hosts (ARCHITECTURE.md §9): two login nodes and a Redis
//! host in network namespaces (scripts/netns-faults), the real Slurm testbed, a real redis-server
//! on the Redis host, and a login node's link to Redis cut, or slowed and lossy, while rj works.
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::check::{self, fails};
use crate::util::netns::{self, Host, NetRedis};
use crate::util::tracker::Tracker;
use crate::util::{self, slurm, TestEnv};

/// What a tool may take on a slow, lossy link: its bounded calls (5 s to connect, 15 s a call,
/// ARCHITECTURE.md §5) a few times over, never unbounded.
const TOOL_LIMIT: Duration = Duration::from_secs(120);

/// Submit a job on `host` with rj-launch (the real sbatch, through the host's PATH); its output.
fn launch_on(
    server: &NetRedis,
    env: &TestEnv,
    host: Host,
    first: Option<&Path>,
    wrap: &str,
) -> std::process::Output {
    let mut c = netns::on(server, env, host, first, "rj-launch");
    c.args(["--", "-o", "/dev/null", "--wrap", wrap]);
    netns::output_within(c, TOOL_LIMIT).expect("rj-launch ran past its bounded calls")
}

/// The job ID rj-launch printed (it prints it whether or not Redis took it).
fn printed_id(out: &std::process::Output) -> String {
    let s = check::stdout(out);
    let id = s.trim();
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
        "stdout is the job ID: {s:?}\nstderr: {}",
        check::stderr(out)
    );
    id.to_string()
}

/// A Slurm command for login1 that runs the real one and then, once `arm` exists and its output
/// mentions `word`, removes `arm` and cuts login1's link to Redis (healed within 60 s in any
/// case): the cut falls between what Slurm said and the Redis calls that follow.
fn cut_after(dir: &Path, tool: &str, arm: &Path, word: &str) {
    let real = PathBuf::from(netns::host_path(None).split(':').next().unwrap()).join(tool);
    util::write_script(
        dir,
        tool,
        &format!(
            "out=$(mktemp)\n\
             PATH='{path}' '{real}' \"$@\" >\"$out\"; st=$?\n\
             if [ -e '{arm}' ] && grep -q '{word}' \"$out\" && rm '{arm}' 2>/dev/null; then\n\
             \x20 '{script}' cut login1 60 >/dev/null 2>&1\n\
             fi\n\
             cat \"$out\"; rm -f \"$out\"; exit $st",
            path = netns::host_path(None),
            real = real.display(),
            arm = arm.display(),
            script = netns::script().display(),
        ),
    );
}

fn lease_owner(server: &NetRedis, env: &TestEnv) -> String {
    server.cli(&["GET", &env.key("TRACKER")]).trim().to_string()
}

fn tracked_by(server: &NetRedis, env: &TestEnv, id: &str) -> Option<String> {
    server.hgetall(&env.job(id)).get("tracked_by").cloned()
}

/// The active tracker's link to Redis is cut for longer than the lease, with a move script in
/// flight: the standby on the other login node takes over and moves the job; after the heal
/// the old tracker's script is refused by the lease check, it says it lost the lease and moves
/// nothing more, and every job is in one set with one move event.
#[test]
fn a_cut_link_hands_the_lease_to_the_standby_and_the_old_tracker_moves_nothing() {
    let Some((_net, server)) = netns::setup() else {
        return;
    };
    let env = server.env(Host::Login1);
    let inject = env.path().join("inject");
    let arm = env.path().join("arm");
    cut_after(&inject, "squeue", &arm, "COMPLETED");

    let mut a = Tracker::start_with(
        netns::on(&server, &env, Host::Login1, Some(&inject), "rj-track"),
        &env,
        "a",
        &[],
    );
    util::wait_until(Duration::from_secs(15), "a to take the lease", || {
        !lease_owner(&server, &env).is_empty()
    });
    let a_owner = lease_owner(&server, &env);
    let mut b = Tracker::start_with(
        netns::on(&server, &env, Host::Login2, None, "rj-track"),
        &env,
        "b",
        &[],
    );

    // Before the fault: A moves the first job.
    let first = printed_id(&launch_on(&server, &env, Host::Login1, None, "exit 0"));
    util::wait_until(Duration::from_secs(60), "a to move the first job", || {
        tracked_by(&server, &env, &first).is_some()
    });
    assert_eq!(tracked_by(&server, &env, &first).unwrap(), a_owner);

    // The fault: A's squeue says the second job COMPLETED, then its link goes; its move script
    // waits in TCP retransmission while its lease runs out (5 s for --interval 1s).
    std::fs::write(&arm, "").unwrap();
    let second = printed_id(&launch_on(&server, &env, Host::Login1, None, "exit 0"));
    util::wait_until(Duration::from_secs(60), "the cut", || !arm.exists());
    util::wait_until(Duration::from_secs(30), "b to take the lease", || {
        let owner = lease_owner(&server, &env);
        !owner.is_empty() && owner != a_owner
    });
    let b_owner = lease_owner(&server, &env);

    // The heal, as soon as the lease is the standby's: A's script arrives with the next TCP
    // retransmission, well within its 15 s bounded call, is refused by the lease check, and A
    // says so.
    netns::faults(&["heal", "login1"]);
    util::wait_until(Duration::from_secs(30), "b to move the second job", || {
        tracked_by(&server, &env, &second).is_some()
    });
    assert_eq!(tracked_by(&server, &env, &second).unwrap(), b_owner);
    util::wait_until(
        Duration::from_secs(40),
        "a to report the lost lease",
        || a.stderr().contains("lost the lease"),
    );
    let third = printed_id(&launch_on(&server, &env, Host::Login1, None, "exit 1"));
    util::wait_until(Duration::from_secs(60), "b to move the third job", || {
        tracked_by(&server, &env, &third).is_some()
    });
    assert_eq!(tracked_by(&server, &env, &third).unwrap(), b_owner);
    // A few more ticks of A with a healthy link: it stands by.
    std::thread::sleep(Duration::from_secs(3));

    assert!(a.stop(Duration::from_secs(30)).success(), "{}", a.stderr());
    assert!(b.stop(Duration::from_secs(30)).success(), "{}", b.stderr());
    assert_eq!(
        a.moved_ids(),
        std::slice::from_ref(&first),
        "a moved only before the cut\n{}",
        a.stderr()
    );
    assert_eq!(
        b.moved_ids(),
        [second.clone(), third.clone()],
        "{}",
        b.stderr()
    );
    let a_err = a.stderr();
    assert!(
        a_err.contains("nothing moved, standing by"),
        "a's in-flight move was refused: {a_err}"
    );
    assert!(b.stderr().contains("took the lease"), "{}", b.stderr());
    assert_eq!(server.smembers(&env.key("COMPLETED")), {
        let mut v = vec![first.clone(), second.clone()];
        v.sort();
        v
    });
    assert_eq!(
        server.smembers(&env.key("FAILED")),
        std::slice::from_ref(&third)
    );
    netns::assert_ledger(&server, &env, &[first, second, third]);
}

/// 200 ms more latency and 5 % packet loss each way between login1 and Redis: rj-launch,
/// rj-launch --record, rj-put, rj-status and a tracking run all end within their bounded calls,
/// each with success or its documented status (75 spooled, 69 unavailable), and after the heal
/// every job is recorded once, moved once, and every rj-put value is there.
#[test]
fn a_slow_lossy_link_records_nothing_twice_and_loses_nothing() {
    let Some((_net, server)) = netns::setup() else {
        return;
    };
    let env = server.env(Host::Login1);
    netns::faults(&["impair", "login1", "200", "5", "300"]);

    // The statuses seen (shown with --nocapture): how often the link made a tool spool or fail.
    let mut seen = Vec::new();
    let mut ids = Vec::new();
    for i in 0..3 {
        let out = launch_on(
            &server,
            &env,
            Host::Login1,
            None,
            &format!("exit {}", i % 2),
        );
        seen.push(("rj-launch", out.status.code()));
        assert!(
            matches!(out.status.code(), Some(0 | 75)),
            "rj-launch: {out:?}"
        );
        ids.push(printed_id(&out));
    }
    let other = slurm::run(
        "sbatch",
        &["--parsable", "-o", "/dev/null", "--wrap", "exit 0"],
    )
    .trim()
    .to_string();
    let mut c = netns::on(&server, &env, Host::Login1, None, "rj-launch");
    c.args(["--record", &other]);
    let out = netns::output_within(c, TOOL_LIMIT).expect("rj-launch --record is bounded");
    seen.push(("rj-launch --record", out.status.code()));
    assert!(matches!(out.status.code(), Some(0 | 75)), "{out:?}");
    ids.push(other);

    let mut put_spooled = false;
    for id in &ids {
        let mut c = netns::on(&server, &env, Host::Login1, None, "rj-put");
        c.args(["--job", id, "answer", &format!("v{id}")]);
        let out = netns::output_within(c, TOOL_LIMIT).expect("rj-put is bounded");
        seen.push(("rj-put", out.status.code()));
        match out.status.code() {
            Some(0) => {}
            Some(75) => put_spooled = true,
            _ => panic!("rj-put: {out:?}"),
        }
    }
    let out = netns::output_within(
        netns::on(&server, &env, Host::Login1, None, "rj-status"),
        TOOL_LIMIT,
    )
    .expect("rj-status is bounded");
    seen.push(("rj-status", out.status.code()));
    eprintln!("exit statuses on the impaired link: {seen:?}");
    assert!(matches!(out.status.code(), Some(0 | 69)), "{out:?}");
    if out.status.code() == Some(69) {
        fails(&out, 69, "rj-status");
    }

    // A tracking run on the impaired link: it records what rj-launch spooled, replays rj-put's
    // spool and moves every job.
    for id in &ids {
        slurm::wait_finished(id, Duration::from_secs(120));
    }
    let mut t = Tracker::start_with(
        netns::on(&server, &env, Host::Login1, None, "rj-track"),
        &env,
        "t",
        &[],
    );
    util::wait_until(Duration::from_secs(180), "every job moved", || {
        server.smembers(&env.key("ALL")).len() == ids.len()
            && server.smembers(&env.key("PENDING_AND_RUNNING")).is_empty()
            && !env.spool().exists_with_lines()
    });
    netns::faults(&["heal", "login1"]);
    // One tick on the healed link replays whatever rj-put spooled.
    std::thread::sleep(Duration::from_secs(3));
    assert!(t.stop(Duration::from_secs(60)).success(), "{}", t.stderr());
    let mut moved = t.moved_ids();
    moved.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(moved, want, "each move printed once\n{}", t.stderr());
    for id in &ids {
        let key = format!("{}-{id}:answer", env.tag);
        assert_eq!(
            server.cli(&["GET", &key]).trim(),
            format!("v{id}"),
            "{key} (rj-put spooled: {put_spooled})"
        );
    }
    netns::assert_ledger(&server, &env, &ids);
}

/// rj-launch on login1, whose link to Redis goes down right after the real sbatch accepted the
/// job: the ID is printed, spooled, exit 75; after the heal the next rj-launch records it.
#[test]
fn a_link_cut_after_sbatch_spools_the_job_and_the_next_launch_replays_it() {
    let Some((_net, server)) = netns::setup() else {
        return;
    };
    let env = server.env(Host::Login1);
    let inject = env.path().join("inject");
    let arm = env.path().join("arm");
    std::fs::write(&arm, "").unwrap();
    // sbatch --parsable prints the ID: the cut comes after Slurm accepted the job.
    cut_after(&inject, "sbatch", &arm, "[0-9]");

    let out = launch_on(&server, &env, Host::Login1, Some(&inject), "exit 0");
    assert!(!arm.exists(), "the cut happened");
    let line = fails(&out, 75, "rj-launch");
    let first = printed_id(&out);
    let spool = env.spool();
    assert!(
        line.contains(spool.to_str().unwrap()),
        "names the spool: {line}"
    );
    assert!(std::fs::read_to_string(&spool).unwrap().contains(&first));
    assert!(server.smembers(&env.key("ALL")).is_empty());

    netns::faults(&["heal", "login1"]);
    let out = launch_on(&server, &env, Host::Login1, None, "exit 0");
    check::code(&out, 0);
    let second = printed_id(&out);
    assert!(
        check::stderr(&out).contains("recorded 1 spooled job(s)"),
        "{}",
        check::stderr(&out)
    );
    assert!(!env.spool().exists_with_lines(), "spool drained");
    let mut want = vec![first.clone(), second.clone()];
    want.sort();
    assert_eq!(server.smembers(&env.key("ALL")), want);
    for id in [&first, &second] {
        slurm::wait_finished(id, Duration::from_secs(120));
    }
    let mut c = netns::on(&server, &env, Host::Login2, None, "rj-track");
    c.arg("--once");
    let out = netns::output_within(c, TOOL_LIMIT).expect("rj-track --once is bounded");
    check::code(&out, 0);
    netns::assert_ledger(&server, &env, &[first, second]);
}

trait SpoolFile {
    /// The file exists and holds at least one line.
    fn exists_with_lines(&self) -> bool;
}

impl SpoolFile for PathBuf {
    fn exists_with_lines(&self) -> bool {
        std::fs::read_to_string(self).is_ok_and(|s| !s.trim().is_empty())
    }
}
