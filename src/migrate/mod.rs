//! `pgm migrate`: refinery's migration model, run so that a migration and its
//! history row commit together, under a run lock, with statements that refuse
//! a transaction run one by one and journaled.

pub(crate) mod apply;
#[cfg(test)]
mod fixtures;
pub(crate) mod history;
pub(crate) mod plan;
pub(crate) mod render;
pub(crate) mod repair;
pub(crate) mod runner;
pub(crate) mod scaffold;
pub(crate) mod source;
pub mod sql;
pub(crate) mod wait;
pub(crate) mod widen;
