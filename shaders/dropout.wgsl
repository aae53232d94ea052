// dropout.wgsl — inverted dropout over `len` values (batch × values per
// example), its identity in evaluation, and its backward pass.
//
//   x, y, mask, dy, dx: (len) f32
//
//   dropout_train:     mask[i] = scale if bits(i) ≥ threshold else 0,
//                      y[i] = x[i] · mask[i]
//                      scale = 1/(1−p), threshold = round(p·2³²): a value
//                      is kept with probability 1 − p (both from the host)
//   dropout_eval:      y[i] = x[i], mask[i] = 1
//   dropout_backward:  forward y = x ⊙ mask  →  dx = dy ⊙ mask
//
// bits(i) is the first word of Philox4x32-10 (Salmon, Moraes, Dror and
// Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011; the
// generator behind PyTorch's CUDA dropout) with
//   counter = (i, step.global_step, stream, 0), key = (seed_lo, seed_hi):
// the same function as `reference::philox4x32_10` on the host, so both
// devices draw the same mask bit for bit, and a resumed run draws the masks
// the uninterrupted run would have. `i` counts from the batch's first row,
// so the padding rows of a short last batch draw masks of their own and
// leave the real rows' alone (their gradient is zero anyway).

struct DropoutParams {
    len: u32,
    threshold: u32,
    scale: f32,
    stream: u32,
    seed_lo: u32,
    seed_hi: u32,
}

@group(0) @binding(0) var<uniform> step: StepInfo;
@group(0) @binding(1) var<uniform> train_p: DropoutParams;
@group(0) @binding(2) var<storage, read> train_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> train_y: array<f32>;
@group(0) @binding(4) var<storage, read_write> train_mask: array<f32>;

@compute @workgroup_size(256)
fn dropout_train(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i >= train_p.len {
        return;
    }
    let counter = vec4<u32>(i, step.global_step, train_p.stream, 0u);
    let bits = philox4x32_10(counter, vec2<u32>(train_p.seed_lo, train_p.seed_hi)).x;
    let m = select(0.0, train_p.scale, bits >= train_p.threshold);
    train_mask[i] = m;
    train_y[i] = train_x[i] * m;
}

@group(0) @binding(0) var<uniform> p: DropoutParams;
@group(0) @binding(1) var<storage, read> eval_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> eval_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> eval_mask: array<f32>;

@compute @workgroup_size(256)
fn dropout_eval(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i < p.len {
        eval_mask[i] = 1.0;
        eval_y[i] = eval_x[i];
    }
}

@group(0) @binding(1) var<storage, read> bwd_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> bwd_dx: array<f32>;

@compute @workgroup_size(256)
fn dropout_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i < p.len {
        bwd_dx[i] = bwd_dy[i] * bwd_mask[i];
    }
}
