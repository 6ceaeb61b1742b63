//! One module per tool: its clap `Args` and `run(Args) -> Result<ExitCode>`.
pub mod cleanup;
pub mod last;
pub mod launch;
pub mod put;
pub mod rbench;
pub mod status;
pub mod track;
pub mod wait;

use crate::cli::{ConnArgs, TagArg};
/// Kept here for the tools that call `super::now_rfc3339()` (launch, track, rbench); new code
/// uses `crate::clock`.
pub use crate::clock::now_rfc3339;
use crate::config::Config;
use crate::keys::Keys;
use crate::store::Store;

/// One binary of the toolbox, as the man pages, completions and ecosystem tests see it.
pub struct Tool {
    /// The binary's name, as in `src/bin/<name>.rs`.
    pub name: String,
    /// Its clap definition, the one `--help` prints.
    pub command: clap::Command,
    /// The EXAMPLES text of `--help` and the man page.
    pub examples: &'static str,
}

impl Tool {
    fn of<A: clap::CommandFactory>(examples: &'static str) -> Tool {
        let command = A::command();
        Tool {
            name: command.get_name().to_string(),
            command,
            examples,
        }
    }
}

/// Every binary, one line each: a binary missing here gets no man page or completions, and the
/// ecosystem test says so.
pub fn all() -> Vec<Tool> {
    vec![
        Tool::of::<launch::Args>(launch::EXAMPLES),
        Tool::of::<status::Args>(status::EXAMPLES),
        Tool::of::<last::Args>(last::EXAMPLES),
        Tool::of::<put::Args>(put::EXAMPLES),
        Tool::of::<cleanup::Args>(cleanup::EXAMPLES),
        Tool::of::<track::Args>(track::EXAMPLES),
        Tool::of::<wait::Args>(wait::EXAMPLES),
        Tool::of::<rbench::Args>(rbench::EXAMPLES),
    ]
}

/// Load the config, resolve the tag, connect (on a Redis Cluster to the master of the tag's
/// slot): the start of every one-tag tool.
pub fn open(conn: &ConnArgs, tag: &TagArg) -> anyhow::Result<(Config, Keys, Store)> {
    let cfg = conn.load()?;
    let keys = Keys::new(tag.resolve(&cfg)?);
    let store = Store::connect_tag(&cfg, &keys)?;
    Ok((cfg, keys, store))
}

/// This machine's host name, for job records and the tracker lease ("" if unknown).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}
