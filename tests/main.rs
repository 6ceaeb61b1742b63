//! The one integration-test crate: real redis-server per test, real Slurm testbed.
mod util;
mod ecosystem;
mod config;
mod status;
mod last;
mod cleanup;
mod launch;
mod rbench;
mod track;
mod compat;
