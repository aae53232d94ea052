//! Batch normalisation on the CPU: the reference for bn.wgsl. Activations
//! are (rows, C, S) with S = H·W (1 after a dense layer); a channel's
//! statistics are over its rows·S values. `stats` is (2, C): the mean, then
//! the inverse standard deviation.
//!
//! The sums over a channel go in the order bn.wgsl's workgroups add them
//! (`workgroup_sum`), so that both devices give the same bits and a seed
//! the same weights. This matters more here than elsewhere: the gradient
//! through batch norm is a difference of nearly equal terms
//! (dz − mean(dz) − x̂·mean(dz·x̂)), which turns a last-bit difference in a
//! sum into a visible one in the weights after a few steps.

use super::BatchNorm;

/// Invocations in one of bn.wgsl's reducing workgroups (`BN_WG`).
pub const WORKGROUP: usize = 256;

/// Σ_{i<m} value(i) in bn.wgsl's order: invocation t adds i = t, t + 256,
/// … in turn; then the 256 partial sums are added in a tree, partial t
/// taking partial t + s for s = 128, 64, …, 1.
pub fn workgroup_sum(m: usize, value: impl Fn(usize) -> f32) -> f32 {
    let mut partial = [0.0f32; WORKGROUP];
    for (t, sum) in partial.iter_mut().enumerate() {
        for i in (t..m).step_by(WORKGROUP) {
            *sum += value(i);
        }
    }
    let mut stride = WORKGROUP / 2;
    while stride > 0 {
        for t in 0..stride {
            partial[t] += partial[t + stride];
        }
        stride /= 2;
    }
    partial[0]
}

/// Index of the i-th value of channel c (i over rows × S) in (rows, C, S).
fn channel_index(bn: &BatchNorm, i: usize, c: usize) -> usize {
    let spatial = bn.shape.h * bn.shape.w;
    let n = i / spatial;
    (n * bn.shape.c + c) * spatial + i % spatial
}

/// The indices of channel c's values in a (rows, C, S) array.
fn channel(bn: &BatchNorm, rows: usize, c: usize) -> impl Iterator<Item = usize> {
    let (channels, spatial) = (bn.shape.c, bn.shape.h * bn.shape.w);
    (0..rows).flat_map(move |n| {
        let start = (n * channels + c) * spatial;
        start..start + spatial
    })
}

/// μ[c] = Σ x / m and the biased σ²[c] = Σ (x − μ)² / m, m = rows·S.
pub fn batch_statistics(bn: &BatchNorm, x: &[f32], rows: usize) -> (Vec<f32>, Vec<f32>) {
    let m = rows * bn.shape.h * bn.shape.w;
    (0..bn.shape.c)
        .map(|c| {
            let at = |i| x[channel_index(bn, i, c)];
            let mean = workgroup_sum(m, at) / m as f32;
            let variance = workgroup_sum(m, |i| (at(i) - mean) * (at(i) - mean)) / m as f32;
            (mean, variance)
        })
        .unzip()
}

/// stats = (μ, 1/√(σ² + eps)).
pub fn stats_of(bn: &BatchNorm, mean: &[f32], variance: &[f32], stats: &mut [f32]) {
    let c = bn.shape.c;
    stats[..c].copy_from_slice(mean);
    for (inv_std, &v) in stats[c..2 * c].iter_mut().zip(variance) {
        *inv_std = 1.0 / (v + bn.eps).sqrt();
    }
}

/// PyTorch's update after a training batch of m values per channel:
/// running_mean ← (1 − momentum)·running_mean + momentum·μ,
/// running_var ← (1 − momentum)·running_var + momentum·σ²·m/(m − 1) (the
/// unbiased variance; the biased one, 0, when m = 1, where PyTorch refuses
/// to train), num_batches_tracked += 1.
pub fn update_running(
    bn: &BatchNorm,
    mean: &[f32],
    variance: &[f32],
    m: usize,
    running_mean: &mut [f32],
    running_var: &mut [f32],
    num_batches_tracked: &mut f32,
) {
    let k = bn.momentum;
    for c in 0..bn.shape.c {
        let unbiased = if m > 1 {
            variance[c] * m as f32 / (m - 1) as f32
        } else {
            variance[c]
        };
        running_mean[c] = (1.0 - k) * running_mean[c] + k * mean[c];
        running_var[c] = (1.0 - k) * running_var[c] + k * unbiased;
    }
    *num_batches_tracked += 1.0;
}

/// y = act(γ·(x − μ)·inv_std + β) over `rows` examples.
pub fn normalise(
    bn: &BatchNorm,
    x: &[f32],
    stats: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    rows: usize,
) {
    let c = bn.shape.c;
    for ch in 0..c {
        let (mean, inv_std) = (stats[ch], stats[c + ch]);
        for i in channel(bn, rows, ch) {
            let x_hat = (x[i] - mean) * inv_std;
            y[i] = bn.activation.apply(gamma[ch] * x_hat + beta[ch]);
        }
    }
}

/// dγ[c] = Σ dz·x̂ and dβ[c] = Σ dz over `rows` examples.
pub fn backward_reduce(
    bn: &BatchNorm,
    x: &[f32],
    dz: &[f32],
    stats: &[f32],
    grad_gamma: &mut [f32],
    grad_beta: &mut [f32],
    rows: usize,
) {
    let (c, m) = (bn.shape.c, rows * bn.shape.h * bn.shape.w);
    for ch in 0..c {
        let (mean, inv_std) = (stats[ch], stats[c + ch]);
        let at = |i| channel_index(bn, i, ch);
        grad_gamma[ch] = workgroup_sum(m, |i| dz[at(i)] * ((x[at(i)] - mean) * inv_std));
        grad_beta[ch] = workgroup_sum(m, |i| dz[at(i)]);
    }
}

/// dx = γ·inv_std·(dz − dβ/m − x̂·dγ/m) when the statistics were the
/// batch's (`batch_stats`), γ·inv_std·dz when they were constants.
#[allow(clippy::too_many_arguments)]
pub fn backward_apply(
    bn: &BatchNorm,
    x: &[f32],
    dz: &[f32],
    stats: &[f32],
    gamma: &[f32],
    grad_gamma: &[f32],
    grad_beta: &[f32],
    dx: &mut [f32],
    rows: usize,
    batch_stats: bool,
) {
    let c = bn.shape.c;
    let m = (rows * bn.shape.h * bn.shape.w) as f32;
    for ch in 0..c {
        let (mean, inv_std) = (stats[ch], stats[c + ch]);
        let scale = gamma[ch] * inv_std;
        for i in channel(bn, rows, ch) {
            dx[i] = if batch_stats {
                let x_hat = (x[i] - mean) * inv_std;
                scale * (dz[i] - grad_beta[ch] / m - x_hat * (grad_gamma[ch] / m))
            } else {
                scale * dz[i]
            };
        }
    }
}
