// bn.wgsl — batch normalisation (PyTorch's BatchNorm2d after a conv layer,
// BatchNorm1d after a dense one) with an activation fused into its output,
// and its backward pass.
//
//   x, y, dy, dx   (batch, channels, spatial) — NCHW with spatial = H·W
//                  (1 after a dense layer, whose features are the channels)
//   gamma, beta    (channels)       the parameters `weight` and `bias`
//   stats          (2, channels)    saved: mean μ[c], then inv_std[c] = 1/√(σ²[c] + eps)
//   rows           (2) u32          saved: the rows the statistics cover,
//                                   and 1 if they are the batch's (train), 0
//                                   if the running ones (eval)
//   running_mean, running_var (channels), num_batches_tracked (1, as f32)
//
// Only the first step.batch_len rows of a training batch are real (the last
// batch of an epoch may be short; its padding rows are zero): the statistics
// cover m = rows·spatial values per channel, and the padding rows get dx = 0.
//
//   bn_stats (train):  μ = Σ x / m,  σ² = Σ (x − μ)² / m  (biased; two passes)
//                      running_mean ← (1 − momentum)·running_mean + momentum·μ
//                      running_var  ← (1 − momentum)·running_var + momentum·σ²·m/(m − 1)
//                      num_batches_tracked += 1
//   bn_eval_stats:     μ = running_mean, σ² = running_var
//   bn_normalise:      y = act(γ·(x − μ)·inv_std + β)
//   bn_backward_reduce dz = dy ⊙ f'(y) (written over dy), x̂ = (x − μ)·inv_std,
//                      dγ = Σ dz·x̂,  dβ = Σ dz
//   bn_backward_apply  dx = γ·inv_std·(dz − dβ/m − x̂·dγ/m)   (train)
//                      dx = γ·inv_std·dz                      (eval: μ, σ constant)
//
// The two reductions over a channel's m values (bn_stats, bn_backward_reduce)
// run one 256-wide workgroup per channel: each invocation sums a strided
// share of the channel, then a tree reduction in workgroup memory. The
// other two kernels are elementwise.

struct BnParams {
    batch: u32,
    channels: u32,
    spatial: u32,
    act: u32,
    momentum: f32,
    eps: f32,
    // 1 when bn_backward_reduce applies the fused activation's derivative.
    act_grad: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: BnParams;

const BN_WG: u32 = 256u;
var<workgroup> part_a: array<f32, 256>;
var<workgroup> part_b: array<f32, 256>;

// Index of the i-th value of channel c (i over rows × spatial).
fn channel_index(i: u32, c: u32) -> u32 {
    let n = i / p.spatial;
    return (n * p.channels + c) * p.spatial + (i - n * p.spatial);
}

// Sums part_a and part_b over the workgroup into their element 0; every
// invocation must call it, and must not write them again before a barrier.
fn reduce_parts(t: u32) {
    workgroupBarrier();
    for (var stride = BN_WG / 2u; stride > 0u; stride >>= 1u) {
        if t < stride {
            part_a[t] += part_a[t + stride];
            part_b[t] += part_b[t + stride];
        }
        workgroupBarrier();
    }
}

@group(0) @binding(1) var<uniform> step: StepInfo;
@group(0) @binding(2) var<storage, read> st_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> st_stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> st_rows: array<u32>;
@group(0) @binding(5) var<storage, read_write> st_running_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> st_running_var: array<f32>;
@group(0) @binding(7) var<storage, read_write> st_tracked: array<f32>;

// One workgroup per channel (workgroup_id.x).
@compute @workgroup_size(256)
fn bn_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let c = wg.x;
    let rows = min(step.batch_len, p.batch);
    let m = rows * p.spatial;

    var sum = 0.0;
    for (var i = t; i < m; i += BN_WG) {
        sum += st_x[channel_index(i, c)];
    }
    part_a[t] = sum;
    part_b[t] = 0.0;
    reduce_parts(t);
    let mean = part_a[0] / f32(m);
    workgroupBarrier();

    var squares = 0.0;
    for (var i = t; i < m; i += BN_WG) {
        let d = st_x[channel_index(i, c)] - mean;
        squares += d * d;
    }
    part_a[t] = squares;
    reduce_parts(t);
    let variance = part_a[0] / f32(m);

    if t == 0u {
        st_stats[c] = mean;
        st_stats[p.channels + c] = 1.0 / sqrt(variance + p.eps);
        // PyTorch refuses a training batch of one value per channel; here
        // the running variance then takes the biased one (0).
        var unbiased = variance;
        if m > 1u {
            unbiased = variance * f32(m) / f32(m - 1u);
        }
        st_running_mean[c] = (1.0 - p.momentum) * st_running_mean[c] + p.momentum * mean;
        st_running_var[c] = (1.0 - p.momentum) * st_running_var[c] + p.momentum * unbiased;
        if c == 0u {
            st_rows[0] = rows;
            st_rows[1] = 1u;
            st_tracked[0] = st_tracked[0] + 1.0;
        }
    }
}

