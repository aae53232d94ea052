//! Choosing between kernel versions by measuring them where they will run,
//! keeping the faster per shape. The versions a choice is made between
//! compute the same values (the tests and `gpunet selftest` hold them to
//! that), so the choice changes only the time a step takes. Choices are
//! kept in the kernels' tuning cache (`tune_cache.rs`), so a shape measured
//! once on an adapter is not measured again, in this run or the next.

use super::kernel::Dispatch;
use super::timing::GpuTimer;
use super::{GpuContext, Kernels};
use std::fmt::Debug;

/// Timed runs of each candidate after its warm-up; the best counts.
const RUNS: usize = 3;

/// Another candidate replaces the first (the version the engine used
/// before measuring) only when it is at least this much faster: timings
/// are noisy, and a tie must never trade the known version for another.
const MARGIN: f64 = 0.97;

/// The index of the fastest of `candidates`, launches that compute the same
/// thing with the buffers they will run on: each is run once to warm up
/// (the driver may compile on first use) and then timed `RUNS` times. The
/// first candidate is kept unless another beats it by the margin, or if
/// the device fails to time them.
pub fn fastest_index(ctx: &GpuContext, candidates: &[Dispatch]) -> usize {
    if candidates.len() < 2 {
        return 0;
    }
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
    if times[best] < times[0] * MARGIN {
        best
    } else {
        0
    }
}

/// The fastest of `candidates` (see [`fastest_index`]).
pub fn fastest(ctx: &GpuContext, candidates: Vec<Dispatch>) -> Dispatch {
    let best = fastest_index(ctx, &candidates);
    candidates
        .into_iter()
        .nth(best)
        .expect("at least one candidate")
}

/// `launch(v)` for the version `v` of `versions` that runs `shape` fastest:
/// the one the tuning cache holds for `shape` if it is still among
/// `versions`, else the one measured now (and recorded). `versions[0]` is
/// the version used without measuring, kept on a tie.
pub fn choose<V: Copy + Debug>(
    ctx: &GpuContext,
    kernels: &Kernels,
    shape: &str,
    versions: &[V],
    launch: impl Fn(V) -> Dispatch,
) -> Dispatch {
    assert!(!versions.is_empty(), "{shape}: no version to choose from");
    if versions.len() == 1 {
        return launch(versions[0]);
    }
    let name = |v: &V| format!("{v:?}");
    let cached = {
        let mut cache = kernels.tuning.lock().expect("tuning cache poisoned");
        match cache.choice(shape) {
            Some(choice) => {
                let found = versions.iter().copied().find(|v| name(v) == choice);
                if found.is_none() {
                    // A version this build lacks, or one now refused.
                    cache.forget(shape);
                }
                found
            }
            None => None,
        }
    };
    if let Some(version) = cached {
        return launch(version);
    }
    let candidates: Vec<Dispatch> = versions.iter().map(|&v| launch(v)).collect();
    let best = fastest_index(ctx, &candidates);
    kernels
        .tuning
        .lock()
        .expect("tuning cache poisoned")
        .record_choice(shape.to_string(), name(&versions[best]));
    candidates
        .into_iter()
        .nth(best)
        .expect("at least one candidate")
}
