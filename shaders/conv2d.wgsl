// conv2d.wgsl — 2-D convolution over NCHW activations, and its backward
// passes. Direct form: each invocation computes one output value by walking
// its receptive field.
//
//   x  (batch, in_c, in_h, in_w)     W (out_c, in_c, k, k)     b (out_c)
//   y  (batch, out_c, out_h, out_w)
//
//   conv2d_forward:          y[n,o,i,j] = act(b[o] + Σ_{c,u,v} W[o,c,u,v] · x[n, c, i·s+u−p, j·s+v−p])
//                            (x is zero outside the image)
//   conv2d_backward_input:   dx[n,c,h,w] = Σ_{o,u,v} W[o,c,u,v] · dy[n,o,i,j]
//                            over the (i,j) with i·s+u−p = h and j·s+v−p = w
//   conv2d_backward_weight:  dW[o,c,u,v] = Σ_{n,i,j} dy[n,o,i,j] · x[n, c, i·s+u−p, j·s+v−p]
//                            (one workgroup per weight, reducing over n,i,j)
//   conv2d_backward_bias:    db[o] = Σ_{n,i,j} dy[n,o,i,j]  (one workgroup per channel)
//
// dy here is already multiplied by the activation's derivative
// (activation_backward in elementwise.wgsl).
//
// conv2d_forward_gemm computes the same y as conv2d_forward as an implicit
// GEMM: y = W · im2col(x), W seen as (out_c, in_c·k·k) and im2col(x) as
// (in_c·k·k, batch·out_h·out_w), the latter never materialised. Each
// invocation keeps a 4×4 block of it in registers (4 output channels × 4
// consecutive output pixels), so each weight and each input value it loads
// feeds 4 multiply-adds instead of 1. It sums in the same order as the
// direct kernel, bias first, so the two agree bit for bit.
//
// conv2d_backward_input_gemm does the same for dx = Wᵀ · dy scattered back
// through the windows (col2im, also never materialised): 4 input channels
// × 4 consecutive input pixels per invocation, summed over o, u, v in the
// direct kernel's order.
//
// conv2d_backward_weight_gemm: dW = dy · im2col(x)ᵀ, a GEMM whose shared
// dimension is batch·out_h·out_w. Like the direct kernel, one workgroup
// reduces over it with the same per-invocation stride and the same tree,
// but for a block of 16 output channels × 4 taps of one kernel row at
// once (64 sums per invocation, in 16 vec4s): each dy it loads feeds 4
// products and each x 16. Taps in the padding add dy × 0, which leaves a
// sum unchanged, so it still agrees with the direct kernel bit for bit;
// taps past the kernel's width (its last block of 4 may be partial) are
// summed too but never stored. The 64 trees run 16 at a time through
// partial16 (16 KB of workgroup memory).
//
// Adapters with subgroups of 8 also have conv2d_subgroup.wgsl's versions
// of the forward and backward-to-input passes.

struct ConvParams {
    batch: u32,
    in_c: u32,
    in_h: u32,
    in_w: u32,
    out_c: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    stride: u32,
    padding: u32,
    act: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: ConvParams;

// The input coordinate that output coordinate o reads through tap u; may be
// negative or past the edge (then it is padding).
fn input_coord(o: u32, u: u32) -> i32 {
    return i32(o * p.stride + u) - i32(p.padding);
}

fn weight_index(o: u32, c: u32, u: u32, v: u32) -> u32 {
    return ((o * p.in_c + c) * p.kernel + u) * p.kernel + v;
}

@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read> fwd_w: array<f32>;
@group(0) @binding(3) var<storage, read> fwd_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(256)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = linear_index(gid, groups);
    if idx >= p.batch * p.out_c * p.out_h * p.out_w {
        return;
    }
    let j = idx % p.out_w;
    let i = (idx / p.out_w) % p.out_h;
    let o = (idx / (p.out_w * p.out_h)) % p.out_c;
    let n = idx / (p.out_w * p.out_h * p.out_c);
    var acc = fwd_b[o];
    for (var c = 0u; c < p.in_c; c++) {
        let plane = (n * p.in_c + c) * p.in_h;
        for (var u = 0u; u < p.kernel; u++) {
            let h = input_coord(i, u);
            if h < 0 || h >= i32(p.in_h) {
                continue;
            }
            for (var v = 0u; v < p.kernel; v++) {
                let w = input_coord(j, v);
                if w < 0 || w >= i32(p.in_w) {
                    continue;
                }
                acc += fwd_w[weight_index(o, c, u, v)] * fwd_x[(plane + u32(h)) * p.in_w + u32(w)];
            }
        }
    }
    fwd_y[idx] = activate(acc, p.act);
}

