//! Exit codes, shared by every command (see README "Exit codes").

use std::fmt;

/// How a command ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do, or everything done.
    Success,
    /// Changes are pending (only with --detailed-exitcode / --exit-code).
    Pending,
}

pub const EXIT_SUCCESS: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_PENDING: u8 = 2;
pub const EXIT_USAGE: u8 = 64;

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => EXIT_SUCCESS,
            Outcome::Pending => EXIT_PENDING,
        }
    }
}

/// Marks an error as a usage or configuration problem (exit 64) rather than a
/// failure of the work itself (exit 1).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code for an error that ended a command.
pub fn code_for(error: &anyhow::Error) -> u8 {
    // anyhow looks through every context layer for the marker.
    if error.downcast_ref::<UsageError>().is_some() {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

/// True when the error is stdout closing under us.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
