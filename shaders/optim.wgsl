// optim.wgsl — parameter updates over the flat parameter buffer
// (params, grads and every state vector have `len` elements). The learning
// rate and the step number come from the step's StepInfo, so a schedule
// needs no extra uniform writes.
//
// Each invocation updates four parameters, read and written as vec4s: on
// lavapipe a load costs per load instruction and lane, so four at once is
// about half the time. `len` is a multiple of 4, which the parameter
// layout guarantees (every tensor starts at a multiple of 64 floats).
//
//   sgd_momentum (PyTorch's form):  g = grad + weight_decay · θ
//                                   v ← momentum · v + g
//                                   θ ← θ − lr · v
//                        Nesterov:  θ ← θ − lr · (g + momentum · v)
//
//   adam (t = global_step + 1):     Adam:  g = grad + weight_decay · θ
//                                   AdamW: θ ← θ · (1 − lr · weight_decay), g = grad
//                                   m ← β1·m + (1−β1)·g
//                                   v ← β2·v + (1−β2)·g²
//                                   θ ← θ − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)

struct SgdParams {
    len: u32,
    momentum: f32,
    weight_decay: f32,
    nesterov: u32,
}

@group(0) @binding(0) var<uniform> step: StepInfo;
@group(0) @binding(1) var<uniform> sgd_p: SgdParams;
@group(0) @binding(2) var<storage, read_write> sgd_params: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> sgd_grads: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> velocity: array<vec4<f32>>;

@compute @workgroup_size(256)
fn sgd_momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i >= sgd_p.len / 4u {
        return;
    }
    let theta = sgd_params[i];
    let g = sgd_grads[i] + sgd_p.weight_decay * theta;
    let v = sgd_p.momentum * velocity[i] + g;
    velocity[i] = v;
    let update = select(v, g + sgd_p.momentum * v, sgd_p.nesterov != 0u);
    sgd_params[i] = theta - step.lr * update;
}

struct AdamParams {
    len: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    decoupled: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(1) var<uniform> adam_p: AdamParams;
@group(0) @binding(2) var<storage, read_write> adam_params: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> adam_grads: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> moment1: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> moment2: array<vec4<f32>>;

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear_index(gid, groups);
    if i >= adam_p.len / 4u {
        return;
    }
    let t = f32(step.global_step + 1u);
    var theta = adam_params[i];
    var g = adam_grads[i];
    if adam_p.decoupled != 0u {
        theta = theta * (1.0 - step.lr * adam_p.weight_decay);
    } else {
        g = g + adam_p.weight_decay * theta;
    }
    let m = adam_p.beta1 * moment1[i] + (1.0 - adam_p.beta1) * g;
    let v = adam_p.beta2 * moment2[i] + (1.0 - adam_p.beta2) * g * g;
    moment1[i] = m;
    moment2[i] = v;
    let m_hat = m / (1.0 - pow(adam_p.beta1, t));
    let v_hat = v / (1.0 - pow(adam_p.beta2, t));
    adam_params[i] = theta - step.lr * m_hat / (sqrt(v_hat) + adam_p.eps);
}
