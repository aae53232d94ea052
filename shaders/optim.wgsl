// optim.wgsl — parameter updates over the flat parameter buffer.
//
//   sgd_momentum (PyTorch's form):  g = grad + weight_decay · θ
//                                   v ← momentum · v + g
//                                   θ ← θ − lr · v

struct SgdParams {
    len: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

@group(0) @binding(0) var<uniform> p: SgdParams;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> velocity: array<f32>;

@compute @workgroup_size(256)
fn sgd_momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i >= p.len {
        return;
    }
    let g = grads[i] + p.weight_decay * params[i];
    let v = p.momentum * velocity[i] + g;
    velocity[i] = v;
    params[i] = params[i] - p.lr * v;
}
