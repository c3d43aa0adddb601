//! Progress of a concurrent index build, read from
//! pg_stat_progress_create_index on a second session: a bar on a terminal,
//! a line every few seconds otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::db::{self, ConnectionSettings};

pub struct BuildProgress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BuildProgress {
    /// Watches the build running on backend `pid`; `None` when the watcher
    /// session cannot be opened (the build goes on, unwatched).
    pub fn start(settings: &ConnectionSettings, pid: i32, label: String) -> Option<BuildProgress> {
        let mut client = db::connect(settings).ok()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("pgm-index-progress".into())
            .spawn(move || {
                let terminal = std::io::stderr().is_terminal();
                let bar = terminal.then(|| {
                    let bar = indicatif::ProgressBar::new(100);
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "  {prefix} [{bar:30}] {percent:>3}% {msg}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(label.clone());
                    bar
                });
                let started = Instant::now();
                let mut last_line = Instant::now();
                while !thread_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let Ok(Some(row)) = client.query_opt(
                        "SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total \
                         FROM pg_stat_progress_create_index WHERE pid = $1",
                        &[&pid],
                    ) else {
                        continue;
                    };
                    let phase: String = row.get(0);
                    let (blocks_done, blocks_total): (i64, i64) = (row.get(1), row.get(2));
                    let (tuples_done, tuples_total): (i64, i64) = (row.get(3), row.get(4));
                    // Scanning counts blocks, loading counts tuples; other
                    // phases (waiting, sorting, validating) count nothing.
                    let percent = match (tuples_total, blocks_total) {
                        (t, _) if t > 0 => Some(tuples_done * 100 / t),
                        (_, b) if b > 0 && phase.contains("scanning") => {
                            Some(blocks_done * 100 / b)
                        }
                        _ => None,
                    };
                    let phase = phase.trim_start_matches("building index: ").to_owned();
                    match &bar {
                        Some(bar) => {
                            if let Some(percent) = percent {
                                bar.set_position(percent.clamp(0, 100) as u64);
                            }
                            bar.set_message(phase);
                        }
                        None if last_line.elapsed() >= Duration::from_secs(10) => {
                            let done = percent.map(|p| format!(", {p}%")).unwrap_or_default();
                            tracing::info!(
                                "{label}: {phase}{done} ({}s)",
                                started.elapsed().as_secs()
                            );
                            last_line = Instant::now();
                        }
                        None => {}
                    }
                }
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
            })
            .ok()?;
        Some(BuildProgress {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for BuildProgress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
