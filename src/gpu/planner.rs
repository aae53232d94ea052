//! The GPU planner: a graph and a batch size become device buffers and
//! recorded launches, all created here, once. It walks the same node list
//! as the CPU network (`cpu/network.rs`), through the same `Op` trait, and
//! follows the same backward order (`Graph::backward_steps`).

use super::kernel::{Binding, Dispatch};
use super::{GpuContext, Kernels};
use crate::graph::{GradTarget, Graph, Value};
use crate::ops::{GpuBackward, GpuForward, Mode};

/// Per-node device buffers for one batch.
pub struct Activations {
    /// The input batch (batch × input size) and its labels.
    pub x: wgpu::Buffer,
    pub labels: wgpu::Buffer,
    /// outputs[i]: node i's output; deltas[i]: the loss gradient with
    /// respect to it (then, in place, to its pre-activation).
    pub outputs: Vec<wgpu::Buffer>,
    pub deltas: Vec<wgpu::Buffer>,
    /// What each node keeps for its backward pass, in its declared order.
    pub saved: Vec<Vec<wgpu::Buffer>>,
    /// Where the later gradients of a value read by several nodes land
    /// before they are added to `deltas` (None for values read once).
    pub scratch: Vec<Option<wgpu::Buffer>>,
    /// ∂objective/∂x, for the backward passes that run to the input.
    pub input_grad: wgpu::Buffer,
    pub input_scratch: Option<wgpu::Buffer>,
}

impl Activations {
    pub fn new(ctx: &GpuContext, graph: &Graph, batch: usize) -> Activations {
        let consumers = graph.consumers();
        let input_readers = graph
            .nodes
            .iter()
            .flat_map(|n| &n.inputs)
            .filter(|&&v| v == Value::Input)
            .count();
        let per_node = |prefix: &str| -> Vec<wgpu::Buffer> {
            graph
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| ctx.storage_zeroed(&format!("{prefix}{i}"), batch * n.output_len()))
                .collect()
        };
        let input_len = batch * graph.input_size();
        Activations {
            x: ctx.storage_zeroed("batch x", input_len),
            labels: ctx.storage_zeroed("batch labels", batch),
            outputs: per_node("y"),
            deltas: per_node("dy"),
            saved: graph
                .nodes
                .iter()
                .map(|n| {
                    n.saved
                        .iter()
                        .map(|d| {
                            ctx.storage_zeroed(&format!("{} {}", n.name, d.name), d.elements(batch))
                        })
                        .collect()
                })
                .collect(),
            scratch: graph
                .nodes
                .iter()
                .zip(&consumers)
                .map(|(n, &readers)| {
                    (readers > 1).then(|| {
                        ctx.storage_zeroed(&format!("{} grad part", n.name), batch * n.output_len())
                    })
                })
                .collect(),
            input_grad: ctx.storage_zeroed("input grad", input_len),
            input_scratch: (input_readers > 1)
                .then(|| ctx.storage_zeroed("input grad part", input_len)),
        }
    }

    /// The buffer holding `value`.
    pub fn value(&self, value: Value) -> &wgpu::Buffer {
        match value {
            Value::Input => &self.x,
            Value::Node(i) => &self.outputs[i],
        }
    }
}

/// The device buffers the planner binds: the flat parameter, gradient and
/// non-trainable-buffer vectors, and the batch's activations.
pub struct Planner<'a> {
    pub ctx: &'a GpuContext,
    pub kernels: &'a Kernels,
    pub graph: &'a Graph,
    pub batch: usize,
    pub params: &'a wgpu::Buffer,
    pub grads: &'a wgpu::Buffer,
    pub buffers: &'a wgpu::Buffer,
    pub acts: &'a Activations,
}

impl<'a> Planner<'a> {
    fn tensors(
        &self,
        flat: &'a wgpu::Buffer,
        infos: &[crate::graph::ParamInfo],
        idx: &[usize],
    ) -> Vec<Binding<'a>> {
        idx.iter()
            .map(|&i| Binding::range(flat, infos[i].offset, infos[i].len()))
            .collect()
    }

    /// The forward pass of every node, from the batch in `acts.x`; in
    /// training, `steps` is the split's step slots.
    pub fn forward(&self, mode: Mode, steps: Option<&wgpu::Buffer>) -> Vec<Dispatch> {
        let acts = self.acts;
        let mut list = Vec::new();
        for (i, node) in self.graph.nodes.iter().enumerate() {
            list.extend(
                node.op.forward_gpu(GpuForward {
                    ctx: self.ctx,
                    kernels: self.kernels,
                    mode,
                    batch: self.batch,
                    steps,
                    seed: self.graph.seed,
                    inputs: node
                        .inputs
                        .iter()
                        .map(|&v| Binding::whole(acts.value(v)))
                        .collect(),
                    params: self.tensors(self.params, &self.graph.params, &node.params),
                    buffers: self.tensors(self.buffers, &self.graph.buffers, &node.buffers),
                    output: Binding::whole(&acts.outputs[i]),
                    saved: acts.saved[i].iter().map(Binding::whole).collect(),
                }),
            );
        }
        list
    }

    /// The backward pass from node `from`, whose `deltas` buffer holds the
    /// seed gradient — with respect to its pre-activation when
    /// `pre_activation`, else to its output — down to the first nodes,
    /// writing every parameter gradient on the way into `grads`, and
    /// ∂/∂x into `acts.input_grad` when `input_grad`.
    pub fn backward(&self, from: usize, pre_activation: bool, input_grad: bool) -> Vec<Dispatch> {
        let acts = self.acts;
        let mut list = Vec::new();
        for step in self.graph.backward_steps(from, input_grad) {
            let node = &self.graph.nodes[step.node];
            // Where each input's gradient goes, and the sums to add after.
            let mut sums = Vec::new();
            let grad_inputs = step
                .grad_inputs
                .iter()
                .zip(&node.inputs)
                .map(|(&target, &v)| {
                    let (total, part) = match v {
                        Value::Input => (&acts.input_grad, acts.input_scratch.as_ref()),
                        Value::Node(j) => (&acts.deltas[j], acts.scratch[j].as_ref()),
                    };
                    match target {
                        GradTarget::Skip => None,
                        GradTarget::Write => Some(Binding::whole(total)),
                        GradTarget::Accumulate => {
                            let part = part.expect("a value read twice has a scratch buffer");
                            sums.push((v, part, total));
                            Some(Binding::whole(part))
                        }
                    }
                })
                .collect();
            list.extend(
                node.op.backward_gpu(GpuBackward {
                    ctx: self.ctx,
                    kernels: self.kernels,
                    batch: self.batch,
                    inputs: node
                        .inputs
                        .iter()
                        .map(|&v| Binding::whole(acts.value(v)))
                        .collect(),
                    output: Binding::whole(&acts.outputs[step.node]),
                    saved: acts.saved[step.node].iter().map(Binding::whole).collect(),
                    params: self.tensors(self.params, &self.graph.params, &node.params),
                    grad_output: Binding::whole(&acts.deltas[step.node]),
                    skip_activation: step.node == from && pre_activation,
                    grad_params: self.tensors(self.grads, &self.graph.params, &node.params),
                    grad_inputs,
                }),
            );
            for (v, part, total) in sums {
                let len = self.batch * self.graph.value_len(v);
                list.push(self.kernels.accumulate(
                    self.ctx,
                    len,
                    Binding::whole(part),
                    Binding::whole(total),
                ));
            }
        }
        list
    }
}
