//! Redis contents several tool tests start from: a small tag as the original scripts would
//! have left it, and large sets written in one pipeline.
use super::check::sadd;
use super::{RedisServer, TestEnv};

/// The six sets of a small tag, as the original scripts would have left them: two pending
/// (a job and an array task), two completed, one failed task, one cancelled job, none timed out.
pub fn small_tag(server: &RedisServer, env: &TestEnv) {
    sadd(
        server,
        &env.key("ALL"),
        &["100", "10_2", "9", "10", "10_1", "77"],
    );
    sadd(server, &env.key("PENDING_AND_RUNNING"), &["100", "10_2"]);
    sadd(server, &env.key("COMPLETED"), &["10", "9"]);
    sadd(server, &env.key("FAILED"), &["10_1"]);
    sadd(server, &env.key("CANCELLED"), &["77"]);
}

/// The numeric IDs `ids` into each of the sets `keys` (suffixes of the tag, `"ALL"`), in one
/// pipeline of SADDs of 1000 IDs each, a chunk into every set before the next chunk: a large
/// tag in a moment, and no one command the server would block on.
pub fn many_ids(
    server: &RedisServer,
    env: &TestEnv,
    keys: &[&str],
    ids: impl IntoIterator<Item = u64>,
) {
    let ids: Vec<u64> = ids.into_iter().collect();
    let mut p = redis::pipe();
    for chunk in ids.chunks(1000) {
        for key in keys {
            p.cmd("SADD").arg(env.key(key)).arg(chunk).ignore();
        }
    }
    p.query::<()>(&mut server.client()).unwrap();
}
