// add.wgsl — the sum of two values of one shape (a residual connection's
// join), and the helpers a graph that is not a chain needs for gradients.
//
//   add_forward:  y = a + b          (len elements)
//   copy:         dst = src          (add's backward: y = a + b passes dy to
//                                     both inputs, da = dy and db = dy)
//   accumulate:   total += part      (a value read by several nodes gets the
//                                     sum of their gradients)

struct AddParams {
    len: u32,
}

@group(0) @binding(0) var<uniform> add_p: AddParams;

@group(0) @binding(1) var<storage, read> fwd_a: array<f32>;
@group(0) @binding(2) var<storage, read> fwd_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(256)
fn add_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i < add_p.len {
        fwd_y[i] = fwd_a[i] + fwd_b[i];
    }
}

@group(0) @binding(1) var<storage, read> copy_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> copy_dst: array<f32>;

@compute @workgroup_size(256)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i < add_p.len {
        copy_dst[i] = copy_src[i];
    }
}

@group(0) @binding(1) var<storage, read> acc_part: array<f32>;
@group(0) @binding(2) var<storage, read_write> acc_total: array<f32>;

@compute @workgroup_size(256)
fn accumulate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i < add_p.len {
        acc_total[i] = acc_total[i] + acc_part[i];
    }
}
