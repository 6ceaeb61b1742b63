//! The exit-status table shared by every binary, chosen from typed errors in an error chain.
use std::fmt;
use std::io;
use std::process::ExitCode;

/// The documented exit statuses (ARCHITECTURE.md §5): success, then one row per [`Kind`] in the
/// order of [`Kind::ALL`]. The `--help` text, the man pages' EXIT STATUS table and the README's
/// table are all printed from it.
pub const TABLE: &[(u8, &str)] = &table();

const SUCCESS: &str = "success; a closed stdout pipe (`| head`) is not an error";

const fn table() -> [(u8, &'static str); Kind::ALL.len() + 1] {
    let mut rows = [(0, SUCCESS); Kind::ALL.len() + 1];
    let mut i = 0;
    while i < Kind::ALL.len() {
        rows[i + 1] = (Kind::ALL[i].code(), Kind::ALL[i].meaning());
        i += 1;
    }
    rows
}

/// What kind of failure an error is; each kind has one exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NotFound,
    Usage,
    NotCompleted,
    DataErr,
    Unavailable,
    Output,
    TempFail,
    NoPerm,
    Config,
    TimedOut,
    Interrupted,
}

impl Kind {
    /// Every kind, in the order of the exit-status table (ascending status).
    pub const ALL: [Kind; 11] = [
        Kind::NotFound,
        Kind::Usage,
        Kind::NotCompleted,
        Kind::DataErr,
        Kind::Unavailable,
        Kind::Output,
        Kind::TempFail,
        Kind::NoPerm,
        Kind::Config,
        Kind::TimedOut,
        Kind::Interrupted,
    ];

    /// What the status means to a user, as the table of [`TABLE`] shows it.
    pub const fn meaning(self) -> &'static str {
        match self {
            Kind::NotFound => {
                "nothing found (rj-last: no jobs under the tag, no such job, no keys; rj-wait: an \
                 ID not recorded under the tag; rj-status lists an empty tag as zero counts and \
                 exits 0)"
            }
            Kind::Usage => "usage error: a bad option or option value, such as `rj-last --job abc`",
            Kind::NotCompleted => {
                "rj-wait: every awaited job ended, but not all in COMPLETED (FAILED, TIMEOUT or \
                 CANCELLED)"
            }
            Kind::DataErr => {
                "bad input data (unparseable output of sbatch, squeue, sacct, scontrol or \
                 redis-benchmark; a bad job ID given to `rj-launch --record`, which may come from \
                 a pipe; a Redis key of the wrong type, named in the message; `rj-status \
                 --check`: the tag's sets break the one-set-per-job rule)"
            }
            Kind::Unavailable => {
                "a service is unavailable or unusable (Redis, Slurm, `redis-benchmark` missing or \
                 unreachable; sbatch failed; a Sentinel named as the server; a port that is not Redis; \
                 a server without Lua scripting for rj-track; an rbench run whose every request \
                 was refused)"
            }
            Kind::Output => {
                "the output could not be written (stdout on a full disk or a file system gone)"
            }
            Kind::TempFail => {
                "temporary failure: the job ID (rj-launch) or the write (rj-put) was spooled \
                 locally and will be replayed by the next rj-launch, rj-put or rj-track \
                 (`rj-status --check`: the sets kept changing under it)"
            }
            Kind::NoPerm => {
                "permission or authentication refused (wrong Redis password; NOPERM, naming the \
                 command)"
            }
            Kind::Config => {
                "configuration error (redis.json, REDIS_URL, tag, a \"db\" the server does not \
                 have; on a Redis Cluster, a tag without a hash tag such as {exp})"
            }
            Kind::TimedOut => {
                "rj-wait: `--timeout` was reached before every awaited job ended (as timeout(1))"
            }
            Kind::Interrupted => "interrupted",
        }
    }

    pub const fn code(self) -> u8 {
        match self {
            Kind::NotFound => 1,
            Kind::Usage => 2,
            Kind::NotCompleted => 3,
            Kind::DataErr => 65,
            Kind::Unavailable => 69,
            Kind::Output => 74,
            Kind::TempFail => 75,
            Kind::NoPerm => 77,
            Kind::Config => 78,
            Kind::TimedOut => 124,
            Kind::Interrupted => 130,
        }
    }
}

/// A failure whose exit status is known; the message is the one line shown to the user.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub msg: String,
    /// Can the same request succeed later without anyone changing anything (a server that is
    /// down, loading, read-only during a failover, out of memory, paused)? Decides between
    /// spooling with 75 and exiting with the code of the cause (ARCHITECTURE.md §5).
    pub transient: bool,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Failure {}

/// Build an `anyhow::Error` of the given kind; permanent (a retry will not help).
pub fn fail(kind: Kind, msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind,
        msg: msg.into(),
        transient: false,
    })
}

/// Build an `anyhow::Error` of the given kind that a later retry may fix.
pub fn fail_transient(kind: Kind, msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind,
        msg: msg.into(),
        transient: true,
    })
}

