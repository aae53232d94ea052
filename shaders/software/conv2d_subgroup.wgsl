// software/conv2d_subgroup.wgsl — the subgroup version (ConvVersion::Subgroup) of
// conv2d's forward and backward-to-input passes, for adapters that run on
// the CPU and have subgroups of 8 lanes (lavapipe). Compiled after conv2d.wgsl, whose parameters, bindings and
// helpers it uses, and only where the device has subgroup operations.
//
// The implicit GEMMs of conv2d.wgsl, shaped like matmul version 4 (see
// matmul_subgroup.wgsl for why this is fast on lavapipe): a workgroup is
// one subgroup of 8 lanes; lane l owns 4 consecutive pixels and every
// channel of the block. At each tap (c, u, v) or (o, u, v) the lane loads
// its 4 pixels' values and the weights of channels l, l+8, ..., and every
// lane takes each channel's weight from the lane that loaded it with
// subgroupBroadcast.
//
// They sum in the direct kernels' order, bias first. Where the direct
// kernel skips a tap that falls in the padding, these add weight × 0
// instead (every lane must reach every broadcast), which leaves the sum
// unchanged; so the versions agree bit for bit and the tuner's choice
// between them changes no result.

// conv2d_forward_sub: y = act(b + W · im2col(x)) for a block of 32 output
// channels × 32 output pixels.
fn store_y(o: u32, q0: u32, pixels: u32, acc: vec4<f32>) {
    if o >= p.out_c {
        return;
    }
    let plane_size = p.out_h * p.out_w;
    for (var t = 0u; t < 4u; t++) {
        let q = q0 + t;
        if q < pixels {
            fwd_y[((q / plane_size) * p.out_c + o) * plane_size + q % plane_size] = activate(acc[t], p.act);
        }
    }
}

