// gap.wgsl — global average pooling over NCHW activations and its backward.
//
//   x (batch, channels, h, w)  →  y (batch, channels); planes = batch·channels,
//   area = h·w, inv_area = 1/area (from the host, so both devices scale alike)
//
//   gap_forward:   y[n,c] = (Σ_{i<area} x[n,c,i]) · inv_area, summed in index
//                  order as the CPU reference sums (one invocation per plane)
//   gap_backward:  forward y[n,c] = Σ_i x[n,c,i] / area
//                  →  dx[n,c,i] = dy[n,c] · inv_area (one invocation per value)

struct GapParams {
    planes: u32,
    area: u32,
    inv_area: f32,
}

@group(0) @binding(0) var<uniform> p: GapParams;

@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(256)
fn gap_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let plane = linear_index(gid, groups);
    if plane >= p.planes {
        return;
    }
    let base = plane * p.area;
    var sum = 0.0;
    for (var i = 0u; i < p.area; i++) {
        sum += fwd_x[base + i];
    }
    fwd_y[plane] = sum * p.inv_area;
}

@group(0) @binding(1) var<storage, read> bwd_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> bwd_dx: array<f32>;

@compute @workgroup_size(256)
fn gap_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i < p.planes * p.area {
        bwd_dx[i] = bwd_dy[i / p.area] * p.inv_area;
    }
}