/// An error of a Redis call, with the kind and transience of its cause.
pub fn redis_failure(e: &redis::RedisError, msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind: redis_kind(e),
        msg: msg.into(),
        transient: redis_transient(e),
    })
}

/// Server error codes that a retry can outlive: a server loading its data, a replica not yet
/// promoted (READONLY, MASTERDOWN), memory full (OOM: a job ending frees it), a script or
/// module busy, a cluster resharding or failing over (a slot MOVED or being moved, ASK and
/// TRYAGAIN, CLUSTERDOWN: the next connection reads the slot map again), a blocking read ended
/// because its master became a replica (UNBLOCKED, in any failover), too few replicas for a
/// write.
pub const TRANSIENT_CODES: &[&str] = &[
    "LOADING",
    "READONLY",
    "MASTERDOWN",
    "OOM",
    "BUSY",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MOVED",
    "ASK",
    "UNBLOCKED",
    "NOREPLICAS",
];

/// Can a retry fix this Redis error? Network trouble (refused, reset, timed out: a server down,
/// restarting or paused) and the codes of [`TRANSIENT_CODES`] can; a refused permission, a key of
/// the wrong type, a command the server does not have, a reply rj cannot parse cannot.
pub fn redis_transient(e: &redis::RedisError) -> bool {
    if let Some(code) = server_code(e) {
        return TRANSIENT_CODES.contains(&code.as_str());
    }
    e.is_connection_refusal()
        || e.is_timeout()
        || e.is_connection_dropped()
        || (e.is_io_error() && e.kind() != redis::ErrorKind::AuthenticationFailed)
}

/// Can a retry fix this error? The outermost typed cause decides, as for [`code_for`]; an
/// error without one (a bug, a local file) is not worth retrying.
pub fn is_transient(err: &anyhow::Error) -> bool {
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.transient;
        }
        if let Some(r) = cause.downcast_ref::<redis::RedisError>() {
            return redis_transient(r);
        }
    }
    false
}

/// Is this error (anywhere in its chain) a closed stdout pipe?
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    // Writers that wrap io::Error (serde_json, csv) hide it from the chain; ask them.
    err.chain().any(|e| {
        let kind = if let Some(io) = e.downcast_ref::<io::Error>() {
            Some(io.kind())
        } else if let Some(j) = e.downcast_ref::<serde_json::Error>() {
            j.io_error_kind()
        } else if let Some(c) = e.downcast_ref::<csv::Error>() {
            match c.kind() {
                csv::ErrorKind::Io(io) => Some(io.kind()),
                _ => None,
            }
        } else {
            None
        };
        kind == Some(io::ErrorKind::BrokenPipe)
    })
}

/// The kind of a Redis error reply by its code (the first word, as in `WRONGPASS invalid …`):
/// the authentication and permission codes are 77; None for any other code.
pub fn auth_kind(code: &str) -> Option<Kind> {
    matches!(code, "WRONGPASS" | "NOAUTH" | "NOPERM").then_some(Kind::NoPerm)
}

/// Classify a Redis client error: authentication problems are 77; a key of the wrong type (a
/// tag's set that some script wrote as a string) is bad data, 65; everything else about reaching
/// or talking to the server is 69.
pub fn redis_kind(e: &redis::RedisError) -> Kind {
    let code = server_code(e);
    if e.kind() == redis::ErrorKind::AuthenticationFailed
        || code.as_deref().and_then(auth_kind).is_some()
    {
        Kind::NoPerm
    } else if code.as_deref() == Some("WRONGTYPE") {
        Kind::DataErr
    } else {
        Kind::Unavailable
    }
}

/// The server's first error and the index of its command, also out of a pipeline's failures
/// (for a single command the index is 0); None for errors the server did not send.
pub fn first_server_error(e: &redis::RedisError) -> Option<(usize, redis::ServerError)> {
    e.clone()
        .into_server_errors()
        .and_then(|errs| errs.first().cloned())
}

/// The server's error code (`WRONGTYPE`, `NOPERM`…), also out of a pipeline's first failure.
/// `EXECABORT` only says that a command of the transaction was refused while queued: that
/// command's code is the cause (NOPERM for an ACL user without `+sadd` is 77, not 69).
pub fn server_code(e: &redis::RedisError) -> Option<String> {
    match e.code() {
        Some(c) if c != "EXECABORT" => Some(c.to_string()),
        c => first_server_error(e)
            .map(|(_, s)| s.code().to_string())
            .or(c.map(str::to_string)),
    }
}

/// The exit status for an error: the outermost typed cause wins.
pub fn code_for(err: &anyhow::Error) -> u8 {
    if is_broken_pipe(err) {
        return 0;
    }
    kind_of(err).map_or(1, Kind::code)
}

