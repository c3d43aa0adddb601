//! Runs one piece of work per target, `jobs` at once, each on its own
//! thread with its own connections: canaries first, then the rest; a
//! failure stops the run only with `fail_fast`, or among the canaries.
//! The schedule keeps nothing but memory: a run killed at any instant
//! leaves only what each target's own command leaves, which its next run
//! converges.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::progress::Progress;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub jobs: usize,
    pub fail_fast: bool,
    /// Targets run (and required to succeed) before any other starts.
    pub canary: usize,
}

/// Why a target was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRun {
    CanaryFailed,
    FailFast,
}

impl std::fmt::Display for NotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotRun::CanaryFailed => "not run: a canary failed",
            NotRun::FailFast => "not run: --fail-fast stopped the run after a failure",
        })
    }
}

/// The work of each target, by index: its result, or why it did not run.
/// `failed` tells a failure from the result.
pub fn run<T: Send>(
    names: &[String],
    schedule: Schedule,
    work: &(dyn Fn(usize) -> T + Sync),
    failed: &(dyn Fn(&T) -> bool + Sync),
) -> Vec<Result<T, NotRun>> {
    let count = names.len();
    let results: Mutex<Vec<Option<Result<T, NotRun>>>> =
        Mutex::new((0..count).map(|_| None).collect());
    let progress = Progress::start(count);
    let canaries = schedule.canary.min(count);
    let batch = Batch {
        names,
        work,
        failed,
        progress: &progress,
        results: &results,
        stop: AtomicBool::new(false),
        stop_on_failure: schedule.fail_fast,
    };
    batch.run(0..canaries, schedule.jobs);
    let canary_failed = batch.stop.load(Ordering::Relaxed) || batch.any_failed(0..canaries);
    if canary_failed {
        batch.mark_not_run(canaries..count, NotRun::CanaryFailed);
    } else {
        batch.run(canaries..count, schedule.jobs);
        batch.mark_not_run(canaries..count, NotRun::FailFast);
    }
    progress.finish();
    results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .into_iter()
        .map(|result| result.unwrap_or(Err(NotRun::FailFast)))
        .collect()
}

struct Batch<'a, T> {
    names: &'a [String],
    work: &'a (dyn Fn(usize) -> T + Sync),
    failed: &'a (dyn Fn(&T) -> bool + Sync),
    progress: &'a Progress,
    results: &'a Mutex<Vec<Option<Result<T, NotRun>>>>,
    stop: AtomicBool,
    stop_on_failure: bool,
}

impl<T: Send> Batch<'_, T> {
    /// The targets of `range`, `jobs` at once, each taken by the next free
    /// worker, until the range ends or a failure stops the run.
    fn run(&self, range: std::ops::Range<usize>, jobs: usize) {
        let next = AtomicUsize::new(range.start);
        let workers = jobs.clamp(1, range.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while !self.stop.load(Ordering::Relaxed) {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= range.end {
                            break;
                        }
                        self.run_one(index);
                    }
                });
            }
        });
    }

    fn run_one(&self, index: usize) {
        let name = &self.names[index];
        self.progress.started();
        let result = (self.work)(index);
        let failed = (self.failed)(&result);
        if failed && self.stop_on_failure {
            self.stop.store(true, Ordering::Relaxed);
        }
        self.progress.finished(name, failed);
        self.lock()[index] = Some(Ok(result));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Result<T, NotRun>>>> {
        self.results
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn any_failed(&self, range: std::ops::Range<usize>) -> bool {
        self.lock()[range]
            .iter()
            .any(|result| matches!(result, Some(Ok(done)) if (self.failed)(done)))
    }

    fn mark_not_run(&self, range: std::ops::Range<usize>, why: NotRun) {
        for slot in &mut self.lock()[range] {
            slot.get_or_insert(Err(why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("t{i}")).collect()
    }

    #[test]
    fn a_failing_target_does_not_stop_the_others() {
        let schedule = Schedule {
            jobs: 3,
            fail_fast: false,
            canary: 0,
        };
        let results = run(&names(10), schedule, &|i| i != 4, &|ok| !ok);
        assert_eq!(results.len(), 10);
        assert_eq!(results.iter().filter(|r| matches!(r, Ok(true))).count(), 9);
        assert!(matches!(results[4], Ok(false)));
    }

    #[test]
    fn a_failing_canary_stops_the_run() {
        let schedule = Schedule {
            jobs: 2,
            fail_fast: false,
            canary: 3,
        };
        let results = run(&names(10), schedule, &|i| i != 1, &|ok| !ok);
        assert!(results[..3].iter().all(Result::is_ok));
        assert!(
            results[3..]
                .iter()
                .all(|r| matches!(r, Err(NotRun::CanaryFailed)))
        );
    }

    #[test]
    fn fail_fast_starts_nothing_after_a_failure() {
        let schedule = Schedule {
            jobs: 1,
            fail_fast: true,
            canary: 0,
        };
        let results = run(&names(5), schedule, &|i| i != 1, &|ok| !ok);
        assert!(matches!(results[1], Ok(false)));
        assert!(
            results[2..]
                .iter()
                .all(|r| matches!(r, Err(NotRun::FailFast)))
        );
    }
}
