//! `--device gpu`: the graph planned on the GPU. Everything is created here,
//! once: the resident datasets, every activation, gradient, parameter and
//! optimiser-state buffer, every pipeline's bind group. An epoch then only
//! writes the order and the step slots, records steps (several per submit)
//! and reads the metrics once.

use super::kernel::{Binding, Dispatch, StepSlots};
use super::launch::{MatmulForm, MatmulShape, METRICS_WORDS};
use super::timing::{GpuTimer, TimingSource};
use super::{GpuContext, Kernels};
use crate::backend::{Backend, EpochPlan, EpochStats, Optimizer, Progress, Update};
use crate::data::Dataset;
use crate::graph::{Activation, Graph, Node};
use anyhow::{bail, ensure, Result};

/// Steps recorded into one command buffer before it is submitted.
const STEPS_PER_SUBMIT: usize = 16;

/// A split of the data set as it lives on the GPU.
struct ResidentSplit {
    len: usize,
    images: wgpu::Buffer,
    labels: wgpu::Buffer,
    order: wgpu::Buffer,
    steps: StepSlots,
    metrics: wgpu::Buffer,
}

impl ResidentSplit {
    fn upload(ctx: &GpuContext, name: &str, data: &Dataset, batch: usize) -> ResidentSplit {
        // u8 pixels packed four to a u32, as gather.wgsl reads them.
        let mut bytes = data.images.clone();
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        let packed: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let labels: Vec<u32> = data.labels.iter().map(|&l| u32::from(l)).collect();
        let identity: Vec<u32> = (0..data.len() as u32).collect();
        let steps = StepSlots::new(ctx, name, data.len().div_ceil(batch));
        steps.write_epoch(ctx, data.len(), batch, 0, &[]);
        ResidentSplit {
            len: data.len(),
            images: ctx.storage_init(&format!("{name} images"), &packed),
            labels: ctx.storage_init(&format!("{name} labels"), &labels),
            order: ctx.storage_init(&format!("{name} order"), &identity),
            steps,
            metrics: ctx.storage_zeroed(&format!("{name} metrics"), METRICS_WORDS),
        }
    }

    fn n_steps(&self) -> usize {
        self.steps.capacity
    }
}

/// Per-node activation buffers of one batch.
struct Activations {
    x: wgpu::Buffer,
    labels: wgpu::Buffer,
    /// outputs[i]: node i's output; deltas[i]: the loss gradient with
    /// respect to it (then, in place, to its pre-activation).
    outputs: Vec<wgpu::Buffer>,
    deltas: Vec<wgpu::Buffer>,
    /// The winners of each max-pool node (a placeholder elsewhere).
    argmax: Vec<wgpu::Buffer>,
}

impl Activations {
    fn new(ctx: &GpuContext, graph: &Graph, batch: usize) -> Activations {
        let per_node = |prefix: &str| -> Vec<wgpu::Buffer> {
            graph
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| ctx.storage_zeroed(&format!("{prefix}{i}"), batch * n.output_len()))
                .collect()
        };
        Activations {
            x: ctx.storage_zeroed("batch x", batch * graph.input_size()),
            labels: ctx.storage_zeroed("batch labels", batch),
            outputs: per_node("y"),
            deltas: per_node("dy"),
            argmax: graph
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| match n {
                    Node::MaxPool(_) => {
                        ctx.storage_zeroed(&format!("argmax{i}"), batch * n.output_len())
                    }
                    _ => ctx.storage_zeroed("unused argmax", 1),
                })
                .collect(),
        }
    }

    /// Node i's input: the batch or the previous node's output.
    fn input(&self, i: usize) -> &wgpu::Buffer {
        if i == 0 {
            &self.x
        } else {
            &self.outputs[i - 1]
        }
    }
}

pub struct GpuTrainer {
    ctx: GpuContext,
    kernels: Kernels,
    graph: Graph,
    batch: usize,
    params: wgpu::Buffer,
    grads: wgpu::Buffer,
    /// Velocity (SGD) or the first and second moments (Adam).
    state: Vec<wgpu::Buffer>,
    acts: Activations,
    /// ∂objective/∂x for `input_gradient`.
    input_grad: wgpu::Buffer,
    train: ResidentSplit,
    test: ResidentSplit,
    train_step: Vec<Dispatch>,
    eval_step: Vec<Dispatch>,
    /// The forward pass alone, from whatever `acts.x` holds.
    infer_step: Vec<Dispatch>,
    /// Backward passes from a node to the input, made on first use.
    input_grad_steps: std::collections::HashMap<usize, Vec<Dispatch>>,
}

