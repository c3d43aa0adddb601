//! One command over many databases and tenant schemas (`--fleet`): the
//! targets of the policy's `[fleet]` section, run `--jobs` at once, each
//! isolated (its own connections, run lock and table locks), with one
//! report. The fleet keeps no state of its own.

pub mod expand;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod section;
pub mod targets;
