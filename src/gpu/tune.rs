//! Choosing between kernel versions by measuring them where they will run,
//! keeping the faster per shape. The versions a choice is made between
//! compute the same values (the tests hold them to that), so the choice
//! changes only the time a step takes. The conv passes choose through
//! `ops::conv2d::fastest_conv`.

use super::kernel::Dispatch;
use super::timing::GpuTimer;
use super::GpuContext;

/// Timed runs of each candidate after its warm-up; the best counts.
const RUNS: usize = 3;

/// The fastest of `candidates`, launches that compute the same thing with
/// the buffers they will run on: each is run once to warm up (the driver
/// may compile on first use) and then timed `RUNS` times. If the device
/// fails to time them, the first candidate is kept.
pub fn fastest(ctx: &GpuContext, candidates: Vec<Dispatch>) -> Dispatch {
    let timer = GpuTimer::new(ctx);
    let best_time = |d: &Dispatch| -> f64 {
        let one = std::slice::from_ref(d);
        let mut passes: Vec<&[Dispatch]> = vec![one];
        passes.extend(std::iter::repeat_n(one, RUNS));
        match timer.time_passes(ctx, &passes) {
            Ok(times) => times[1..].iter().copied().fold(f64::INFINITY, f64::min),
            Err(_) => f64::INFINITY,
        }
    };
    let times: Vec<f64> = candidates.iter().map(best_time).collect();
    let best = (0..candidates.len())
        .min_by(|&a, &b| times[a].total_cmp(&times[b]))
        .unwrap_or(0);
    candidates
        .into_iter()
        .nth(best)
        .expect("at least one candidate")
}
