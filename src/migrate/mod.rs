//! `pgm migrate`: refinery's migration model, run so that a migration and its
//! history row commit together, under a run lock, with statements that refuse
//! a transaction run one by one and journaled.

pub mod apply;
#[cfg(test)]
mod fixtures;
pub mod history;
pub mod plan;
pub mod render;
pub mod runner;
pub mod source;
pub mod sql;
