//! `--device gpu`: the graph planned on the GPU. Everything is created when
//! the trainer is: the resident datasets, every activation, gradient,
//! parameter and optimiser-state buffer, every launch (recorded by the
//! planner, `planner.rs`). An epoch then only writes the order and the step
//! slots, records steps (several per submit) and reads the metrics once.

use super::kernel::{Binding, Dispatch, StepSlots};
use super::planner::{Activations, Planner};
use super::timing::{GpuTimer, TimingSource};
use super::{GpuContext, Kernels};
use crate::backend::{Backend, EpochPlan, EpochStats, OnUpdate, Optimizer, Update};
use crate::data::Dataset;
use crate::graph::Graph;
use crate::memory;
use crate::ops::gather::{Augment, GatherInput};
use crate::ops::softmax_xent::METRICS_WORDS;
use crate::ops::Mode;
use anyhow::{bail, ensure, Result};
use std::ops::Range;

/// Steps recorded into one command buffer before it is submitted.
const STEPS_PER_SUBMIT: usize = 16;

/// A split of the data set as it lives on the GPU.
struct ResidentSplit {
    len: usize,
    /// The u8 pixels, packed four to a u32 as gather.wgsl reads them, in
    /// chunks of whole images that each fit one storage binding: the image
    /// range each holds, and its buffer.
    chunks: Vec<(Range<usize>, wgpu::Buffer)>,
    labels: wgpu::Buffer,
    order: wgpu::Buffer,
    steps: StepSlots,
    metrics: wgpu::Buffer,
}

/// Megabytes, for messages.
fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Splits `n` images of `image_bytes` each into ranges whose packed bytes
/// fit in `max_bytes` (a multiple of 4).
fn chunk_ranges(
    name: &str,
    n: usize,
    image_bytes: usize,
    max_bytes: u64,
) -> Result<Vec<Range<usize>>> {
    let per_chunk = (max_bytes / image_bytes.max(1) as u64) as usize;
    ensure!(
        per_chunk > 0,
        "the {name} set's images are {image_bytes} bytes each, more than the GPU's largest \
         storage binding ({max_bytes} bytes); train with --device cpu"
    );
    Ok((0..n.max(1))
        .step_by(per_chunk)
        .map(|first| first..(first + per_chunk).min(n))
        .collect())
}

impl ResidentSplit {
    fn upload(ctx: &GpuContext, name: &str, data: &Dataset, batch: usize) -> Result<ResidentSplit> {
        let size = data.input_size();
        let ranges = chunk_ranges(name, data.len(), size, ctx.max_data_buffer_bytes)?;
        let total = data.images.len() as u64;
        let guard = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let chunks: Vec<(Range<usize>, wgpu::Buffer)> = ranges
            .into_iter()
            .map(|range| {
                let bytes = &data.images[range.start * size..range.end * size];
                let words = bytes.chunks_exact(4);
                let tail = words.remainder();
                let mut packed: Vec<u32> = words
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                if !tail.is_empty() {
                    let mut last = [0u8; 4];
                    last[..tail.len()].copy_from_slice(tail);
                    packed.push(u32::from_le_bytes(last));
                }
                let label = format!("{name} images {}..{}", range.start, range.end);
                let buffer = ctx.storage_init(&label, &packed);
                (range, buffer)
            })
            .collect();
        if let Some(e) = pollster::block_on(guard.pop()) {
            bail!(
                "the {name} set does not fit on the GPU: its {} images are {} of u8 pixels \
                 (in {} buffers of at most {}), beside {} already allocated ({e}). \
                 Use --train-limit/--test-limit, or --device cpu",
                data.len(),
                mb(total),
                chunks.len(),
                mb(ctx.max_data_buffer_bytes),
                mb(ctx.allocated_bytes() - total),
            );
        }
        let labels: Vec<u32> = data.labels.iter().map(|&l| u32::from(l)).collect();
        let identity: Vec<u32> = (0..data.len() as u32).collect();
        let steps = StepSlots::new(ctx, name, data.len().div_ceil(batch));
        steps.write_epoch(ctx, data.len(), batch, 0, &[]);
        Ok(ResidentSplit {
            len: data.len(),
            chunks,
            labels: ctx.storage_init(&format!("{name} labels"), &labels),
            order: ctx.storage_init(&format!("{name} order"), &identity),
            steps,
            metrics: ctx.storage_zeroed(&format!("{name} metrics"), METRICS_WORDS),
        })
    }

