//! rj: a ledger of Slurm batch jobs in Redis, as small Unix tools.
//!
//! Every binary is a thin `main` over [`cli::main_with`] and one module of [`cmd`].
pub mod bench;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod exit;
pub mod invariant;
pub mod jobenv;
pub mod keys;
pub mod metrics;
pub mod output;
pub mod process;
pub mod record;
pub mod redis_cluster;
pub mod results_spool;
pub mod slurm;
pub mod spool;
pub mod state;
pub mod store;
pub mod track;
