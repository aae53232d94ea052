// activation.wgsl — an activation on its own, and the derivative every
// activation's backward pass applies (codes and formulas in common.wgsl).
//
//   activation_forward:        y = f(x) over len elements (an activation that
//                              follows a node it cannot be fused into)
//   activation_backward:       dz = dy ⊙ f'(x), with f' written in the
//                              output y = f(x) (see activation_grad); dy is
//                              overwritten with dz in place (fused activations)
//   activation_backward_input: dx = dy ⊙ f'(x) into a separate buffer (the
//                              standalone activation, whose dy stays intact)

struct ActivationParams {
    len: u32,
    act: u32,
}

@group(0) @binding(0) var<uniform> act_p: ActivationParams;

@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(256)
fn activation_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i < act_p.len {
        fwd_y[i] = activate(fwd_x[i], act_p.act);
    }
}

@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> dy: array<f32>;

@compute @workgroup_size(256)
fn activation_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i < act_p.len {
        dy[i] = dy[i] * activation_grad(y[i], act_p.act);
    }
}

@group(0) @binding(1) var<storage, read> bwd_y: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> bwd_dx: array<f32>;

@compute @workgroup_size(256)
fn activation_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i < act_p.len {
        bwd_dx[i] = bwd_dy[i] * activation_grad(bwd_y[i], act_p.act);
    }
}
