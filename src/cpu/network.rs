//! The whole network on the CPU, composed from the reference ops: forward,
//! loss and backward for one batch. The CPU trainer, the gradient checks
//! and the GPU-vs-CPU step tests all go through here.

use super::{conv, ops};
use crate::graph::{Graph, Node};

/// Activations of one batch: `outputs[i]` is node i's output (rows × its
/// output_len); `argmax[i]` the pooling winners of a max-pool node.
pub struct Forward {
    pub rows: usize,
    pub outputs: Vec<Vec<f32>>,
    pub argmax: Vec<Vec<u32>>,
}

impl Forward {
    pub fn logits(&self) -> &[f32] {
        self.outputs.last().map_or(&[], |v| v.as_slice())
    }
}

/// Runs every node on x (rows, input_size).
pub fn forward(graph: &Graph, params: &[f32], x: &[f32], rows: usize) -> Forward {
    let mut outputs: Vec<Vec<f32>> = Vec::with_capacity(graph.nodes.len());
    let mut argmax = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let input = outputs.last().map_or(x, |v| v.as_slice());
        let mut y = vec![0.0; rows * node.output_len()];
        let mut winners = Vec::new();
        match node {
            Node::Dense(d) => {
                let w = &params[graph.params[d.weight].range()];
                let b = &params[graph.params[d.bias].range()];
                ops::matmul_nt(input, w, &mut y, rows, d.inputs, d.outputs);
                ops::bias_activation(&mut y, b, d.activation, d.outputs);
            }
            Node::Conv(c) => {
                let w = &params[graph.params[c.weight].range()];
                let b = &params[graph.params[c.bias].range()];
                conv::conv2d_forward(input, w, b, &mut y, rows, c);
            }
            Node::MaxPool(p) => {
                winners = vec![0; y.len()];
                conv::maxpool_forward(input, &mut y, &mut winners, rows, p);
            }
        }
        outputs.push(y);
        argmax.push(winners);
    }
    Forward {
        rows,
        outputs,
        argmax,
    }
}

/// Given ∂L/∂logits in `delta`, walks the nodes backwards, writing every
/// parameter gradient into `grads` (flat, the layout of `params`). With
/// `input_grad` it returns ∂L/∂x, the gradient with respect to the input
/// batch; without, the first layer skips that product and returns nothing.
pub fn backward(
    graph: &Graph,
    params: &[f32],
    x: &[f32],
    fwd: &Forward,
    delta: Vec<f32>,
    grads: &mut [f32],
    input_grad: bool,
) -> Option<Vec<f32>> {
    let last = graph.nodes.len() - 1;
    backward_from(graph, params, x, fwd, last, false, delta, grads, input_grad)
}

/// The backward pass from node `from`, whose seed gradient `delta` is with
/// respect to its output, or to its pre-activation when `pre_activation`
/// (then its activation's derivative is not applied).
#[allow(clippy::too_many_arguments)]
pub fn backward_from(
    graph: &Graph,
    params: &[f32],
    x: &[f32],
    fwd: &Forward,
    from: usize,
    pre_activation: bool,
    mut delta: Vec<f32>,
    grads: &mut [f32],
    input_grad: bool,
) -> Option<Vec<f32>> {
    let rows = fwd.rows;
    for (i, node) in graph.nodes.iter().enumerate().take(from + 1).rev() {
        let skip_activation = i == from && pre_activation;
        let input = if i == 0 { x } else { &fwd.outputs[i - 1] };
        let want_dx = i > 0 || input_grad;
        let mut dx = vec![0.0; if want_dx { rows * node.input_len() } else { 0 }];
        match node {
            Node::Dense(d) => {
                // dz = dy ⊙ f'(y); dW (out,in) = dzᵀ · x; db = Σ_rows dz; dx = dz · W
                if !skip_activation {
                    ops::activation_backward(d.activation, &fwd.outputs[i], &mut delta);
                }
                let w = graph.params[d.weight].range();
                ops::matmul_tn(
                    &delta,
                    input,
                    &mut grads[w.clone()],
                    d.outputs,
                    rows,
                    d.inputs,
                );
                ops::bias_grad(&delta, &mut grads[graph.params[d.bias].range()], d.outputs);
                if want_dx {
                    ops::matmul_nn(&delta, &params[w], &mut dx, rows, d.outputs, d.inputs);
                }
            }
            Node::Conv(c) => {
                if !skip_activation {
                    ops::activation_backward(c.activation, &fwd.outputs[i], &mut delta);
                }
                let w = graph.params[c.weight].range();
                conv::conv2d_backward_weight(&delta, input, &mut grads[w.clone()], rows, c);
                conv::conv2d_backward_bias(
                    &delta,
                    &mut grads[graph.params[c.bias].range()],
                    rows,
                    c,
                );
                if want_dx {
                    conv::conv2d_backward_input(&delta, &params[w], &mut dx, rows, c);
                }
            }
            Node::MaxPool(p) => {
                if want_dx {
                    conv::maxpool_backward(&delta, &fwd.argmax[i], &mut dx, rows, p);
                }
            }
        }
        delta = dx;
    }
    input_grad.then_some(delta)
}

/// Mean cross-entropy loss over the batch and its gradient with respect to
/// every parameter, written into `grads`. Returns (Σ loss, correct, forward).
pub fn loss_and_grads(
    graph: &Graph,
    params: &[f32],
    x: &[f32],
    labels: &[u32],
    grads: &mut [f32],
) -> (f32, u32, Forward) {
    let rows = labels.len();
    let fwd = forward(graph, params, x, rows);
    let mut delta = vec![0.0; rows * graph.classes()];
    let (loss_sum, correct) =
        ops::softmax_xent(fwd.logits(), labels, &mut delta, rows, graph.classes());
    backward(graph, params, x, &fwd, delta, grads, false);
    (loss_sum, correct, fwd)
}