// Output pixels per invocation of conv2d_forward_gemm (along batch·out_h·out_w),
// and output channels per invocation.
const GEMM_PIXELS: u32 = 4u;
const GEMM_CHANNELS: u32 = 4u;

@compute @workgroup_size(64)
fn conv2d_forward_gemm(@builtin(global_invocation_id) gid: vec3<u32>) {
    let plane_size = p.out_h * p.out_w;
    let pixels = p.batch * plane_size;
    let q0 = gid.x * GEMM_PIXELS;
    let o0 = gid.y * GEMM_CHANNELS;
    if q0 >= pixels || o0 >= p.out_c {
        return;
    }
    // Where each of the block's pixels sits: its image, the input row and
    // column its window starts at (may be negative: padding).
    var image: array<u32, 4>;
    var top: array<i32, 4>;
    var left: array<i32, 4>;
    for (var t = 0u; t < GEMM_PIXELS; t++) {
        let q = min(q0 + t, pixels - 1u);
        image[t] = q / plane_size;
        top[t] = input_coord((q % plane_size) / p.out_w, 0u);
        left[t] = input_coord(q % p.out_w, 0u);
    }
    var acc: array<f32, 16>;
    for (var a = 0u; a < GEMM_CHANNELS; a++) {
        let o = min(o0 + a, p.out_c - 1u);
        for (var t = 0u; t < GEMM_PIXELS; t++) {
            acc[a * GEMM_PIXELS + t] = fwd_b[o];
        }
    }
    for (var c = 0u; c < p.in_c; c++) {
        for (var u = 0u; u < p.kernel; u++) {
            for (var v = 0u; v < p.kernel; v++) {
                var w_reg: array<f32, 4>;
                for (var a = 0u; a < GEMM_CHANNELS; a++) {
                    w_reg[a] = fwd_w[weight_index(min(o0 + a, p.out_c - 1u), c, u, v)];
                }
                for (var t = 0u; t < GEMM_PIXELS; t++) {
                    let h = top[t] + i32(u);
                    let w = left[t] + i32(v);
                    if h < 0 || h >= i32(p.in_h) || w < 0 || w >= i32(p.in_w) {
                        continue;
                    }
                    let x = fwd_x[((image[t] * p.in_c + c) * p.in_h + u32(h)) * p.in_w + u32(w)];
                    for (var a = 0u; a < GEMM_CHANNELS; a++) {
                        acc[a * GEMM_PIXELS + t] += w_reg[a] * x;
                    }
                }
            }
        }
    }
    for (var a = 0u; a < GEMM_CHANNELS; a++) {
        for (var t = 0u; t < GEMM_PIXELS; t++) {
            let o = o0 + a;
            let q = q0 + t;
            if o < p.out_c && q < pixels {
                let n = q / plane_size;
                let y = (n * p.out_c + o) * plane_size + q % plane_size;
                fwd_y[y] = activate(acc[a * GEMM_PIXELS + t], p.act);
            }
        }
    }
}

@group(0) @binding(1) var<storage, read> bin_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bin_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> bin_dx: array<f32>;

// The output coordinate whose tap u reads input coordinate h, if any.
fn output_coord(h: u32, u: u32, out_size: u32) -> i32 {
    let t = i32(h + p.padding) - i32(u);
    if t < 0 || t % i32(p.stride) != 0 {
        return -1;
    }
    let o = t / i32(p.stride);
    if o >= i32(out_size) {
        return -1;
    }
    return o;
}