/// The kind of the outermost typed cause (a [`Failure`], a Redis error or a Slurm query's
/// error); None for an error without one.
pub fn kind_of(err: &anyhow::Error) -> Option<Kind> {
    err.chain().find_map(|cause| {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return Some(f.kind);
        }
        if let Some(q) = cause.downcast_ref::<crate::slurm::QueryError>() {
            return Some(query_kind(q.kind));
        }
        cause.downcast_ref::<redis::RedisError>().map(redis_kind)
    })
}

/// A squeue/sacct/scontrol that answered in a form rj cannot read is bad data, 65; any other
/// failure (a controller out of reach, accounting off, jobs it does not know) leaves Slurm
/// unusable for the call, 69.
pub fn query_kind(q: crate::slurm::QueryFailure) -> Kind {
    match q {
        crate::slurm::QueryFailure::BadOutput => Kind::DataErr,
        _ => Kind::Unavailable,
    }
}

pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    ExitCode::from(code_for(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn typed_failure_deep_in_chain_chooses_code() {
        let e = Err::<(), _>(fail(Kind::Config, "bad"))
            .context("reading x")
            .unwrap_err();
        assert_eq!(code_for(&e), 78);
    }

    #[test]
    fn broken_pipe_is_success() {
        let e = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("writing");
        assert_eq!(code_for(&e), 0);
    }

    #[test]
    fn auth_codes_are_no_perm() {
        for code in ["WRONGPASS", "NOAUTH", "NOPERM"] {
            assert_eq!(auth_kind(code), Some(Kind::NoPerm), "{code}");
        }
        assert_eq!(auth_kind("WRONGTYPE"), None);
        assert_eq!(auth_kind("ERR"), None);
    }

    #[test]
    fn transience_comes_from_the_outermost_typed_cause() {
        let t = Err::<(), _>(fail_transient(Kind::Unavailable, "down"))
            .context("recording")
            .unwrap_err();
        assert!(is_transient(&t));
        assert!(!is_transient(&fail(Kind::NoPerm, "NOPERM")));
        assert!(!is_transient(&anyhow::anyhow!("a bug")));
    }

    #[test]
    fn server_codes_that_a_retry_outlives() {
        let reply = |text: &str| {
            let (code, detail) = text.split_once(' ').unwrap();
            redis::make_extension_error(code.into(), Some(detail.into()))
        };
        for t in [
            "LOADING Redis is loading",
            "READONLY You can't write",
            "OOM command not allowed",
            "BUSY Redis is busy",
            "MOVED 3999 127.0.0.1:6381",
            "ASK 3999 127.0.0.1:6381",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "UNBLOCKED force unblock from blocking operation, instance state changed",
        ] {
            assert!(redis_transient(&reply(t)), "{t}");
        }
        for t in [
            "NOPERM User u has no permissions",
            "WRONGTYPE Operation against a key",
            "CROSSSLOT Keys in request don't hash to the same slot",
            "ERR unknown command 'EVAL'",
        ] {
            assert!(!redis_transient(&reply(t)), "{t}");
        }
    }

    #[test]
    fn untyped_error_is_one() {
        assert_eq!(code_for(&anyhow::anyhow!("x")), 1);
    }

    #[test]
    fn the_table_is_success_then_every_kind_in_ascending_order() {
        assert_eq!(TABLE[0], (0, SUCCESS));
        let codes: Vec<u8> = TABLE.iter().map(|(c, _)| *c).collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "{codes:?}");
        for (k, row) in Kind::ALL.iter().zip(&TABLE[1..]) {
            assert_eq!(*row, (k.code(), k.meaning()), "{k:?}");
        }
        // No `_` arm: a new Kind does not compile here until it has its place in Kind::ALL.
        for k in Kind::ALL {
            let place = match k {
                Kind::NotFound => 0,
                Kind::Usage => 1,
                Kind::NotCompleted => 2,
                Kind::DataErr => 3,
                Kind::Unavailable => 4,
                Kind::Output => 5,
                Kind::TempFail => 6,
                Kind::NoPerm => 7,
                Kind::Config => 8,
                Kind::TimedOut => 9,
                Kind::Interrupted => 10,
            };
            assert_eq!(Kind::ALL[place], k);
        }
    }

    #[test]
    fn slurm_query_errors_have_their_kind() {
        use crate::slurm::{QueryError, QueryFailure};
        let query = |kind| {
            anyhow::Error::new(QueryError {
                kind,
                msg: "squeue failed".into(),
            })
            .context("tick")
        };
        assert_eq!(
            kind_of(&query(QueryFailure::BadOutput)),
            Some(Kind::DataErr)
        );
        assert_eq!(code_for(&query(QueryFailure::BadOutput)), 65);
        for k in [
            QueryFailure::Unreachable,
            QueryFailure::AccountingDisabled,
            QueryFailure::NoSuchJobs,
            QueryFailure::Other,
        ] {
            assert_eq!(kind_of(&query(k)), Some(Kind::Unavailable), "{k:?}");
        }
    }
}