@group(0) @binding(1) var<storage, read> ev_running_mean: array<f32>;
@group(0) @binding(2) var<storage, read> ev_running_var: array<f32>;
@group(0) @binding(3) var<storage, read_write> ev_stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> ev_rows: array<u32>;

@compute @workgroup_size(64)
fn bn_eval_stats(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if c >= p.channels {
        return;
    }
    ev_stats[c] = ev_running_mean[c];
    ev_stats[p.channels + c] = 1.0 / sqrt(ev_running_var[c] + p.eps);
    if c == 0u {
        ev_rows[0] = p.batch;
        ev_rows[1] = 0u;
    }
}

@group(0) @binding(1) var<storage, read> nm_x: array<f32>;
@group(0) @binding(2) var<storage, read> nm_stats: array<f32>;
@group(0) @binding(3) var<storage, read> nm_gamma: array<f32>;
@group(0) @binding(4) var<storage, read> nm_beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> nm_y: array<f32>;

@compute @workgroup_size(256)
fn bn_normalise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = linear_index(gid, groups);
    if idx >= p.batch * p.channels * p.spatial {
        return;
    }
    let c = (idx / p.spatial) % p.channels;
    let x_hat = (nm_x[idx] - nm_stats[c]) * nm_stats[p.channels + c];
    nm_y[idx] = activate(nm_gamma[c] * x_hat + nm_beta[c], p.act);
}

@group(0) @binding(1) var<storage, read> br_x: array<f32>;
@group(0) @binding(2) var<storage, read> br_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> br_dy: array<f32>;
@group(0) @binding(4) var<storage, read> br_stats: array<f32>;
@group(0) @binding(5) var<storage, read> br_rows: array<u32>;
@group(0) @binding(6) var<storage, read_write> br_dgamma: array<f32>;
@group(0) @binding(7) var<storage, read_write> br_dbeta: array<f32>;

// One workgroup per channel (workgroup_id.x).
@compute @workgroup_size(256)
fn bn_backward_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let c = wg.x;
    let m = min(br_rows[0], p.batch) * p.spatial;
    let mean = br_stats[c];
    let inv_std = br_stats[p.channels + c];
    var sum_dz = 0.0;
    var sum_dz_x_hat = 0.0;
    for (var i = t; i < m; i += BN_WG) {
        let at = channel_index(i, c);
        var dz = br_dy[at];
        if p.act_grad != 0u {
            dz *= activation_grad(br_y[at], p.act);
            br_dy[at] = dz;
        }
        sum_dz += dz;
        sum_dz_x_hat += dz * ((br_x[at] - mean) * inv_std);
    }
    part_a[t] = sum_dz;
    part_b[t] = sum_dz_x_hat;
    reduce_parts(t);
    if t == 0u {
        br_dgamma[c] = part_b[0];
        br_dbeta[c] = part_a[0];
    }
}

@group(0) @binding(1) var<storage, read> ba_x: array<f32>;
@group(0) @binding(2) var<storage, read> ba_dz: array<f32>;
@group(0) @binding(3) var<storage, read> ba_stats: array<f32>;
@group(0) @binding(4) var<storage, read> ba_rows: array<u32>;
@group(0) @binding(5) var<storage, read> ba_gamma: array<f32>;
@group(0) @binding(6) var<storage, read> ba_dgamma: array<f32>;
@group(0) @binding(7) var<storage, read> ba_dbeta: array<f32>;
@group(0) @binding(8) var<storage, read_write> ba_dx: array<f32>;

@compute @workgroup_size(256)
fn bn_backward_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = linear_index(gid, groups);
    if idx >= p.batch * p.channels * p.spatial {
        return;
    }
    let c = (idx / p.spatial) % p.channels;
    let n = idx / (p.spatial * p.channels);
    let rows = min(ba_rows[0], p.batch);
    if n >= rows {
        ba_dx[idx] = 0.0;
        return;
    }
    let inv_std = ba_stats[p.channels + c];
    let scale = ba_gamma[c] * inv_std;
    if ba_rows[1] == 0u {
        ba_dx[idx] = scale * ba_dz[idx];
        return;
    }
    let m = f32(rows * p.spatial);
    let x_hat = (ba_x[idx] - ba_stats[c]) * inv_std;
    ba_dx[idx] = scale * (ba_dz[idx] - ba_dbeta[c] / m - x_hat * (ba_dgamma[c] / m));
}