@compute @workgroup_size(8)
fn conv2d_forward_sub(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let plane_size = p.out_h * p.out_w;
    let pixels = p.batch * plane_size;
    let q0 = group.x * 32u + lane * 4u;
    let o0 = group.y * 32u;
    // This lane loads the weights of channels o0 + lane + 8·g.
    let loads = min(vec4<u32>(o0 + lane) + vec4<u32>(0u, 8u, 16u, 24u), vec4<u32>(p.out_c - 1u));
    // The lane's 4 pixels (clamped onto the last): image, and the input row
    // and column their windows start at (negative in the padding).
    let q = min(vec4<u32>(q0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(pixels - 1u));
    let image = q / plane_size;
    let top = vec4<i32>((q % plane_size) / p.out_w * p.stride) - i32(p.padding);
    let left = vec4<i32>(q % p.out_w * p.stride) - i32(p.padding);
    let in_h = i32(p.in_h);
    let in_w = i32(p.in_w);
    var acc0 = vec4<f32>(fwd_b[min(o0, p.out_c - 1u)]);
    var acc1 = vec4<f32>(fwd_b[min(o0 + 1u, p.out_c - 1u)]);
    var acc2 = vec4<f32>(fwd_b[min(o0 + 2u, p.out_c - 1u)]);
    var acc3 = vec4<f32>(fwd_b[min(o0 + 3u, p.out_c - 1u)]);
    var acc4 = vec4<f32>(fwd_b[min(o0 + 4u, p.out_c - 1u)]);
    var acc5 = vec4<f32>(fwd_b[min(o0 + 5u, p.out_c - 1u)]);
    var acc6 = vec4<f32>(fwd_b[min(o0 + 6u, p.out_c - 1u)]);
    var acc7 = vec4<f32>(fwd_b[min(o0 + 7u, p.out_c - 1u)]);
    var acc8 = vec4<f32>(fwd_b[min(o0 + 8u, p.out_c - 1u)]);
    var acc9 = vec4<f32>(fwd_b[min(o0 + 9u, p.out_c - 1u)]);
    var acc10 = vec4<f32>(fwd_b[min(o0 + 10u, p.out_c - 1u)]);
    var acc11 = vec4<f32>(fwd_b[min(o0 + 11u, p.out_c - 1u)]);
    var acc12 = vec4<f32>(fwd_b[min(o0 + 12u, p.out_c - 1u)]);
    var acc13 = vec4<f32>(fwd_b[min(o0 + 13u, p.out_c - 1u)]);
    var acc14 = vec4<f32>(fwd_b[min(o0 + 14u, p.out_c - 1u)]);
    var acc15 = vec4<f32>(fwd_b[min(o0 + 15u, p.out_c - 1u)]);
    var acc16 = vec4<f32>(fwd_b[min(o0 + 16u, p.out_c - 1u)]);
    var acc17 = vec4<f32>(fwd_b[min(o0 + 17u, p.out_c - 1u)]);
    var acc18 = vec4<f32>(fwd_b[min(o0 + 18u, p.out_c - 1u)]);
    var acc19 = vec4<f32>(fwd_b[min(o0 + 19u, p.out_c - 1u)]);
    var acc20 = vec4<f32>(fwd_b[min(o0 + 20u, p.out_c - 1u)]);
    var acc21 = vec4<f32>(fwd_b[min(o0 + 21u, p.out_c - 1u)]);
    var acc22 = vec4<f32>(fwd_b[min(o0 + 22u, p.out_c - 1u)]);
    var acc23 = vec4<f32>(fwd_b[min(o0 + 23u, p.out_c - 1u)]);
    var acc24 = vec4<f32>(fwd_b[min(o0 + 24u, p.out_c - 1u)]);
    var acc25 = vec4<f32>(fwd_b[min(o0 + 25u, p.out_c - 1u)]);
    var acc26 = vec4<f32>(fwd_b[min(o0 + 26u, p.out_c - 1u)]);
    var acc27 = vec4<f32>(fwd_b[min(o0 + 27u, p.out_c - 1u)]);
    var acc28 = vec4<f32>(fwd_b[min(o0 + 28u, p.out_c - 1u)]);
    var acc29 = vec4<f32>(fwd_b[min(o0 + 29u, p.out_c - 1u)]);
    var acc30 = vec4<f32>(fwd_b[min(o0 + 30u, p.out_c - 1u)]);
    var acc31 = vec4<f32>(fwd_b[min(o0 + 31u, p.out_c - 1u)]);
    for (var c = 0u; c < p.in_c; c++) {
        let plane = (image * p.in_c + c) * p.in_h;
        for (var u = 0u; u < p.kernel; u++) {
            for (var v = 0u; v < p.kernel; v++) {
                let w0 = fwd_w[weight_index(loads.x, c, u, v)];
                let w1 = fwd_w[weight_index(loads.y, c, u, v)];
                let w2 = fwd_w[weight_index(loads.z, c, u, v)];
                let w3 = fwd_w[weight_index(loads.w, c, u, v)];
                let h = top + i32(u);
                let w = left + i32(v);
                let inside = (h >= vec4<i32>(0)) & (h < vec4<i32>(in_h)) & (w >= vec4<i32>(0)) & (w < vec4<i32>(in_w));
                let at = (plane + vec4<u32>(clamp(h, vec4<i32>(0), vec4<i32>(in_h - 1)))) * p.in_w
                    + vec4<u32>(clamp(w, vec4<i32>(0), vec4<i32>(in_w - 1)));
                let x = select(vec4<f32>(), vec4<f32>(fwd_x[at.x], fwd_x[at.y], fwd_x[at.z], fwd_x[at.w]), inside);
                acc0 += subgroupBroadcast(w0, 0u) * x;
                acc1 += subgroupBroadcast(w0, 1u) * x;
                acc2 += subgroupBroadcast(w0, 2u) * x;
                acc3 += subgroupBroadcast(w0, 3u) * x;
                acc4 += subgroupBroadcast(w0, 4u) * x;
                acc5 += subgroupBroadcast(w0, 5u) * x;
                acc6 += subgroupBroadcast(w0, 6u) * x;
                acc7 += subgroupBroadcast(w0, 7u) * x;
                acc8 += subgroupBroadcast(w1, 0u) * x;
                acc9 += subgroupBroadcast(w1, 1u) * x;
                acc10 += subgroupBroadcast(w1, 2u) * x;
                acc11 += subgroupBroadcast(w1, 3u) * x;
                acc12 += subgroupBroadcast(w1, 4u) * x;
                acc13 += subgroupBroadcast(w1, 5u) * x;
                acc14 += subgroupBroadcast(w1, 6u) * x;
                acc15 += subgroupBroadcast(w1, 7u) * x;
                acc16 += subgroupBroadcast(w2, 0u) * x;
                acc17 += subgroupBroadcast(w2, 1u) * x;
                acc18 += subgroupBroadcast(w2, 2u) * x;
                acc19 += subgroupBroadcast(w2, 3u) * x;
                acc20 += subgroupBroadcast(w2, 4u) * x;
                acc21 += subgroupBroadcast(w2, 5u) * x;
                acc22 += subgroupBroadcast(w2, 6u) * x;
                acc23 += subgroupBroadcast(w2, 7u) * x;
                acc24 += subgroupBroadcast(w3, 0u) * x;
                acc25 += subgroupBroadcast(w3, 1u) * x;
                acc26 += subgroupBroadcast(w3, 2u) * x;
                acc27 += subgroupBroadcast(w3, 3u) * x;
                acc28 += subgroupBroadcast(w3, 4u) * x;
                acc29 += subgroupBroadcast(w3, 5u) * x;
                acc30 += subgroupBroadcast(w3, 6u) * x;
                acc31 += subgroupBroadcast(w3, 7u) * x;
            }
        }
    }
    store_y(o0, q0, pixels, acc0);
    store_y(o0 + 1u, q0, pixels, acc1);
    store_y(o0 + 2u, q0, pixels, acc2);
    store_y(o0 + 3u, q0, pixels, acc3);
    store_y(o0 + 4u, q0, pixels, acc4);
    store_y(o0 + 5u, q0, pixels, acc5);
    store_y(o0 + 6u, q0, pixels, acc6);
    store_y(o0 + 7u, q0, pixels, acc7);
    store_y(o0 + 8u, q0, pixels, acc8);
    store_y(o0 + 9u, q0, pixels, acc9);
    store_y(o0 + 10u, q0, pixels, acc10);
    store_y(o0 + 11u, q0, pixels, acc11);
    store_y(o0 + 12u, q0, pixels, acc12);
    store_y(o0 + 13u, q0, pixels, acc13);
    store_y(o0 + 14u, q0, pixels, acc14);
    store_y(o0 + 15u, q0, pixels, acc15);
    store_y(o0 + 16u, q0, pixels, acc16);
    store_y(o0 + 17u, q0, pixels, acc17);
    store_y(o0 + 18u, q0, pixels, acc18);
    store_y(o0 + 19u, q0, pixels, acc19);
    store_y(o0 + 20u, q0, pixels, acc20);
    store_y(o0 + 21u, q0, pixels, acc21);
    store_y(o0 + 22u, q0, pixels, acc22);
    store_y(o0 + 23u, q0, pixels, acc23);
    store_y(o0 + 24u, q0, pixels, acc24);
    store_y(o0 + 25u, q0, pixels, acc25);
    store_y(o0 + 26u, q0, pixels, acc26);
    store_y(o0 + 27u, q0, pixels, acc27);
    store_y(o0 + 28u, q0, pixels, acc28);
    store_y(o0 + 29u, q0, pixels, acc29);
    store_y(o0 + 30u, q0, pixels, acc30);
    store_y(o0 + 31u, q0, pixels, acc31);
}

// conv2d_backward_input_sub: dx = col2im(Wᵀ · dy) for a block of 16 input
// channels × 32 input pixels.
fn store_dx(c: u32, q0: u32, pixels: u32, acc: vec4<f32>) {
    if c >= p.in_c {
        return;
    }
    let plane_size = p.in_h * p.in_w;
    for (var t = 0u; t < 4u; t++) {
        let q = q0 + t;
        if q < pixels {
            bin_dx[((q / plane_size) * p.in_c + c) * plane_size + q % plane_size] = acc[t];
        }
    }
}

// The output coordinates whose tap u reads input coordinates h (as
// output_coord in conv2d.wgsl, 4 at once); `valid` is false where none does.
struct Taps {
    at: vec4<u32>,
    valid: vec4<bool>,
}

fn output_coords(h: vec4<u32>, u: u32, out_size: u32) -> Taps {
    let t = vec4<i32>(h + p.padding) - i32(u);
    let stride = i32(p.stride);
    let o = t / stride;
    let valid = (t >= vec4<i32>(0)) & (t % stride == vec4<i32>(0)) & (o < vec4<i32>(i32(out_size)));
    return Taps(vec4<u32>(clamp(o, vec4<i32>(0), vec4<i32>(i32(out_size) - 1))), valid);
}

@compute @workgroup_size(8)
fn conv2d_backward_input_sub(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let plane_size = p.in_h * p.in_w;
    let pixels = p.batch * plane_size;
    let q0 = group.x * 32u + lane * 4u;
    let c0 = group.y * 16u;
    // This lane loads the weights of input channels c0 + lane + 8·g.
    let loads = min(vec2<u32>(c0 + lane) + vec2<u32>(0u, 8u), vec2<u32>(p.in_c - 1u));
    let q = min(vec4<u32>(q0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(pixels - 1u));
    let image = q / plane_size;
    let row = (q % plane_size) / p.in_w;
    let col = q % p.in_w;
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
    for (var o = 0u; o < p.out_c; o++) {
        let plane = (image * p.out_c + o) * p.out_h;
        for (var u = 0u; u < p.kernel; u++) {
            let i = output_coords(row, u, p.out_h);
            for (var v = 0u; v < p.kernel; v++) {
                let j = output_coords(col, v, p.out_w);
                let w0 = bin_w[weight_index(o, loads.x, u, v)];
                let w1 = bin_w[weight_index(o, loads.y, u, v)];
                let at = (plane + i.at) * p.out_w + j.at;
                let dy = select(vec4<f32>(), vec4<f32>(bin_dy[at.x], bin_dy[at.y], bin_dy[at.z], bin_dy[at.w]), i.valid & j.valid);
                acc0 += subgroupBroadcast(w0, 0u) * dy;
                acc1 += subgroupBroadcast(w0, 1u) * dy;
                acc2 += subgroupBroadcast(w0, 2u) * dy;
                acc3 += subgroupBroadcast(w0, 3u) * dy;
                acc4 += subgroupBroadcast(w0, 4u) * dy;
                acc5 += subgroupBroadcast(w0, 5u) * dy;
                acc6 += subgroupBroadcast(w0, 6u) * dy;
                acc7 += subgroupBroadcast(w0, 7u) * dy;
                acc8 += subgroupBroadcast(w1, 0u) * dy;
                acc9 += subgroupBroadcast(w1, 1u) * dy;
                acc10 += subgroupBroadcast(w1, 2u) * dy;
                acc11 += subgroupBroadcast(w1, 3u) * dy;
                acc12 += subgroupBroadcast(w1, 4u) * dy;
                acc13 += subgroupBroadcast(w1, 5u) * dy;
                acc14 += subgroupBroadcast(w1, 6u) * dy;
                acc15 += subgroupBroadcast(w1, 7u) * dy;
            }
        }
    }
    store_dx(c0, q0, pixels, acc0);
    store_dx(c0 + 1u, q0, pixels, acc1);
    store_dx(c0 + 2u, q0, pixels, acc2);
    store_dx(c0 + 3u, q0, pixels, acc3);
    store_dx(c0 + 4u, q0, pixels, acc4);
    store_dx(c0 + 5u, q0, pixels, acc5);
    store_dx(c0 + 6u, q0, pixels, acc6);
    store_dx(c0 + 7u, q0, pixels, acc7);
    store_dx(c0 + 8u, q0, pixels, acc8);
    store_dx(c0 + 9u, q0, pixels, acc9);
    store_dx(c0 + 10u, q0, pixels, acc10);
    store_dx(c0 + 11u, q0, pixels, acc11);
    store_dx(c0 + 12u, q0, pixels, acc12);
    store_dx(c0 + 13u, q0, pixels, acc13);
    store_dx(c0 + 14u, q0, pixels, acc14);
    store_dx(c0 + 15u, q0, pixels, acc15);
}
