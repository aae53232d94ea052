// pool.wgsl — max-pooling over NCHW activations and its backward pass.
//
//   x (batch, channels, in_h, in_w)  →  y, argmax (batch, channels, out_h, out_w)
//
//   maxpool_forward:   y[n,c,i,j] = max_{u,v < size} x[n, c, i·s+u, j·s+v]
//                      argmax[n,c,i,j] = the winner's index h·in_w + w within
//                      its plane (the first one on ties)
//   maxpool_backward:  dx[n,c,h,w] = Σ dy[n,c,i,j] over the windows (i,j)
//                      containing (h,w) whose argmax is (h,w) — the gradient
//                      flows to each window's winner only. One invocation per
//                      input value, so overlapping windows need no atomics.

struct PoolParams {
    batch: u32,
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    size: u32,
    stride: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;

@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> fwd_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> fwd_argmax: array<u32>;

@compute @workgroup_size(256)
fn maxpool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = linear_index(gid, groups);
    if idx >= p.batch * p.channels * p.out_h * p.out_w {
        return;
    }
    let j = idx % p.out_w;
    let i = (idx / p.out_w) % p.out_h;
    let plane = idx / (p.out_w * p.out_h);
    let base = plane * p.in_h * p.in_w;
    var best_index = (i * p.stride) * p.in_w + j * p.stride;
    var best = fwd_x[base + best_index];
    for (var u = 0u; u < p.size; u++) {
        for (var v = 0u; v < p.size; v++) {
            let at = (i * p.stride + u) * p.in_w + j * p.stride + v;
            let value = fwd_x[base + at];
            if value > best {
                best = value;
                best_index = at;
            }
        }
    }
    fwd_y[idx] = best;
    fwd_argmax[idx] = best_index;
}

@group(0) @binding(1) var<storage, read> bwd_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_argmax: array<u32>;
@group(0) @binding(3) var<storage, read_write> bwd_dx: array<f32>;

// First window index whose window (starting at o·stride, size wide) can
// contain coordinate h.
fn first_window(h: u32) -> u32 {
    if h + 1u < p.size {
        return 0u;
    }
    return (h + 1u - p.size + p.stride - 1u) / p.stride;
}

@compute @workgroup_size(256)
fn maxpool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = linear_index(gid, groups);
    if idx >= p.batch * p.channels * p.in_h * p.in_w {
        return;
    }
    let w = idx % p.in_w;
    let h = (idx / p.in_w) % p.in_h;
    let plane = idx / (p.in_w * p.in_h);
    let here = h * p.in_w + w;
    let out_base = plane * p.out_h * p.out_w;
    var acc = 0.0;
    for (var i = first_window(h); i <= h / p.stride && i < p.out_h; i++) {
        for (var j = first_window(w); j <= w / p.stride && j < p.out_w; j++) {
            let o = out_base + i * p.out_w + j;
            if bwd_argmax[o] == here {
                acc += bwd_dy[o];
            }
        }
    }
    bwd_dx[idx] = acc;
}
