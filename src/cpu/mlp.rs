//! The whole network on the CPU, composed from `ops`: forward, loss and
//! backward for one batch. The CPU trainer, the gradient checks and the
//! GPU-vs-CPU step test all go through here.

use super::ops;
use crate::graph::Graph;

/// Activations of one batch: `outputs[l]` is layer l's output (rows, outputs_l).
pub struct Forward {
    pub rows: usize,
    pub outputs: Vec<Vec<f32>>,
}

impl Forward {
    pub fn logits(&self) -> &[f32] {
        self.outputs.last().map_or(&[], |v| v.as_slice())
    }
}

/// y_l = act_l(y_{l-1} · W_lᵀ + b_l), y_{-1} = x (rows, input_size).
pub fn forward(graph: &Graph, params: &[f32], x: &[f32], rows: usize) -> Forward {
    let mut outputs: Vec<Vec<f32>> = Vec::with_capacity(graph.layers.len());
    for layer in &graph.layers {
        let input = outputs.last().map_or(x, |v| v.as_slice());
        let w = &params[graph.params[layer.weight].range()];
        let b = &params[graph.params[layer.bias].range()];
        let mut y = vec![0.0; rows * layer.outputs];
        ops::matmul_nt(input, w, &mut y, rows, layer.inputs, layer.outputs);
        ops::bias_activation(&mut y, b, layer.activation, layer.outputs);
        outputs.push(y);
    }
    Forward { rows, outputs }
}

/// Mean cross-entropy loss over the batch and the gradient of it with respect
/// to every parameter, written into `grads` (flat, same layout as `params`).
/// Returns (Σ loss, correct count, the forward pass).
pub fn loss_and_grads(
    graph: &Graph,
    params: &[f32],
    x: &[f32],
    labels: &[u32],
    grads: &mut [f32],
) -> (f32, u32, Forward) {
    let rows = labels.len();
    let fwd = forward(graph, params, x, rows);
    let last = graph.layers.len() - 1;
    let mut dz = vec![0.0; rows * graph.classes()];
    let (loss_sum, correct) =
        ops::softmax_xent(fwd.logits(), labels, &mut dz, rows, graph.classes());
    for l in (0..=last).rev() {
        let layer = &graph.layers[l];
        if l < last {
            ops::activation_backward(layer.activation, &fwd.outputs[l], &mut dz);
        }
        let input = if l == 0 { x } else { &fwd.outputs[l - 1] };
        // dW (out,in) = dzᵀ · x ;  db = Σ_rows dz ;  dx (rows,in) = dz · W
        let w_range = graph.params[layer.weight].range();
        ops::matmul_tn(
            &dz,
            input,
            &mut grads[w_range.clone()],
            layer.outputs,
            rows,
            layer.inputs,
        );
        ops::bias_grad(
            &dz,
            &mut grads[graph.params[layer.bias].range()],
            layer.outputs,
        );
        if l > 0 {
            let mut dx = vec![0.0; rows * layer.inputs];
            ops::matmul_nn(
                &dz,
                &params[w_range],
                &mut dx,
                rows,
                layer.outputs,
                layer.inputs,
            );
            dz = dx;
        }
    }
    (loss_sum, correct, fwd)
}