/// Records the gather of a batch of `split`, the forward pass, then the loss.
fn forward_dispatches(
    ctx: &GpuContext,
    kernels: &Kernels,
    graph: &Graph,
    batch: usize,
    params: &wgpu::Buffer,
    acts: &Activations,
    split: &ResidentSplit,
) -> Vec<Dispatch> {
    let mut list = vec![kernels.gather(
        ctx,
        &split.steps.buffer,
        graph.input_size(),
        batch,
        Binding::whole(&split.images),
        Binding::whole(&split.labels),
        Binding::whole(&split.order),
        Binding::whole(&acts.x),
        Binding::whole(&acts.labels),
    )];
    list.extend(node_dispatches(ctx, kernels, graph, batch, params, acts));
    let last = graph.nodes.len() - 1;
    list.push(kernels.softmax_xent(
        ctx,
        &split.steps.buffer,
        batch,
        graph.classes(),
        Binding::whole(&acts.outputs[last]),
        Binding::whole(&acts.labels),
        Binding::whole(&acts.deltas[last]),
        Binding::whole(&split.metrics),
    ));
    list
}

/// Records the forward pass of every node, from the batch in `acts.x`.
fn node_dispatches(
    ctx: &GpuContext,
    kernels: &Kernels,
    graph: &Graph,
    batch: usize,
    params: &wgpu::Buffer,
    acts: &Activations,
) -> Vec<Dispatch> {
    let param = |idx: usize| {
        let info = &graph.params[idx];
        Binding::range(params, info.offset, info.len())
    };
    let mut list = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let input = Binding::whole(acts.input(i));
        let output = Binding::whole(&acts.outputs[i]);
        list.push(match node {
            Node::Dense(d) => kernels.matmul(
                ctx,
                MatmulForm::NT,
                MatmulShape {
                    m: batch,
                    n: d.outputs,
                    k: d.inputs,
                },
                input,
                param(d.weight),
                Some(param(d.bias)),
                d.activation,
                output,
            ),
            Node::Conv(c) => {
                kernels.conv2d_forward(ctx, c, batch, input, param(c.weight), param(c.bias), output)
            }
            Node::MaxPool(p) => kernels.maxpool_forward(
                ctx,
                p,
                batch,
                input,
                output,
                Binding::whole(&acts.argmax[i]),
            ),
        });
    }
    list
}

/// Where a backward pass starts and what it produces.
struct BackwardFrom<'a> {
    /// The node whose `deltas` buffer holds the seed gradient.
    node: usize,
    /// The seed is the gradient with respect to the node's pre-activation
    /// (so its activation's derivative is not applied); otherwise with
    /// respect to its output.
    pre_activation: bool,
    /// Where the gradient with respect to the input batch goes, if wanted.
    input_grad: Option<&'a wgpu::Buffer>,
}

/// Records the backward pass from `from.node` down to the first node,
/// writing every parameter gradient on the way into `grads`.
#[allow(clippy::too_many_arguments)]
fn backward_dispatches(
    ctx: &GpuContext,
    kernels: &Kernels,
    graph: &Graph,
    batch: usize,
    params: &wgpu::Buffer,
    grads: &wgpu::Buffer,
    acts: &Activations,
    from: BackwardFrom,
) -> Vec<Dispatch> {
    let range = |buf, idx: usize| {
        let info = &graph.params[idx];
        Binding::range(buf, info.offset, info.len())
    };
    let mut list = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate().take(from.node + 1).rev() {
        let input = Binding::whole(acts.input(i));
        let delta = Binding::whole(&acts.deltas[i]);
        let activation = match node {
            Node::Dense(_) | Node::Conv(_) if i == from.node && from.pre_activation => {
                Activation::Identity
            }
            Node::Dense(d) => d.activation,
            Node::Conv(c) => c.activation,
            Node::MaxPool(_) => Activation::Identity,
        };
        if activation != Activation::Identity {
            // dz = dy ⊙ f'(y), in place
            list.push(kernels.activation_backward(
                ctx,
                activation,
                batch * node.output_len(),
                Binding::whole(&acts.outputs[i]),
                delta,
            ));
        }
        let dx = if i > 0 {
            Some(Binding::whole(&acts.deltas[i - 1]))
        } else {
            from.input_grad.map(Binding::whole)
        };
        match node {
            Node::Dense(d) => {
                // dW (out,in) = dzᵀ · x
                list.push(kernels.matmul(
                    ctx,
                    MatmulForm::TN,
                    MatmulShape {
                        m: d.outputs,
                        n: d.inputs,
                        k: batch,
                    },
                    delta,
                    input,
                    None,
                    Activation::Identity,
                    range(grads, d.weight),
                ));
                // db = Σ_rows dz
                list.push(kernels.bias_grad(ctx, batch, d.outputs, delta, range(grads, d.bias)));
                // dx (batch,in) = dz · W
                if let Some(dx) = dx {
                    list.push(kernels.matmul(
                        ctx,
                        MatmulForm::NN,
                        MatmulShape {
                            m: batch,
                            n: d.inputs,
                            k: d.outputs,
                        },
                        delta,
                        range(params, d.weight),
                        None,
                        Activation::Identity,
                        dx,
                    ));
                }
            }
            Node::Conv(c) => {
                list.push(kernels.conv2d_backward_weight(
                    ctx,
                    c,
                    batch,
                    delta,
                    input,
                    range(grads, c.weight),
                ));
                list.push(kernels.conv2d_backward_bias(ctx, c, batch, delta, range(grads, c.bias)));
                if let Some(dx) = dx {
                    list.push(kernels.conv2d_backward_input(
                        ctx,
                        c,
                        batch,
                        delta,
                        range(params, c.weight),
                        dx,
                    ));
                }
            }
            Node::MaxPool(p) => {
                if let Some(dx) = dx {
                    list.push(kernels.maxpool_backward(
                        ctx,
                        p,
                        batch,
                        delta,
                        Binding::whole(&acts.argmax[i]),
                        dx,
                    ));
                }
            }
        }
    }
    list
}

