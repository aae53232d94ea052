//! The whole network on the CPU, walking the graph's nodes through the
//! `Op` trait: forward, loss and backward for one batch. The CPU trainer,
//! `inspect`, the gradient checks and the GPU-vs-CPU step tests all go
//! through here.

use crate::graph::{GradTarget, Graph, Value};
use crate::ops::add::reference::accumulate;
use crate::ops::softmax_xent::reference::softmax_xent_smoothed;
use crate::ops::{split_ranges_mut, CpuBackward, CpuForward, Mode, Saved};

/// Activations of one batch: `outputs[i]` is node i's output (rows × its
/// output_len); `saved[i]` what node i kept for its backward pass.
pub struct Forward {
    pub rows: usize,
    pub outputs: Vec<Vec<f32>>,
    pub saved: Vec<Vec<Saved>>,
}

impl Forward {
    pub fn logits(&self) -> &[f32] {
        self.outputs.last().map_or(&[], |v| v.as_slice())
    }

    fn value<'a>(&'a self, x: &'a [f32], value: Value) -> &'a [f32] {
        match value {
            Value::Input => x,
            Value::Node(i) => &self.outputs[i],
        }
    }
}

/// Runs every node on x (rows, input_size) in `mode`; in training mode,
/// nodes with running statistics update them in `buffers` (the layout of
/// `Graph::buffers`), and `step` is the training step's number in the run.
pub fn forward(
    graph: &Graph,
    params: &[f32],
    buffers: &mut [f32],
    x: &[f32],
    rows: usize,
    mode: Mode,
    step: u64,
) -> Forward {
    let mut fwd = Forward {
        rows,
        outputs: Vec::with_capacity(graph.nodes.len()),
        saved: Vec::with_capacity(graph.nodes.len()),
    };
    for node in &graph.nodes {
        let mut output = vec![0.0; rows * node.output_len()];
        let mut saved: Vec<Saved> = node.saved.iter().map(|d| Saved::zeros(d, rows)).collect();
        let ranges: Vec<_> = node
            .buffers
            .iter()
            .map(|&b| graph.buffers[b].range())
            .collect();
        node.op.forward_cpu(CpuForward {
            mode,
            rows,
            step,
            seed: graph.seed,
            inputs: node.inputs.iter().map(|&v| fwd.value(x, v)).collect(),
            params: node
                .params
                .iter()
                .map(|&p| &params[graph.params[p].range()])
                .collect(),
            buffers: split_ranges_mut(buffers, &ranges),
            output: &mut output,
            saved: &mut saved,
        });
        fwd.outputs.push(output);
        fwd.saved.push(saved);
    }
    fwd
}

/// Given ∂L/∂logits in `delta`, walks the nodes backwards, writing every
/// parameter gradient into `grads` (flat, the layout of `params`). With
/// `input_grad` it returns ∂L/∂x, the gradient with respect to the input
/// batch; without, no node computes it and it returns nothing.
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
/// (then its activation's derivative is not applied). Follows
/// `Graph::backward_steps`: a value read by several nodes gets the sum of
/// their gradients.
#[allow(clippy::too_many_arguments)]
pub fn backward_from(
    graph: &Graph,
    params: &[f32],
    x: &[f32],
    fwd: &Forward,
    from: usize,
    pre_activation: bool,
    delta: Vec<f32>,
    grads: &mut [f32],
    input_grad: bool,
) -> Option<Vec<f32>> {
    let rows = fwd.rows;
    let mut value_grads: Vec<Option<Vec<f32>>> = vec![None; graph.nodes.len()];
    value_grads[from] = Some(delta);
    let mut grad_x: Option<Vec<f32>> = None;
    for step in graph.backward_steps(from, input_grad) {
        let node = &graph.nodes[step.node];
        let mut grad_output = value_grads[step.node]
            .take()
            .expect("a walked node's output has a gradient");
        let mut grad_inputs: Vec<Option<Vec<f32>>> = step
            .grad_inputs
            .iter()
            .zip(&node.inputs)
            .map(|(&target, &v)| {
                (target != GradTarget::Skip).then(|| vec![0.0; rows * graph.value_len(v)])
            })
            .collect();
        let ranges: Vec<_> = node
            .params
            .iter()
            .map(|&p| graph.params[p].range())
            .collect();
        node.op.backward_cpu(CpuBackward {
            rows,
            inputs: node.inputs.iter().map(|&v| fwd.value(x, v)).collect(),
            output: &fwd.outputs[step.node],
            saved: &fwd.saved[step.node],
            params: ranges.iter().map(|r| &params[r.clone()]).collect(),
            grad_output: &mut grad_output,
            skip_activation: step.node == from && pre_activation,
            grad_params: split_ranges_mut(grads, &ranges),
            grad_inputs: grad_inputs.iter_mut().map(|g| g.as_deref_mut()).collect(),
        });
        for ((&target, &v), grad) in step.grad_inputs.iter().zip(&node.inputs).zip(grad_inputs) {
            let slot = match v {
                Value::Input => &mut grad_x,
                Value::Node(j) => &mut value_grads[j],
            };
            match (target, grad) {
                (GradTarget::Write, Some(grad)) => *slot = Some(grad),
                (GradTarget::Accumulate, Some(grad)) => {
                    accumulate(slot.as_mut().expect("written before"), &grad)
                }
                _ => {}
            }
        }
    }
    grad_x
}

/// Mean cross-entropy loss over the batch and its gradient with respect to
/// every parameter, written into `grads`, in training mode (so `buffers`
/// take this batch's running statistics) at training step `step`.
/// Returns (Σ loss, correct, forward).
pub fn loss_and_grads(
    graph: &Graph,
    params: &[f32],
    buffers: &mut [f32],
    x: &[f32],
    labels: &[u32],
    grads: &mut [f32],
    step: u64,
) -> (f32, u32, Forward) {
    let rows = labels.len();
    let fwd = forward(graph, params, buffers, x, rows, Mode::Train, step);
    let mut delta = vec![0.0; rows * graph.classes()];
    let classes = graph.classes();
    let smoothing = graph.label_smoothing;
    let (loss_sum, correct) =
        softmax_xent_smoothed(fwd.logits(), labels, &mut delta, rows, classes, smoothing);
    backward(graph, params, x, &fwd, delta, grads, false);
    (loss_sum, correct, fwd)
}
