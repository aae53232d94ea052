// dense.wgsl — the dense layer's own kernel; its three products are
// matmul.wgsl's (forward y = act(x·Wᵀ + b) is matmul_nt with the epilogue).
//
//   bias_grad:  db[n] = Σ_r dz[r, n]  — the bias gradient of y = x·Wᵀ + b is
//               the column sum of dz; dz is (rows, cols).

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
