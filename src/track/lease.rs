//! The lease of a tag (one active tracker per tag, ARCHITECTURE.md §4): take, renew and give
//! back `T_TRACKER` atomically, and the keeper thread that renews it while Slurm is slow.
use std::time::Duration;

use crate::config::Config;
use crate::keys::Keys;
use crate::store::Store;

use super::script::eval;

const LEASE_LUA: &str = r"
local e = denied('GET', KEYS[1]) or denied('PEXPIRE', KEYS[1], ARGV[2])
  or denied('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
if e then return redis.error_reply(e) end
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, v}
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
  return {2, ARGV[1]}
end
return {0, v}
";

const RENEW_LUA: &str = r"
local e = denied('GET', KEYS[1]) or denied('PEXPIRE', KEYS[1], ARGV[2])
if e then return redis.error_reply(e) end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

const RELEASE_LUA: &str = r"
local e = denied('GET', KEYS[1]) or denied('DEL', KEYS[1])
if e then return redis.error_reply(e) end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// What the lease script found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    Renewed,
    Taken,
    HeldBy(String),
}

impl Store {
    /// Take the lease if free, renew it if ours (atomically: a lease another tracker took
    /// after ours expired is never overwritten).
    pub fn lease(&mut self, keys: &Keys, owner: &str, ttl: Duration) -> anyhow::Result<Lease> {
        let key = keys.tracker();
        let (code, holder): (i64, String) = self.script(
            eval(LEASE_LUA, &[&key])
                .arg(owner)
                .arg(ttl.as_millis() as u64),
            &key,
        )?;
        Ok(match code {
            1 => Lease::Renewed,
            2 => Lease::Taken,
            _ => Lease::HeldBy(holder),
        })
    }

    /// Extend the lease if it is still ours; never takes it. False when it is not ours.
    pub fn renew(&mut self, keys: &Keys, owner: &str, ttl: Duration) -> anyhow::Result<bool> {
        let key = keys.tracker();
        let n: i64 = self.script(
            eval(RENEW_LUA, &[&key])
                .arg(owner)
                .arg(ttl.as_millis() as u64),
            &key,
        )?;
        Ok(n == 1)
    }

    /// Give the lease up if it is still ours, so that a standby takes over at once.
    pub fn release(&mut self, keys: &Keys, owner: &str) -> anyhow::Result<bool> {
        let key = keys.tracker();
        let n: i64 = self.script(eval(RELEASE_LUA, &[&key]).arg(owner), &key)?;
        Ok(n == 1)
    }
}

/// Renews the leases of one tick from its own connection every third of the lease while the tick
/// waits on Slurm (squeue, sacct and scontrol may take up to QUERY_TIMEOUT each), so a standby
/// never takes over in the middle of a slow tick; a tracker killed with -9 renews nothing and
/// loses its lease within one lease time. Stops (and joins) on drop.
pub struct LeaseKeeper {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LeaseKeeper {
    pub fn start(cfg: Config, keys: Vec<Keys>, owner: String, ttl: Duration) -> LeaseKeeper {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut store: Option<Store> = None;
            let mut keys = keys;
            // Connect only when a tick is slow: most ticks end before the first renewal.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(ttl / 3)
            {
                if store.is_none() {
                    store = Store::connect(&cfg).ok();
                }
                let Some(s) = store.as_mut() else { continue };
                // A lease found lost stays lost (the move script tells the tick); a Redis error
                // is retried at the next renewal.
                keys.retain(|k| s.renew(k, &owner, ttl).unwrap_or(true));
            }
        });
        LeaseKeeper {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
