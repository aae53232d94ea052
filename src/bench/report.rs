//! What the bench prints: a table per part, written row by row as each is
//! measured (stdout, or stderr with `--json`), a progress bar on stderr, and
//! with `--json` every figure as one JSON object on stdout at the end.

use super::{conv, matmul, softmax, train};
use crate::gpu::{GpuContext, TimingSource};
use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Serialize, Serializer};
use std::io::Write;

/// One figure of a table: measured, skipped by a size limit, or without an
/// adapter to measure it on. In JSON, a number or null.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Figure {
    Value(f64),
    /// Not run because the size is above this limit.
    Skipped {
        above: usize,
    },
    /// Not run because one run was expected to take this many seconds,
    /// more than `--max-run-time`.
    TooSlow {
        expected_seconds: f64,
    },
    NoGpu,
}

impl Figure {
    pub fn value(self) -> Option<f64> {
        match self {
            Figure::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The table cell: the value written by `format`, "skipped (> N)",
    /// "skipped (~S s)" or "-".
    pub fn cell(self, format: fn(f64) -> String) -> String {
        match self {
            Figure::Value(v) => format(v),
            Figure::Skipped { above } => format!("skipped (> {above})"),
            Figure::TooSlow { expected_seconds } => format!("skipped (~{expected_seconds:.0} s)"),
            Figure::NoGpu => "-".to_string(),
        }
    }
}

impl Serialize for Figure {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

/// `numerator / denominator` when both were measured.
pub fn ratio(numerator: Figure, denominator: Figure) -> Option<f64> {
    Some(numerator.value()? / denominator.value()?)
}

/// A rate (GFLOP/s, GB/s, images/s) to about three significant digits.
pub fn rate(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A ratio such as a speedup, "-" when either side is missing.
pub fn times(ratio: Option<f64>) -> String {
    match ratio {
        Some(r) if r >= 10.0 => format!("{r:.1}×"),
        Some(r) => format!("{r:.2}×"),
        None => "-".to_string(),
    }
}

/// Columns of a table: the header and width of each; the first column is
/// aligned left, the others right.
pub struct Table {
    pub columns: &'static [(&'static str, usize)],
}

impl Table {
    fn header(&self) -> String {
        let titles: Vec<String> = self.columns.iter().map(|(t, _)| t.to_string()).collect();
        self.row(&titles)
    }

    fn row(&self, cells: &[String]) -> String {
        let mut line = String::new();
        for (i, (cell, (_, width))) in cells.iter().zip(self.columns).enumerate() {
            if i == 0 {
                line.push_str(&format!("{cell:<width$}"));
            } else {
                line.push_str(&format!("  {cell:>width$}"));
            }
        }
        line.trim_end().to_string()
    }
}

/// Everything measured, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Results {
    /// The adapter the GPU figures come from; null without one.
    pub adapter: Option<String>,
    /// Why there are no GPU figures, when there are none.
    pub gpu_error: Option<String>,
    /// True when the adapter is a software rasteriser (lavapipe, llvmpipe).
    pub software_adapter: bool,
    /// "timestamps" or "wall_clock"; null without an adapter.
    pub timing: Option<TimingSource>,
    pub cpu: &'static str,
    pub matmul: Vec<matmul::MatmulRow>,
    pub conv: Vec<conv::ConvRow>,
    pub softmax: Vec<softmax::SoftmaxRow>,
    pub train: Vec<train::TrainRow>,
    /// Time to first step, cold and warm.
    pub startup: Vec<super::startup::StartupRow>,
    /// Time to 99% test accuracy.
    pub accuracy: Vec<super::startup::AccuracyRow>,
    /// Wall time of the whole bench.
    pub seconds: f64,
}

/// How the CPU reference runs.
const CPU_DESCRIPTION: &str = "the reference (src/cpu), one thread";

impl Results {
    /// Empty results for a run on `gpu` (the context and how it is timed),
    /// or on the CPU alone.
    pub fn new(gpu: Option<(&GpuContext, TimingSource)>) -> Results {
        Results {
            adapter: gpu.map(|(ctx, _)| ctx.describe()),
            gpu_error: None,
            software_adapter: gpu.is_some_and(|(ctx, _)| !ctx.is_hardware()),
            timing: gpu.map(|(_, source)| source),
            cpu: CPU_DESCRIPTION,
            matmul: Vec::new(),
            conv: Vec::new(),
            softmax: Vec::new(),
            train: Vec::new(),
            startup: Vec::new(),
            accuracy: Vec::new(),
            seconds: 0.0,
        }
    }
}

/// Writes the human text and keeps the progress bar.
pub struct Reporter {
    json: bool,
    out: Box<dyn Write>,
    bar: ProgressBar,
}

impl Reporter {
    /// A reporter for a run of `rows` table rows; the text goes to stderr
    /// when `json` (stdout is for the JSON then).
    pub fn new(json: bool, rows: usize) -> Reporter {
        let out: Box<dyn Write> = if json {
            Box::new(crate::output::stderr())
        } else {
            Box::new(crate::output::stdout())
        };
        let bar = ProgressBar::new(rows as u64);
        bar.set_style(
            ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Reporter { json, out, bar }
    }

    /// Writes one line of text above the progress bar.
    pub fn line(&mut self, text: &str) -> Result<()> {
        let out = &mut self.out;
        self.bar
            .suspend(|| writeln!(out, "{text}"))
            .context("writing the bench output")
    }

    /// The lines that say what runs the figures and how they are timed.
    pub fn header(&mut self, results: &Results) -> Result<()> {
        self.line("gpunet bench")?;
        match (&results.adapter, &results.gpu_error) {
            (Some(adapter), _) => self.line(&format!("adapter: {adapter}"))?,
            (None, Some(error)) => {
                self.line(&format!("GPU: not found, CPU figures only ({error})"))?
            }
            (None, None) => self.line("GPU: not found, CPU figures only")?,
        }
        let timing = results
            .timing
            .map_or("wall clock (CPU only)", TimingSource::describe);
        self.line(&format!("timing: {timing}; each figure is the median run"))?;
        self.line(&format!("CPU: {CPU_DESCRIPTION}"))?;
        if results.software_adapter {
            self.line(
                "note: the adapter is a software rasteriser, so its \"GPU\" figures are \
                 this CPU running the shaders",
            )?;
        }
        Ok(())
    }

    /// Starts a part: a blank line, its title and the table's header.
    pub fn section(&mut self, title: &str, table: &Table) -> Result<()> {
        self.line("")?;
        self.line(title)?;
        self.line(&table.header())
    }

    /// Shows what is being measured now.
    pub fn working_on(&self, what: String) {
        self.bar.set_message(what);
    }

    /// Prints a finished row and moves the progress bar on.
    pub fn row(&mut self, table: &Table, cells: &[String]) -> Result<()> {
        self.line(&table.row(cells))?;
        self.bar.inc(1);
        Ok(())
    }

    /// Clears the progress bar, says how long the run took, and with
    /// `--json` prints the results on stdout.
    pub fn finish(mut self, results: &Results) -> Result<()> {
        self.bar.finish_and_clear();
        self.line("")?;
        self.line(&format!("bench finished in {:.1} s", results.seconds))?;
        if self.json {
            let text = serde_json::to_string_pretty(results).context("encoding the results")?;
            let mut stdout = crate::output::stdout();
            writeln!(stdout, "{text}")?;
            stdout.flush()?;
        }
        self.out.flush()?;
        Ok(())
    }
}
