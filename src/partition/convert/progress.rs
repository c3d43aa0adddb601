//! Progress of a backfill: a bar with rows and ETA on a terminal, a line
//! every 10 s otherwise. The total is the planner's estimate of the table's
//! rows, so the bar can end short of it or pass it.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct CopyProgress {
    bar: Option<ProgressBar>,
    label: String,
    done: std::cell::Cell<u64>,
    total: u64,
    last_line: std::cell::Cell<Instant>,
}

impl CopyProgress {
    /// `done` rows were copied by earlier runs.
    pub fn start(label: String, total: u64, done: i64) -> CopyProgress {
        let done = u64::try_from(done).unwrap_or(0);
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total.max(done));
            bar.set_style(
                ProgressStyle::with_template(
                    "  {prefix} [{bar:30}] {human_pos}/{human_len} rows, {per_sec}, ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(label.clone());
            bar.set_position(done);
            bar
        });
        CopyProgress {
            bar,
            label,
            done: std::cell::Cell::new(done),
            total,
            last_line: std::cell::Cell::new(Instant::now()),
        }
    }

    pub fn advance(&self, rows: i64) {
        let rows = u64::try_from(rows).unwrap_or(0);
        let done = self.done.get() + rows;
        self.done.set(done);
        match &self.bar {
            Some(bar) => {
                if done > bar.length().unwrap_or(0) {
                    bar.set_length(done);
                }
                bar.set_position(done);
            }
            None if self.last_line.get().elapsed() >= Duration::from_secs(10) => {
                tracing::info!("{}: {done} of about {} rows copied", self.label, self.total);
                self.last_line.set(Instant::now());
            }
            None => {}
        }
    }
}

impl Drop for CopyProgress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