    fn n_steps(&self) -> usize {
        self.steps.capacity
    }
}

/// Refuses, before any is made, a buffer larger than the adapter allows
/// (wgpu would fail on it, or the process abort on the host's copy):
/// each buffer the trainer makes, named for the user. The datasets are
/// not among them: `ResidentSplit::upload` splits them across buffers and
/// names the limit itself.
fn check_buffer_sizes(ctx: &GpuContext, graph: &Graph, batch: usize) -> Result<()> {
    let limits = ctx.device.limits();
    let limit = limits
        .max_buffer_size
        .min(limits.max_storage_buffer_binding_size);
    let f32s = |n: Option<u64>| n.and_then(|n| memory::bytes_of(n, 4));
    let mut needs = vec![
        memory::Need::new(
            format!("the parameters ({} values)", graph.param_len),
            f32s(Some(graph.param_len as u64)),
        ),
        memory::Need::new(
            format!("a batch of {batch} inputs"),
            f32s((batch as u64).checked_mul(graph.input_size() as u64)),
        ),
    ];
    for node in &graph.nodes {
        needs.push(memory::Need::new(
            format!("{}: its output for a batch of {batch}", node.label()),
            f32s((batch as u64).checked_mul(node.output_len() as u64)),
        ));
        for saved in &node.saved {
            let n = if saved.per_example {
                (batch as u64).checked_mul(saved.len as u64)
            } else {
                Some(saved.len as u64)
            };
            needs.push(memory::Need::new(
                format!("{}: its saved {}", node.label(), saved.name),
                f32s(n),
            ));
        }
    }
    memory::check_each(
        &needs,
        limit,
        &format!("the largest buffer {} allows", ctx.describe()),
    )
}

pub struct GpuTrainer {
    ctx: GpuContext,
    kernels: Kernels,
    graph: Graph,
    batch: usize,
    params: wgpu::Buffer,
    grads: wgpu::Buffer,
    /// Non-trainable buffers (running statistics; layout `Graph::buffers`).
    buffers: wgpu::Buffer,
    /// Velocity (SGD) or the first and second moments (Adam).
    state: Vec<wgpu::Buffer>,
    acts: Activations,
    train: ResidentSplit,
    test: ResidentSplit,
    train_step: Vec<Dispatch>,
    eval_step: Vec<Dispatch>,
    /// The forward pass alone (evaluation mode), from whatever `acts.x` holds.
    infer_step: Vec<Dispatch>,
    /// Backward passes from a node to the input, made on first use.
    input_grad_steps: std::collections::HashMap<usize, Vec<Dispatch>>,
    /// How long opening and planning took (set by `open_trainer`).
    pub startup: Option<super::Startup>,
}

/// Records the gather of a batch of `split` into `acts.x`: one dispatch
/// per chunk of the resident pixels, augmented when `augment` is on.
fn gather(
    ctx: &GpuContext,
    kernels: &Kernels,
    graph: &Graph,
    batch: usize,
    acts: &Activations,
    split: &ResidentSplit,
    augment: Augment,
) -> Vec<Dispatch> {
    let scale = graph.normalization.scale(graph.input.c);
    let input = GatherInput {
        shape: graph.input,
        scale: &scale,
        augment,
        seed: graph.seed,
    };
    split
        .chunks
        .iter()
        .map(|(range, images)| {
            kernels.gather(
                ctx,
                &split.steps.buffer,
                &input,
                batch,
                range.clone(),
                Binding::whole(images),
                Binding::whole(&split.labels),
                Binding::whole(&split.order),
                Binding::whole(&acts.x),
                Binding::whole(&acts.labels),
            )
        })
        .collect()
}

