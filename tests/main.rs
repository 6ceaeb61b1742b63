//! The one integration-test crate: real redis-server per test, real Slurm testbed.
mod acl;
mod cleanup;
mod compat;
mod config;
mod ecosystem;
mod examples;
mod last;
mod launch;
mod put;
mod rbench;
mod slurm_env;
mod status;
mod store;
mod tls;
mod track;
mod util;