@compute @workgroup_size(256)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let idx = linear_index(gid, groups);
    if idx >= p.batch * p.in_c * p.in_h * p.in_w {
        return;
    }
    let w = idx % p.in_w;
    let h = (idx / p.in_w) % p.in_h;
    let c = (idx / (p.in_w * p.in_h)) % p.in_c;
    let n = idx / (p.in_w * p.in_h * p.in_c);
    var acc = 0.0;
    for (var o = 0u; o < p.out_c; o++) {
        let plane = (n * p.out_c + o) * p.out_h;
        for (var u = 0u; u < p.kernel; u++) {
            let i = output_coord(h, u, p.out_h);
            if i < 0 {
                continue;
            }
            for (var v = 0u; v < p.kernel; v++) {
                let j = output_coord(w, v, p.out_w);
                if j < 0 {
                    continue;
                }
                acc += bin_w[weight_index(o, c, u, v)] * bin_dy[(plane + u32(i)) * p.out_w + u32(j)];
            }
        }
    }
    bin_dx[idx] = acc;
}

@compute @workgroup_size(64)
fn conv2d_backward_input_gemm(@builtin(global_invocation_id) gid: vec3<u32>) {
    let plane_size = p.in_h * p.in_w;
    let pixels = p.batch * plane_size;
    let q0 = gid.x * GEMM_PIXELS;
    let c0 = gid.y * GEMM_CHANNELS;
    if q0 >= pixels || c0 >= p.in_c {
        return;
    }
    var image: array<u32, 4>;
    var row: array<u32, 4>;
    var col: array<u32, 4>;
    for (var t = 0u; t < GEMM_PIXELS; t++) {
        let q = min(q0 + t, pixels - 1u);
        image[t] = q / plane_size;
        row[t] = (q % plane_size) / p.in_w;
        col[t] = q % p.in_w;
    }
    var acc: array<f32, 16>;
    for (var o = 0u; o < p.out_c; o++) {
        for (var u = 0u; u < p.kernel; u++) {
            for (var v = 0u; v < p.kernel; v++) {
                var w_reg: array<f32, 4>;
                for (var a = 0u; a < GEMM_CHANNELS; a++) {
                    w_reg[a] = bin_w[weight_index(o, min(c0 + a, p.in_c - 1u), u, v)];
                }
                for (var t = 0u; t < GEMM_PIXELS; t++) {
                    let i = output_coord(row[t], u, p.out_h);
                    let j = output_coord(col[t], v, p.out_w);
                    if i < 0 || j < 0 {
                        continue;
                    }
                    let dy = bin_dy[((image[t] * p.out_c + o) * p.out_h + u32(i)) * p.out_w + u32(j)];
                    for (var a = 0u; a < GEMM_CHANNELS; a++) {
                        acc[a * GEMM_PIXELS + t] += w_reg[a] * dy;
                    }
                }
            }
        }
    }
    for (var a = 0u; a < GEMM_CHANNELS; a++) {
        for (var t = 0u; t < GEMM_PIXELS; t++) {
            let c = c0 + a;
            let q = q0 + t;
            if c < p.in_c && q < pixels {
                let n = q / plane_size;
                bin_dx[(n * p.in_c + c) * plane_size + q % plane_size] = acc[a * GEMM_PIXELS + t];
            }
        }
    }
}

@group(0) @binding(1) var<storage, read> bw_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bw_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> bw_dw: array<f32>;

const REDUCE_WG: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

