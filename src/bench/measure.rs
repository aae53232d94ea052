//! Repeated timing with a bounded cost: a warm-up run, then runs until the
//! budget is spent, reporting the median.

use super::Gpu;
use crate::gpu::Dispatch;
use anyhow::{Context as _, Result};
use std::time::Instant;

/// How long to keep repeating one measurement.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Keep starting runs until this many seconds have passed.
    pub seconds: f64,
    /// Never more than this many timed runs.
    pub max_runs: usize,
}

/// Seconds per run of something measured: the median of the timed runs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub seconds: f64,
}

/// A first run at least this long (and longer than the budget) is taken as
/// the measurement: one-time costs such as a software adapter compiling the
/// shader on first use are small beside it, and a second run would double
/// the bench's time. Shorter first runs are only a warm-up.
const LONG_FIRST_RUN_SECONDS: f64 = 2.0;

/// Times `run_once` (which returns the seconds of one run). The first run
/// warms up; unless it was long (see `LONG_FIRST_RUN_SECONDS`), it is
/// dropped and runs repeat until the budget is spent, at least once.
pub fn repeat(budget: Budget, mut run_once: impl FnMut() -> Result<f64>) -> Result<Timing> {
    let started = Instant::now();
    let warm_up = run_once()?;
    if warm_up >= budget.seconds.max(LONG_FIRST_RUN_SECONDS) {
        return Ok(Timing { seconds: warm_up });
    }
    let mut runs = Vec::new();
    loop {
        runs.push(run_once()?);
        let spent = started.elapsed().as_secs_f64();
        if spent >= budget.seconds || runs.len() >= budget.max_runs.max(1) {
            break;
        }
    }
    runs.sort_by(f64::total_cmp);
    Ok(Timing {
        seconds: runs[runs.len() / 2],
    })
}

/// Times a host function by the wall clock.
pub fn cpu(budget: Budget, mut work: impl FnMut()) -> Result<Timing> {
    repeat(budget, || {
        let start = Instant::now();
        work();
        Ok(start.elapsed().as_secs_f64())
    })
}

/// Times one compute pass of `dispatches` with the GPU's timer.
pub fn gpu(gpu: &Gpu, budget: Budget, dispatches: &[Dispatch]) -> Result<Timing> {
    gpu.checked(|| {
        repeat(budget, || {
            let times = gpu.timer.time_passes(&gpu.ctx, &[dispatches])?;
            times.first().copied().context("the timer returned no time")
        })
    })
}

/// Floating-point operations (or bytes) per second, in units of 10⁹.
pub fn giga_per_second(amount: f64, timing: Timing) -> f64 {
    amount / timing.seconds.max(1e-12) / 1e9
}
