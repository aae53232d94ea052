// common.wgsl — definitions that several shader files share. The host
// prepends this file to each of them before compiling.
//
// Activation codes (mirrored by `Activation::code` in src/graph.rs):
//   0 identity, 1 ReLU, 2 tanh, 3 sigmoid.
//
// activation_grad takes the activation's OUTPUT y and returns dy/dx written in y:
//   ReLU: 1 if y > 0 else 0;   tanh: 1 - y²;   sigmoid: y·(1 - y).

const ACT_IDENTITY: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_TANH: u32 = 2u;
const ACT_SIGMOID: u32 = 3u;

fn activate(x: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return max(x, 0.0); }
        // tanh saturates to ±1 in f32 long before |x| = 15; clamping keeps
        // implementations that go through exp(2x) away from inf/inf.
        case 2u: { return tanh(clamp(x, -15.0, 15.0)); }
        case 3u: { return 1.0 / (1.0 + exp(-x)); }
        default: { return x; }
    }
}

fn activation_grad(y: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return select(0.0, 1.0, y > 0.0); }
        case 2u: { return 1.0 - y * y; }
        case 3u: { return y * (1.0 - y); }
        default: { return 1.0; }
    }
}

// Elementwise kernels run on a 2-D grid of 256-wide workgroups so that
// arrays longer than 65535 × 256 still fit in the dispatch limits.
const ELEMENTWISE_WG: u32 = 256u;

fn linear_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.y * groups.x * ELEMENTWISE_WG + gid.x;
}

// True when x is neither NaN nor ±inf (all exponent bits set means one of those).
fn is_finite_f32(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

// Per-step facts written once per epoch, one 256-byte slot per step, bound
// with a dynamic offset: where the step's batch starts in the epoch's order,
// how many of the batch's rows are real (the last batch may be short; its
// padding rows are zero and carry no loss or gradient), the step's number in
// the epoch and in the whole run (from 0), and its learning rate.
struct StepInfo {
    batch_start: u32,
    batch_len: u32,
    step: u32,
    global_step: u32,
    lr: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
