//! The CPU reference of activation.wgsl (and of the matmul epilogue's
//! bias + activation).

use super::Activation;

/// x (rows,cols) ← act(x + bias) with bias (cols) broadcast over rows.
pub fn bias_activation(x: &mut [f32], bias: &[f32], act: Activation, cols: usize) {
    for row in x.chunks_exact_mut(cols) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = act.apply(*v + b);
        }
    }
}

/// dz = dy ⊙ f'(x), with f' expressed in the output y = f(x); in place on dy.
pub fn activation_backward(act: Activation, y: &[f32], dy: &mut [f32]) {
    for (d, &out) in dy.iter_mut().zip(y) {
        *d *= act.grad_from_output(out);
    }
}

/// y = f(x) elementwise (an activation that is a node of its own).
pub fn activation_forward(act: Activation, x: &[f32], y: &mut [f32]) {
    for (out, &v) in y.iter_mut().zip(x) {
        *out = act.apply(v);
    }
}
