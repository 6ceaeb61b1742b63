//! What every rj-track Lua script shares: the permission check before the first write, the
//! EVAL command, and one-line errors that say what to do (ARCHITECTURE.md §2, §5).
use crate::exit::{fail, redis_failure, Kind};
use crate::store::{redis_message, Store};

/// Prepended to every script. A script is not rolled back when a command in it fails, so each
/// one asks, before its first write, whether this Redis user may run every command it will run
/// (`redis.acl_check_cmd`, Redis 7.0+; older servers go on unchecked), and fails with a reply
/// that names the command and the key rather than Redis's "the user executing the script can't
/// run this command", which names neither.
const DENIED_LUA: &str = r"
local function denied(cmd, ...)
  if redis.acl_check_cmd and not redis.acl_check_cmd(cmd, ...) then
    return 'NOPERM this Redis user may not run ' .. cmd .. ' on ' .. tostring((...)) ..
      ' (rj-track needs +' .. string.lower(cmd) .. ')'
  end
  return false
end
";

/// `EVAL script numkeys keys…`; the script text goes each time (a few hundred bytes), so a
/// restarted Redis with an empty script cache needs no NOSCRIPT dance.
pub fn eval(script: &str, keys: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd("EVAL");
    c.arg(format!("{DENIED_LUA}{script}"))
        .arg(keys.len())
        .arg(keys);
    c
}

/// The error of a script call as one line that says what to do. Redis 7 turns a refused
/// command inside a script into a plain ERR (so without this it would be 69, not 77), appends
/// the script's SHA and line to every error, and echoes the script's text when EVAL itself is
/// missing; none of that helps the user.
pub fn script_error(place: &str, e: &redis::RedisError, what: &str) -> anyhow::Error {
    let code = e.code().unwrap_or("").to_string();
    let detail = e.detail().unwrap_or("").trim();
    let detail = match detail.rfind(" script: ") {
        Some(at) if detail[at..].contains("@user_script") => &detail[..at],
        _ => detail,
    };
    let lower = detail.to_ascii_lowercase();
    if code == "ERR" && lower.contains("unknown command") && lower.contains("'eval'") {
        return fail(
            Kind::Unavailable,
            format!(
                "Redis {place} has no EVAL command (renamed or disabled in its configuration): \
                 rj-track needs Lua scripting (EVAL) on the server"
            ),
        );
    }
    if code == "NOPERM" && lower.contains("'eval'") {
        return fail(
            Kind::NoPerm,
            format!(
                "Redis {place} refused EVAL (at {what}): NOPERM {detail}; rj-track needs Lua \
                 scripting (EVAL): grant this user +eval"
            ),
        );
    }
    if code == "ERR" && lower.contains("can't run this command") {
        return fail(
            Kind::NoPerm,
            format!("Redis {place} refused {what}: NOPERM {detail} (see the ACL of this user)"),
        );
    }
    if code.is_empty() {
        return redis_failure(
            e,
            format!("Redis {place} failed at {what}: {}", redis_message(e)),
        );
    }
    redis_failure(
        e,
        format!("Redis {place} failed at {what}: {code} {detail}"),
    )
}

impl Store {
    /// Run one of rj-track's scripts, with the errors of [`script_error`].
    pub(crate) fn script<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        what: &str,
    ) -> anyhow::Result<T> {
        let r = self.query_raw(cmd);
        r.map_err(|e| script_error(&self.place, &e, what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: &str, detail: &str) -> redis::RedisError {
        redis::make_extension_error(code.into(), Some(detail.into()))
    }

    #[test]
    fn script_errors_say_what_to_do_and_keep_their_status() {
        let sha = " script: 8831e6defd32b381a92a21bfbb7817a3ff1ae11f, on @user_script:16.";
        let e = script_error(
            "h:1",
            &server_error("WRONGTYPE", &format!("Operation against a key{sha}")),
            "T_TRACKER",
        );
        assert_eq!(
            e.to_string(),
            "Redis h:1 failed at T_TRACKER: WRONGTYPE Operation against a key"
        );
        assert_eq!(crate::exit::code_for(&e), 65);
        // Redis 6 and 7 report a refused command inside a script as ERR, not NOPERM.
        let e = script_error(
            "h:1",
            &server_error(
                "ERR",
                &format!("The user executing the script can't run this command or subcommand{sha}"),
            ),
            "T_TRACKER",
        );
        assert_eq!(crate::exit::code_for(&e), 77, "{e}");
        assert!(e.to_string().contains("NOPERM") && !e.to_string().contains("@user_script"));
        assert!(!crate::exit::is_transient(&e));
        // EVAL renamed away: Redis echoes the script's text; the message does not.
        let e = script_error(
            "h:1",
            &server_error(
                "ERR",
                "unknown command 'EVAL', with args beginning with: '\nlocal function denied' ",
            ),
            "T_TRACKER",
        );
        assert_eq!(crate::exit::code_for(&e), 69);
        assert!(e.to_string().contains("Lua scripting (EVAL)"), "{e}");
        assert!(!e.to_string().contains("denied"), "{e}");
        let e = script_error(
            "h:1",
            &server_error(
                "NOPERM",
                "User u has no permissions to run the 'eval' command",
            ),
            "T_TRACKER",
        );
        assert_eq!(crate::exit::code_for(&e), 77);
        assert!(e.to_string().contains("+eval"), "{e}");
        // What a retry can fix stays transient.
        let e = script_error(
            "h:1",
            &server_error(
                "READONLY",
                &format!("You can't write against a read only replica.{sha}"),
            ),
            "T_TRACKER",
        );
        assert!(crate::exit::is_transient(&e), "{e}");
        assert!(e.to_string().ends_with("read only replica."), "{e}");
    }
}