impl GpuTrainer {
    /// Writes up to a batch of inputs into the batch buffer, zero-padded.
    fn write_batch(&self, x: &[f32]) -> Result<()> {
        let size = self.graph.input_size();
        ensure!(x.len() <= self.batch * size, "more inputs than a batch");
        let mut padded = vec![0.0f32; self.batch * size];
        padded[..x.len()].copy_from_slice(x);
        self.ctx
            .queue
            .write_buffer(&self.acts.x, 0, bytemuck::cast_slice(&padded));
        Ok(())
    }

    pub fn new(
        ctx: GpuContext,
        graph: &Graph,
        batch: usize,
        optimizer: Optimizer,
        init: &[f32],
        train: &Dataset,
        test: &Dataset,
    ) -> Result<GpuTrainer> {
        ensure!(
            init.len() == graph.param_len,
            "parameter vector has the wrong length"
        );
        let guard = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let kernels = Kernels::new(&ctx);
        let train_split = ResidentSplit::upload(&ctx, "train", train, batch);
        let test_split = ResidentSplit::upload(&ctx, "test", test, batch);
        let params = ctx.storage_init("params", init);
        let grads = ctx.storage_zeroed("grads", graph.param_len);
        let state: Vec<wgpu::Buffer> = (0..optimizer.state_vectors())
            .map(|i| ctx.storage_zeroed(&format!("optimizer state {i}"), graph.param_len))
            .collect();
        let acts = Activations::new(&ctx, graph, batch);

        let infer_step = node_dispatches(&ctx, &kernels, graph, batch, &params, &acts);
        let eval_step =
            forward_dispatches(&ctx, &kernels, graph, batch, &params, &acts, &test_split);
        let mut train_step =
            forward_dispatches(&ctx, &kernels, graph, batch, &params, &acts, &train_split);
        let last = graph.nodes.len() - 1;
        train_step.extend(backward_dispatches(
            &ctx,
            &kernels,
            graph,
            batch,
            &params,
            &grads,
            &acts,
            BackwardFrom {
                node: last,
                pre_activation: false,
                input_grad: None,
            },
        ));
        let state_bindings: Vec<Binding> = state.iter().map(Binding::whole).collect();
        train_step.push(kernels.optimizer_update(
            &ctx,
            &train_split.steps.buffer,
            &optimizer,
            graph.param_len,
            Binding::whole(&params),
            Binding::whole(&grads),
            &state_bindings,
        ));
        ctx.check(guard)?;

        Ok(GpuTrainer {
            batch,
            graph: graph.clone(),
            params,
            grads,
            state,
            input_grad: ctx.storage_zeroed("input grad", batch * graph.input_size()),
            acts,
            kernels,
            train: train_split,
            test: test_split,
            train_step,
            eval_step,
            infer_step,
            input_grad_steps: Default::default(),
            ctx,
        })
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Kernel launches in one training step.
    pub fn dispatches_per_step(&self) -> usize {
        self.train_step.len()
    }

    /// The launches of one training step, in order (they read step slot 0
    /// when recorded alone): for timing them one by one.
    pub fn train_step_dispatches(&self) -> &[Dispatch] {
        &self.train_step
    }

    /// Runs every step of an epoch over `split`, STEPS_PER_SUBMIT per submit,
    /// reporting progress as submissions complete, and reads the metrics
    /// once — or also every `report_every` steps when asked to.
    /// Runs every step of an epoch over `split`, STEPS_PER_SUBMIT per submit,
    /// reporting progress as submissions complete, and reads the metrics
    /// once — and also, when asked, the running sums every `report_every`
    /// steps and the first layer's weights every `snapshot_every` steps
    /// (each such stop is a read-back that waits for the GPU).
    fn run_epoch(
        &self,
        training: bool,
        report_every: usize,
        snapshot_every: usize,
        progress: Progress,
    ) -> Result<EpochStats> {
        let (split, step) = if training {
            (&self.train, &self.train_step)
        } else {
            (&self.test, &self.eval_step)
        };
        let mut clear = self.ctx.device.create_command_encoder(&Default::default());
        clear.clear_buffer(&split.metrics, 0, None);
        self.ctx.queue.submit([clear.finish()]);

        let next_multiple =
            |done: usize, every: usize| done.checked_div(every).map(|k| (k + 1) * every);
        let is_multiple = |done: usize, every: usize| every > 0 && done.is_multiple_of(every);
        let steps = split.n_steps();
        let mut in_flight: Option<(wgpu::SubmissionIndex, usize)> = None;
        let mut first = 0;
        while first < steps {
            let last = [
                Some(first + STEPS_PER_SUBMIT),
                Some(steps),
                next_multiple(first, report_every),
                next_multiple(first, snapshot_every),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(steps);
            let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(if training {
                        "train steps"
                    } else {
                        "eval steps"
                    }),
                    timestamp_writes: None,
                });
                for s in first..last {
                    for d in step {
                        d.record(&mut pass, s);
                    }
                }
            }
            let submitted = self.ctx.queue.submit([encoder.finish()]);
            let examples = |done: usize| (done * self.batch).min(split.len);
            let (report_due, snapshot_due) = (
                is_multiple(last, report_every),
                is_multiple(last, snapshot_every),
            );
            if report_due || snapshot_due {
                // A stop: wait for everything and read what is asked for.
                let report = if report_due {
                    Some((last, self.read_metrics(&split.metrics)?))
                } else {
                    None
                };
                let snapshot = if snapshot_due {
                    let first_weight = &self.graph.params[0];
                    Some((
                        last,
                        self.ctx
                            .read(&self.params, first_weight.offset, first_weight.len())?,
                    ))
                } else {
                    None
                };
                self.ctx.wait()?;
                progress(Update {
                    examples: examples(last),
                    report,
                    snapshot,
                });
                in_flight = None;
            } else if let Some((previous, done)) = in_flight.replace((submitted, last)) {
                // Keep one submission queued behind the one running; report
                // the older one's steps once it is done.
                self.ctx.wait_for(previous)?;
                progress(Update {
                    examples: examples(done),
                    report: None,
                    snapshot: None,
                });
            }
            first = last;
        }
        let stats = self.read_metrics(&split.metrics)?;
        progress(Update {
            examples: split.len,
            report: None,
            snapshot: None,
        });
        Ok(stats)
    }

    fn read_metrics(&self, metrics: &wgpu::Buffer) -> Result<EpochStats> {
        let words: Vec<u32> = self.ctx.read(metrics, 0, METRICS_WORDS)?;
        Ok(EpochStats {
            loss_sum: f64::from(f32::from_bits(words[0])),
            correct: u64::from(words[1]),
            count: u64::from(words[3]),
            bad_step: words[2].checked_sub(1).map(|s| s as usize),
        })
    }

    /// Each launch of a training step timed alone, `reps` times after a
    /// warm-up: its name and mean seconds, where a step's time goes. GPU
    /// timestamps where the adapter has them, the wall clock otherwise
    /// (the returned source says which).
    pub fn time_dispatches(&self, reps: usize) -> Result<(TimingSource, Vec<(&'static str, f64)>)> {
        let timer = GpuTimer::new(&self.ctx);
        let mut times = Vec::new();
        for d in &self.train_step {
            let one = std::slice::from_ref(d);
            let passes = vec![one; reps + 1];
            let seconds = timer.time_passes(&self.ctx, &passes)?;
            times.push((
                d.name,
                seconds[1..].iter().sum::<f64>() / reps.max(1) as f64,
            ));
        }
        Ok((timer.source(), times))
    }
}

