//! Progress of `inspect`'s analyses: one bar per analysis on stderr while
//! it runs (quiet when stderr is not a terminal, or with `--json`), and the
//! seconds each took, kept for `report.json`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::time::Instant;

/// How long one analysis took.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub analysis: String,
    pub seconds: f64,
}

/// The analyses' bars and their timings.
pub struct Progress {
    quiet: bool,
    pub timings: Vec<Timing>,
}

/// One analysis under way: `inc` as its work advances, then `finish`.
pub struct Stage {
    bar: ProgressBar,
    name: String,
    start: Instant,
}

impl Progress {
    /// Bars on stderr unless `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool) -> Progress {
        Progress {
            quiet: quiet || !std::io::stderr().is_terminal(),
            timings: Vec::new(),
        }
    }

    /// Starts the analysis `name` of `len` steps of work.
    pub fn stage(&self, name: &str, len: usize) -> Stage {
        let bar = if self.quiet {
            ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::hidden())
        } else {
            let bar = ProgressBar::new(len as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "inspect: {msg:32} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        };
        bar.set_message(name.to_string());
        Stage {
            bar,
            name: name.to_string(),
            start: Instant::now(),
        }
    }

    /// Ends `stage`, keeping its time.
    pub fn finish(&mut self, stage: Stage) {
        stage.bar.finish();
        self.timings.push(Timing {
            analysis: stage.name,
            seconds: stage.start.elapsed().as_secs_f64(),
        });
    }
}

impl Stage {
    pub fn inc(&self, steps: usize) {
        self.bar.inc(steps as u64);
    }
}
