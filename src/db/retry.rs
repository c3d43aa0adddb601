//! Jittered exponential backoff for statements cancelled by lock_timeout.

use std::time::Duration;

/// The most retries after a lock timeout that pgm accepts (flag or policy):
/// each waits for lock_timeout again plus a backoff of up to 10 s, and
/// everything after the statement waits with it.
pub const MAX_LOCK_RETRIES: u32 = 100;

/// SQLSTATE lock_not_available: what `lock_timeout` raises.
pub const LOCK_NOT_AVAILABLE: &str = "55P03";

pub fn is_lock_timeout(error: &postgres::Error) -> bool {
    error
        .code()
        .is_some_and(|code| code.code() == LOCK_NOT_AVAILABLE)
}

/// The pause before retry number `attempt` (1-based): 200 ms doubling up to
/// 10 s, each scaled by a random factor in [0.5, 1.5) so that several
/// runners do not retry in step.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(200).saturating_mul(1 << attempt.saturating_sub(1).min(6));
    base.min(Duration::from_secs(10))
        .mul_f64(0.5 + fastrand::f64())
}

/// Says that `what` hit a lock timeout and sleeps the backoff before
/// attempt `attempt + 1` of `retries + 1`.
pub fn pause_before_retry(what: &str, attempt: u32, retries: u32) {
    let pause = backoff(attempt);
    tracing::warn!(
        "{what}: lock timeout (attempt {attempt} of {}); retrying in {} ms",
        retries.saturating_add(1),
        pause.as_millis()
    );
    std::thread::sleep(pause);
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn grows_and_is_capped() {
        for _ in 0..100 {
            assert!(
                backoff(1) >= Duration::from_millis(100) && backoff(1) < Duration::from_millis(300)
            );
            assert!(backoff(20) <= Duration::from_secs(15));
        }
    }
}
