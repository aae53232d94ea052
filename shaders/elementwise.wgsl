// elementwise.wgsl — the dense layer's backward helpers.
//
//   activation_backward:  dz = dy ⊙ f'(x), with f' written in the layer's
//                         output y = f(x) (see activation_grad); dy (len) is
//                         overwritten with dz in place.
//   bias_grad:            db[n] = Σ_r dz[r, n]  (the bias gradient of
//                         y = x·Wᵀ + b is the column sum of dz); dz is (rows, cols).

struct ActivationParams {
    len: u32,
    act: u32,
}

@group(0) @binding(0) var<uniform> act_p: ActivationParams;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> dy: array<f32>;

@compute @workgroup_size(256)
fn activation_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i < act_p.len {
        dy[i] = dy[i] * activation_grad(y[i], act_p.act);
    }
}

struct BiasGradParams {
    rows: u32,
    cols: u32,
}

@group(0) @binding(0) var<uniform> bias_p: BiasGradParams;
@group(0) @binding(1) var<storage, read> dz: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;

@compute @workgroup_size(64)
fn bias_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    if col >= bias_p.cols {
        return;
    }
    var sum = 0.0;
    for (var r = 0u; r < bias_p.rows; r++) {
        sum += dz[r * bias_p.cols + col];
    }
    db[col] = sum;
}
