//! pgm: migrations at deploy time and time-partitioned tables from cron, on
//! production PostgreSQL, without queueing DDL in front of live traffic.

pub mod cli;
mod commands;
pub mod config;
pub mod db;
mod demo;
pub mod duration;
pub mod exit;
pub mod fleet;
pub mod lint;
pub mod location;
pub mod logging;
pub mod migrate;
pub mod os;
pub mod partition;
pub mod pg_version;
pub mod sandbox;
mod suggest;
pub mod units;

pub use commands::run;
