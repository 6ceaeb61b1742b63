//! One module per tool: its clap `Args` and `run(Args) -> Result<ExitCode>`.
pub mod cleanup;
pub mod last;
pub mod launch;
pub mod status;

use crate::cli::{ConnArgs, TagArg};
use crate::config::Config;
use crate::keys::Keys;
use crate::store::Store;

/// Load the config, resolve the tag, connect: the start of every one-tag tool.
pub fn open(conn: &ConnArgs, tag: &TagArg) -> anyhow::Result<(Config, Keys, Store)> {
    let cfg = conn.load()?;
    let keys = Keys::new(tag.resolve(&cfg)?);
    let store = Store::connect(&cfg)?;
    Ok((cfg, keys, store))
}

/// Seconds since the epoch as RFC 3339 UTC, the form every timestamp in a job hash takes.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
