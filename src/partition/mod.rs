//! Time-partitioned tables: the policy, the catalog as it is, the calendar,
//! and the planner that turns the three into exact steps.

pub mod calendar;
pub mod catalog;
pub mod convert;
pub mod drain;
pub(crate) mod executor;
pub mod health;
pub mod import;
pub(crate) mod maintain;
pub mod planner;
pub mod policy;
mod progress;
pub mod render;
