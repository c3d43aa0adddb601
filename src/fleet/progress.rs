//! Progress across a fleet's targets, on stderr: a bar on a terminal
//! (done, failed, running), a log line per finished target otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;

pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    counts: Mutex<Counts>,
    total: usize,
}

#[derive(Default)]
struct Counts {
    done: usize,
    failed: usize,
    running: usize,
}

impl Progress {
    pub fn start(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("  fleet [{bar:30}] {pos}/{len} {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        Progress {
            bar,
            counts: Mutex::new(Counts::default()),
            total,
        }
    }

    pub fn started(&self) {
        let mut counts = self.lock();
        counts.running += 1;
        self.show(&counts);
    }

    pub fn finished(&self, name: &str, failed: bool) {
        let mut counts = self.lock();
        counts.running -= 1;
        counts.done += 1;
        counts.failed += usize::from(failed);
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                self.show(&counts);
            }
            None => tracing::info!(
                "{name}: {} ({}/{} done, {} failed, {} running)",
                if failed { "FAILED" } else { "ok" },
                counts.done,
                self.total,
                counts.failed,
                counts.running
            ),
        }
    }

    fn show(&self, counts: &Counts) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "done, {} failed, {} running",
                counts.failed, counts.running
            ));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