impl Backend for GpuTrainer {
    fn device(&self) -> &'static str {
        "gpu"
    }

    fn adapter(&self) -> String {
        self.ctx.describe()
    }

    fn train_epoch(&mut self, plan: EpochPlan, progress: Progress) -> Result<EpochStats> {
        ensure!(
            plan.order.len() == self.train.len,
            "the order must cover the training set"
        );
        ensure!(
            plan.lrs.len() == self.train.n_steps(),
            "one learning rate per step"
        );
        self.ctx
            .queue
            .write_buffer(&self.train.order, 0, bytemuck::cast_slice(plan.order));
        self.train.steps.write_epoch(
            &self.ctx,
            self.train.len,
            self.batch,
            plan.first_step,
            plan.lrs,
        );
        self.run_epoch(true, plan.report_every, plan.snapshot_every, progress)
    }

    fn evaluate(&mut self, progress: Progress) -> Result<EpochStats> {
        self.run_epoch(false, 0, 0, progress)
    }

    fn params(&self) -> Result<Vec<f32>> {
        self.ctx.read(&self.params, 0, self.graph.param_len)
    }

    fn optimizer_state(&self) -> Result<Vec<Vec<f32>>> {
        self.state
            .iter()
            .map(|b| self.ctx.read(b, 0, self.graph.param_len))
            .collect()
    }

    fn load_state(&mut self, params: &[f32], optimizer_state: &[Vec<f32>]) -> Result<()> {
        if params.len() != self.graph.param_len
            || optimizer_state.len() != self.state.len()
            || optimizer_state
                .iter()
                .any(|v| v.len() != self.graph.param_len)
        {
            bail!("the saved state does not fit this model and optimiser");
        }
        self.ctx
            .queue
            .write_buffer(&self.params, 0, bytemuck::cast_slice(params));
        for (buf, values) in self.state.iter().zip(optimizer_state) {
            self.ctx
                .queue
                .write_buffer(buf, 0, bytemuck::cast_slice(values));
        }
        self.ctx.wait()
    }

    fn node_count(&self) -> usize {
        self.graph.nodes.len()
    }

    fn node_outputs(&mut self, x: &[f32], rows: usize, nodes: &[usize]) -> Result<Vec<Vec<f32>>> {
        let size = self.graph.input_size();
        ensure!(
            x.len() == rows * size,
            "{rows} inputs need {} values",
            rows * size
        );
        let mut outputs: Vec<Vec<f32>> = vec![Vec::new(); nodes.len()];
        for chunk in x.chunks(self.batch * size) {
            self.write_batch(chunk)?;
            self.ctx.run(&self.infer_step);
            let n = chunk.len() / size;
            for (out, &node) in outputs.iter_mut().zip(nodes) {
                let len = self.graph.nodes[node].output_len();
                out.extend(self.ctx.read::<f32>(&self.acts.outputs[node], 0, n * len)?);
            }
        }
        Ok(outputs)
    }

    fn input_gradient(
        &mut self,
        x: &[f32],
        rows: usize,
        node: usize,
        seed: &[f32],
    ) -> Result<Vec<f32>> {
        let size = self.graph.input_size();
        let out_len = self.graph.nodes[node].output_len();
        ensure!(
            rows <= self.batch,
            "input_gradient takes at most {} rows",
            self.batch
        );
        ensure!(
            x.len() == rows * size && seed.len() == rows * out_len,
            "input_gradient: wrong lengths"
        );
        if !self.input_grad_steps.contains_key(&node) {
            let steps = backward_dispatches(
                &self.ctx,
                &self.kernels,
                &self.graph,
                self.batch,
                &self.params,
                &self.grads,
                &self.acts,
                BackwardFrom {
                    node,
                    pre_activation: true,
                    input_grad: Some(&self.input_grad),
                },
            );
            self.input_grad_steps.insert(node, steps);
        }
        self.write_batch(x)?;
        let mut padded = vec![0.0f32; self.batch * out_len];
        padded[..seed.len()].copy_from_slice(seed);
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for d in &self.infer_step {
                d.record(&mut pass, 0);
            }
        }
        self.ctx.queue.submit([encoder.finish()]);
        // The seed goes in after the forward pass (which does not touch deltas).
        self.ctx
            .queue
            .write_buffer(&self.acts.deltas[node], 0, bytemuck::cast_slice(&padded));
        self.ctx.run(&self.input_grad_steps[&node]);
        self.ctx.read(&self.input_grad, 0, rows * size)
    }
}