// Sums `partial` over the workgroup; the total ends in partial[0].
fn reduce_partial(t: u32) {
    workgroupBarrier();
    for (var stride = REDUCE_WG / 2u; stride > 0u; stride >>= 1u) {
        if t < stride {
            partial[t] += partial[t + stride];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn conv2d_backward_weight(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let widx = group.y * groups.x + group.x;
    let n_weights = p.out_c * p.in_c * p.kernel * p.kernel;
    let valid = widx < n_weights;
    let v = widx % p.kernel;
    let u = (widx / p.kernel) % p.kernel;
    let c = (widx / (p.kernel * p.kernel)) % p.in_c;
    let o = widx / (p.kernel * p.kernel * p.in_c);
    let per_image = p.out_h * p.out_w;
    var sum = 0.0;
    if valid {
        for (var r = t; r < p.batch * per_image; r += REDUCE_WG) {
            let n = r / per_image;
            let i = (r % per_image) / p.out_w;
            let j = r % p.out_w;
            let h = input_coord(i, u);
            let w = input_coord(j, v);
            if h >= 0 && h < i32(p.in_h) && w >= 0 && w < i32(p.in_w) {
                let x = bw_x[((n * p.in_c + c) * p.in_h + u32(h)) * p.in_w + u32(w)];
                sum += bw_dy[(n * p.out_c + o) * per_image + r % per_image] * x;
            }
        }
    }
    partial[t] = sum;
    reduce_partial(t);
    if t == 0u && valid {
        bw_dw[widx] = partial[0];
    }
}

var<workgroup> partial16: array<vec4<f32>, 1024>; // [channel in round][invocation]

// Sums each of partial16's 4 rows of 256 over the workgroup with
// reduce_partial's tree; the totals end in partial16[256·a].
fn reduce_partial16(t: u32) {
    workgroupBarrier();
    for (var stride = REDUCE_WG / 2u; stride > 0u; stride >>= 1u) {
        if t < stride {
            for (var a = 0u; a < 4u; a++) {
                partial16[a * REDUCE_WG + t] += partial16[a * REDUCE_WG + t + stride];
            }
        }
        workgroupBarrier();
    }
}

// Stores the totals of a round: output channels o..o+4, taps v0..v0+4 of
// kernel row u of input channel c.
fn store_dw_round(t: u32, valid: bool, o: u32, c: u32, u: u32, v0: u32) {
    if t == 0u && valid {
        for (var a = 0u; a < 4u; a++) {
            for (var q = 0u; q < 4u; q++) {
                if o + a < p.out_c && v0 + q < p.kernel {
                    bw_dw[weight_index(o + a, c, u, v0 + q)] = partial16[a * REDUCE_WG][q];
                }
            }
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(256)
fn conv2d_backward_weight_gemm(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    // Block b covers output channels o0..o0+16, input channel c, kernel row
    // u and taps v0..v0+4 of it.
    let tap_blocks = (p.kernel + 3u) / 4u;
    let blocks_per_o = p.in_c * p.kernel * tap_blocks;
    let block = group.y * groups.x + group.x;
    let valid = block < (p.out_c + 15u) / 16u * blocks_per_o;
    let v0 = (block % tap_blocks) * 4u;
    let u = (block / tap_blocks) % p.kernel;
    let c = (block / (tap_blocks * p.kernel)) % p.in_c;
    let o0 = (block / blocks_per_o) * 16u;
    let per_image = p.out_h * p.out_w;
    let in_h = i32(p.in_h);
    let in_w = i32(p.in_w);
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    var acc4 = vec4<f32>();
    var acc5 = vec4<f32>();
    var acc6 = vec4<f32>();
    var acc7 = vec4<f32>();
    var acc8 = vec4<f32>();
    var acc9 = vec4<f32>();
    var acc10 = vec4<f32>();
    var acc11 = vec4<f32>();
    var acc12 = vec4<f32>();
    var acc13 = vec4<f32>();
    var acc14 = vec4<f32>();
    var acc15 = vec4<f32>();
    if valid {
        for (var r = t; r < p.batch * per_image; r += REDUCE_WG) {
            let n = r / per_image;
            let pixel = r % per_image;
            let h = input_coord(pixel / p.out_w, u);
            let w = vec4<i32>(input_coord(pixel % p.out_w, v0)) + vec4<i32>(0, 1, 2, 3);
            let inside = vec4<bool>(h >= 0 && h < in_h) & (w >= vec4<i32>(0)) & (w < vec4<i32>(in_w));
            let row = ((n * p.in_c + c) * p.in_h + u32(clamp(h, 0, in_h - 1))) * p.in_w;
            let at = row + vec4<u32>(clamp(w, vec4<i32>(0), vec4<i32>(in_w - 1)));
            let x = select(vec4<f32>(), vec4<f32>(bw_x[at.x], bw_x[at.y], bw_x[at.z], bw_x[at.w]), inside);
            let dy_at = n * p.out_c * per_image + pixel;
            acc0 += bw_dy[dy_at + min(o0 + 0u, p.out_c - 1u) * per_image] * x;
            acc1 += bw_dy[dy_at + min(o0 + 1u, p.out_c - 1u) * per_image] * x;
            acc2 += bw_dy[dy_at + min(o0 + 2u, p.out_c - 1u) * per_image] * x;
            acc3 += bw_dy[dy_at + min(o0 + 3u, p.out_c - 1u) * per_image] * x;
            acc4 += bw_dy[dy_at + min(o0 + 4u, p.out_c - 1u) * per_image] * x;
            acc5 += bw_dy[dy_at + min(o0 + 5u, p.out_c - 1u) * per_image] * x;
            acc6 += bw_dy[dy_at + min(o0 + 6u, p.out_c - 1u) * per_image] * x;
            acc7 += bw_dy[dy_at + min(o0 + 7u, p.out_c - 1u) * per_image] * x;
            acc8 += bw_dy[dy_at + min(o0 + 8u, p.out_c - 1u) * per_image] * x;
            acc9 += bw_dy[dy_at + min(o0 + 9u, p.out_c - 1u) * per_image] * x;
            acc10 += bw_dy[dy_at + min(o0 + 10u, p.out_c - 1u) * per_image] * x;
            acc11 += bw_dy[dy_at + min(o0 + 11u, p.out_c - 1u) * per_image] * x;
            acc12 += bw_dy[dy_at + min(o0 + 12u, p.out_c - 1u) * per_image] * x;
            acc13 += bw_dy[dy_at + min(o0 + 13u, p.out_c - 1u) * per_image] * x;
            acc14 += bw_dy[dy_at + min(o0 + 14u, p.out_c - 1u) * per_image] * x;
            acc15 += bw_dy[dy_at + min(o0 + 15u, p.out_c - 1u) * per_image] * x;
        }
    }
    partial16[0u * REDUCE_WG + t] = acc0;
    partial16[1u * REDUCE_WG + t] = acc1;
    partial16[2u * REDUCE_WG + t] = acc2;
    partial16[3u * REDUCE_WG + t] = acc3;
    reduce_partial16(t);
    store_dw_round(t, valid, o0, c, u, v0);
    partial16[0u * REDUCE_WG + t] = acc4;
    partial16[1u * REDUCE_WG + t] = acc5;
    partial16[2u * REDUCE_WG + t] = acc6;
    partial16[3u * REDUCE_WG + t] = acc7;
    reduce_partial16(t);
    store_dw_round(t, valid, o0 + 4u, c, u, v0);
    partial16[0u * REDUCE_WG + t] = acc8;
    partial16[1u * REDUCE_WG + t] = acc9;
    partial16[2u * REDUCE_WG + t] = acc10;
    partial16[3u * REDUCE_WG + t] = acc11;
    reduce_partial16(t);
    store_dw_round(t, valid, o0 + 8u, c, u, v0);
    partial16[0u * REDUCE_WG + t] = acc12;
    partial16[1u * REDUCE_WG + t] = acc13;
    partial16[2u * REDUCE_WG + t] = acc14;
    partial16[3u * REDUCE_WG + t] = acc15;
    reduce_partial16(t);
    store_dw_round(t, valid, o0 + 12u, c, u, v0);
}


@group(0) @binding(1) var<storage, read> bb_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> bb_db: array<f32>;

@compute @workgroup_size(256)
fn conv2d_backward_bias(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let o = group.x;
    let per_image = p.out_h * p.out_w;
    var sum = 0.0;
    for (var r = t; r < p.batch * per_image; r += REDUCE_WG) {
        let n = r / per_image;
        sum += bb_dy[(n * p.out_c + o) * per_image + r % per_image];
    }
    partial[t] = sum;
    reduce_partial(t);
    if t == 0u {
        bb_db[o] = partial[0];
    }
}