/// Records the loss of the batch of `split` and its gradient with respect
/// to the logits, against labels smoothed by `smoothing`.
fn loss(
    ctx: &GpuContext,
    kernels: &Kernels,
    graph: &Graph,
    batch: usize,
    acts: &Activations,
    split: &ResidentSplit,
    smoothing: f32,
) -> Dispatch {
    let last = graph.nodes.len() - 1;
    kernels.softmax_xent_smoothed(
        ctx,
        &split.steps.buffer,
        batch,
        graph.classes(),
        Binding::whole(&acts.outputs[last]),
        Binding::whole(&acts.labels),
        Binding::whole(&acts.deltas[last]),
        Binding::whole(&split.metrics),
        smoothing,
    )
}

/// The launches of one training step: gather the batch, the forward pass
/// in training mode, the loss and its gradient, the backward pass, and the
/// optimiser's update of each weight-decay group.
#[allow(clippy::too_many_arguments)]
fn training_step(
    ctx: &GpuContext,
    kernels: &Kernels,
    planner: &Planner,
    train_split: &ResidentSplit,
    optimizer: Optimizer,
    params: &wgpu::Buffer,
    grads: &wgpu::Buffer,
    state: &[wgpu::Buffer],
) -> Vec<Dispatch> {
    let (graph, batch, acts) = (planner.graph, planner.batch, planner.acts);
    let mut train_step = gather(ctx, kernels, graph, batch, acts, train_split, graph.augment);
    train_step.extend(planner.forward(Mode::Train, Some(&train_split.steps.buffer)));
    train_step.push(loss(
        ctx,
        kernels,
        graph,
        batch,
        acts,
        train_split,
        graph.label_smoothing,
    ));
    let last = graph.nodes.len() - 1;
    train_step.extend(planner.backward(last, false, false));
    // One update per weight-decay group (one group unless --no-bias-decay).
    for (range, decays) in graph.decay_groups() {
        let optimizer = if decays {
            optimizer
        } else {
            optimizer.without_weight_decay()
        };
        let part = |buf| Binding::range(buf, range.start, range.len());
        let state_bindings: Vec<Binding> = state.iter().map(part).collect();
        train_step.push(kernels.optimizer_update(
            ctx,
            &train_split.steps.buffer,
            &optimizer,
            range.len(),
            part(params),
            part(grads),
            &state_bindings,
        ));
    }
    train_step
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

    /// Plans `graph` with kernels that measure their versions as they are
    /// launched, remembering the choices for this run only.
    pub fn new(
        ctx: GpuContext,
        graph: &Graph,
        batch: usize,
        optimizer: Optimizer,
        init: &[f32],
        train: &Dataset,
        test: &Dataset,
    ) -> Result<GpuTrainer> {
        let kernels = Kernels::new(&ctx);
        GpuTrainer::with_kernels(ctx, kernels, graph, batch, optimizer, init, train, test)
    }

    /// Plans `graph` with `kernels` (their refused versions and tuning
    /// cache; see `open_trainer`).
    #[allow(clippy::too_many_arguments)]
    pub fn with_kernels(
        ctx: GpuContext,
        kernels: Kernels,
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
        check_buffer_sizes(&ctx, graph, batch)?;
        super::limits::check_fixed_kernels(&ctx.device.limits())?;
        let guard = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        graph.normalization.check(graph.input.c)?;
        let train_split = ResidentSplit::upload(&ctx, "training", train, batch)?;
        let test_split = ResidentSplit::upload(&ctx, "test", test, batch)?;
        let params = ctx.storage_init("params", init);
        let grads = ctx.storage_zeroed("grads", graph.param_len);
        let state: Vec<wgpu::Buffer> = (0..optimizer.state_vectors())
            .map(|i| ctx.storage_zeroed(&format!("optimizer state {i}"), graph.param_len))
            .collect();
        let buffers = ctx.storage_init("buffers", &graph.init_buffers());
        let acts = Activations::new(&ctx, graph, batch);
        let planner = Planner {
            ctx: &ctx,
            kernels: &kernels,
            graph,
            batch,
            params: &params,
            grads: &grads,
            buffers: &buffers,
            acts: &acts,
        };

        let infer_step = planner.forward(Mode::Eval, None);
        let off = Augment::default();
        let mut eval_step = gather(&ctx, &kernels, graph, batch, &acts, &test_split, off);
        eval_step.extend(infer_step.iter().cloned());
        eval_step.push(loss(&ctx, &kernels, graph, batch, &acts, &test_split, 0.0));
        // A model opened for inference and analysis (no training images:
        // `infer::open_model`) has no training step to plan, and so no
        // training-mode forward or backward whose kernels to time.
        let train_step = if train.is_empty() {
            Vec::new()
        } else {
            training_step(
                &ctx,
                &kernels,
                &planner,
                &train_split,
                optimizer,
                &params,
                &grads,
                &state,
            )
        };
        ctx.check(guard)?;

        Ok(GpuTrainer {
            batch,
            graph: graph.clone(),
            params,
            grads,
            buffers,
            state,
            acts,
            kernels,
            train: train_split,
            test: test_split,
            train_step,
            eval_step,
            infer_step,
            input_grad_steps: Default::default(),
            startup: None,
            ctx,
        })
    }

    /// Buffers held on the device: (the resident pixels of both splits,
    /// everything, in bytes).
    pub fn device_bytes(&self) -> (u64, u64) {
        let pixels = [&self.train, &self.test]
            .iter()
            .flat_map(|s| &s.chunks)
            .map(|(_, b)| b.size())
            .sum();
        (pixels, self.ctx.allocated_bytes())
    }

    /// Buffers the resident training set's pixels are kept in.
    pub fn training_chunks(&self) -> usize {
        self.train.chunks.len()
    }

    /// Writes what the tuner measured to the tuning cache, if it has a file.
    pub fn save_tuning(&self) -> Result<()> {
        self.kernels
            .tuning
            .lock()
            .map_err(|_| anyhow::anyhow!("the tuning cache was poisoned"))?
            .save()
    }

    /// The kernels the trainer launches (their choices and refusals).
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
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
    /// once — and also, when asked, the running sums every `report_every`
    /// steps and the first layer's weights every `snapshot_every` steps
    /// (each such stop is a read-back that waits for the GPU). Reports
    /// fall where the steps since the start of training, `first_step` before
    /// this epoch, are a multiple of `report_every`.
    fn run_epoch(
        &self,
        training: bool,
        first_step: usize,
        report_every: usize,
        snapshot_every: usize,
        progress: OnUpdate,
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
                next_multiple(first_step + first, report_every).map(|g| g - first_step),
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
                is_multiple(first_step + last, report_every),
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

    fn device_bytes(&self) -> Option<(u64, u64)> {
        Some(GpuTrainer::device_bytes(self))
    }

    fn adapter(&self) -> String {
        self.ctx.describe()
    }

    fn startup(&self) -> Option<super::Startup> {
        self.startup.clone()
    }

    fn train_epoch(&mut self, plan: EpochPlan, progress: OnUpdate) -> Result<EpochStats> {
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
        self.run_epoch(
            true,
            plan.first_step,
            plan.report_every,
            plan.snapshot_every,
            progress,
        )
    }

    fn evaluate(&mut self, progress: OnUpdate) -> Result<EpochStats> {
        self.run_epoch(false, 0, 0, 0, progress)
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

    fn buffers(&self) -> Result<Vec<f32>> {
        self.ctx.read(&self.buffers, 0, self.graph.buffer_len)
    }

    fn load_buffers(&mut self, buffers: &[f32]) -> Result<()> {
        if buffers.len() != self.graph.buffer_len {
            bail!(
                "the saved buffers hold {} values, this model {}",
                buffers.len(),
                self.graph.buffer_len
            );
        }
        if !buffers.is_empty() {
            self.ctx
                .queue
                .write_buffer(&self.buffers, 0, bytemuck::cast_slice(buffers));
        }
        self.ctx.wait()
    }

    fn node_count(&self) -> usize {
        self.graph.nodes.len()
    }

    fn batch_size(&self) -> usize {
        self.batch
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
            let steps = Planner {
                ctx: &self.ctx,
                kernels: &self.kernels,
                graph: &self.graph,
                batch: self.batch,
                params: &self.params,
                grads: &self.grads,
                buffers: &self.buffers,
                acts: &self.acts,
            }
            .backward(node, true, true);
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
        self.ctx.read(&self.acts.input_grad, 0, rows * size)
    }
}
