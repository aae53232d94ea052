//! `--device gpu`: the graph planned on the GPU. Everything is created here,
//! once: the resident datasets, every activation, gradient and parameter
//! buffer, every pipeline's bind group. An epoch then only writes the
//! order, records steps (several per submit) and reads the metrics once.

use super::kernel::{Binding, Dispatch, StepSlots};
use super::launch::{MatmulForm, MatmulShape, SgdParams, METRICS_WORDS};
use super::{GpuContext, Kernels};
use crate::backend::{Backend, EpochStats, Hyper, Progress};
use crate::data::Dataset;
use crate::graph::{Activation, Graph};
use anyhow::{ensure, Result};

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
        steps.write_epoch(ctx, data.len(), batch);
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

pub struct GpuTrainer {
    ctx: GpuContext,
    batch: usize,
    param_len: usize,
    params: wgpu::Buffer,
    train: ResidentSplit,
    test: ResidentSplit,
    sgd_uniform: wgpu::Buffer,
    train_step: Vec<Dispatch>,
    eval_step: Vec<Dispatch>,
}

impl GpuTrainer {
    pub fn new(
        ctx: GpuContext,
        graph: &Graph,
        batch: usize,
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
        let velocity = ctx.storage_zeroed("velocity", graph.param_len);
        let x = ctx.storage_zeroed("batch x", batch * graph.input_size());
        let labels = ctx.storage_zeroed("batch labels", batch);
        // outputs[l]: layer l's activations; deltas[l]: the loss gradient
        // with respect to them (then, in place, to the pre-activations).
        let outputs: Vec<wgpu::Buffer> = graph
            .layers
            .iter()
            .enumerate()
            .map(|(l, layer)| ctx.storage_zeroed(&format!("y{l}"), batch * layer.outputs))
            .collect();
        let deltas: Vec<wgpu::Buffer> = graph
            .layers
            .iter()
            .enumerate()
            .map(|(l, layer)| ctx.storage_zeroed(&format!("dy{l}"), batch * layer.outputs))
            .collect();
        let param = |buf, idx: usize| {
            let info = &graph.params[idx];
            Binding::range(buf, info.offset, info.len())
        };

        let forward = |split: &ResidentSplit| -> Vec<Dispatch> {
            let mut list = vec![kernels.gather(
                &ctx,
                &split.steps.buffer,
                graph.input_size(),
                batch,
                Binding::whole(&split.images),
                Binding::whole(&split.labels),
                Binding::whole(&split.order),
                Binding::whole(&x),
                Binding::whole(&labels),
            )];
            for (l, layer) in graph.layers.iter().enumerate() {
                let input = if l == 0 { &x } else { &outputs[l - 1] };
                list.push(kernels.matmul(
                    &ctx,
                    MatmulForm::NT,
                    MatmulShape {
                        m: batch,
                        n: layer.outputs,
                        k: layer.inputs,
                    },
                    Binding::whole(input),
                    param(&params, layer.weight),
                    Some(param(&params, layer.bias)),
                    layer.activation,
                    Binding::whole(&outputs[l]),
                ));
            }
            let last = graph.layers.len() - 1;
            list.push(kernels.softmax_xent(
                &ctx,
                &split.steps.buffer,
                batch,
                graph.classes(),
                Binding::whole(&outputs[last]),
                Binding::whole(&labels),
                Binding::whole(&deltas[last]),
                Binding::whole(&split.metrics),
            ));
            list
        };

        let mut train_step = forward(&train_split);
        let eval_step = forward(&test_split);
        for (l, layer) in graph.layers.iter().enumerate().rev() {
            let input = if l == 0 { &x } else { &outputs[l - 1] };
            if layer.activation != Activation::Identity {
                train_step.push(kernels.activation_backward(
                    &ctx,
                    layer.activation,
                    batch * layer.outputs,
                    Binding::whole(&outputs[l]),
                    Binding::whole(&deltas[l]),
                ));
            }
            // dW (out,in) = dzᵀ · x
            train_step.push(kernels.matmul(
                &ctx,
                MatmulForm::TN,
                MatmulShape {
                    m: layer.outputs,
                    n: layer.inputs,
                    k: batch,
                },
                Binding::whole(&deltas[l]),
                Binding::whole(input),
                None,
                Activation::Identity,
                param(&grads, layer.weight),
            ));
            // db = Σ_rows dz
            train_step.push(kernels.bias_grad(
                &ctx,
                batch,
                layer.outputs,
                Binding::whole(&deltas[l]),
                param(&grads, layer.bias),
            ));
            // dx (batch,in) = dz · W, the previous layer's output gradient
            if l > 0 {
                train_step.push(kernels.matmul(
                    &ctx,
                    MatmulForm::NN,
                    MatmulShape {
                        m: batch,
                        n: layer.inputs,
                        k: layer.outputs,
                    },
                    Binding::whole(&deltas[l]),
                    param(&params, layer.weight),
                    None,
                    Activation::Identity,
                    Binding::whole(&deltas[l - 1]),
                ));
            }
        }
        let (sgd, sgd_uniform) = kernels.sgd_momentum(
            &ctx,
            SgdParams {
                len: graph.param_len as u32,
                lr: 0.0,
                momentum: 0.0,
                weight_decay: 0.0,
            },
            Binding::whole(&params),
            Binding::whole(&grads),
            Binding::whole(&velocity),
        );
        train_step.push(sgd);
        ctx.check(guard)?;

        Ok(GpuTrainer {
            batch,
            param_len: graph.param_len,
            params,
            train: train_split,
            test: test_split,
            sgd_uniform,
            train_step,
            eval_step,
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

    /// Runs every step of an epoch over `split`, STEPS_PER_SUBMIT per submit,
    /// reporting progress as submissions complete, and reads the metrics once.
    fn run_epoch(&self, training: bool, progress: Progress) -> Result<EpochStats> {
        let (split, step) = if training {
            (&self.train, &self.train_step)
        } else {
            (&self.test, &self.eval_step)
        };
        let mut clear = self.ctx.device.create_command_encoder(&Default::default());
        clear.clear_buffer(&split.metrics, 0, None);
        self.ctx.queue.submit([clear.finish()]);

        let steps = split.n_steps();
        let mut in_flight: Option<(wgpu::SubmissionIndex, usize)> = None;
        for first in (0..steps).step_by(STEPS_PER_SUBMIT) {
            let last = (first + STEPS_PER_SUBMIT).min(steps);
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
            // Keep one submission queued behind the one running; report the
            // older one's steps once it is done.
            if let Some((previous, done)) = in_flight.replace((submitted, last)) {
                self.ctx.wait_for(previous)?;
                progress((done * self.batch).min(split.len));
            }
        }
        self.ctx.wait()?;
        progress(split.len);

        let words: Vec<u32> = self.ctx.read(&split.metrics, 0, METRICS_WORDS)?;
        Ok(EpochStats {
            loss_sum: f64::from(f32::from_bits(words[0])),
            correct: u64::from(words[1]),
            count: u64::from(words[3]),
            bad_step: words[2].checked_sub(1).map(|s| s as usize),
        })
    }
}

impl Backend for GpuTrainer {
    fn device(&self) -> &'static str {
        "gpu"
    }

    fn adapter(&self) -> String {
        self.ctx.describe()
    }

    fn train_epoch(
        &mut self,
        order: &[u32],
        hyper: Hyper,
        progress: Progress,
    ) -> Result<EpochStats> {
        ensure!(
            order.len() == self.train.len,
            "the order must cover the training set"
        );
        self.ctx
            .queue
            .write_buffer(&self.train.order, 0, bytemuck::cast_slice(order));
        let sgd = SgdParams {
            len: self.param_len as u32,
            lr: hyper.lr,
            momentum: hyper.momentum,
            weight_decay: hyper.weight_decay,
        };
        self.ctx
            .queue
            .write_buffer(&self.sgd_uniform, 0, bytemuck::bytes_of(&sgd));
        self.run_epoch(true, progress)
    }

    fn evaluate(&mut self, progress: Progress) -> Result<EpochStats> {
        self.run_epoch(false, progress)
    }

    fn params(&self) -> Result<Vec<f32>> {
        self.ctx.read(&self.params, 0, self.param_len)
    }
}

impl GpuTrainer {
    /// Wall time of each launch of a training step, run alone `reps` times
    /// (submit and wait each time): where a step's time goes.
    pub fn time_dispatches(&self, reps: usize) -> Result<Vec<(&'static str, f64)>> {
        let mut times = Vec::new();
        for d in &self.train_step {
            self.ctx.run(std::slice::from_ref(d));
            self.ctx.wait()?;
            let start = std::time::Instant::now();
            for _ in 0..reps {
                self.ctx.run(std::slice::from_ref(d));
            }
            self.ctx.wait()?;
            times.push((d.name, start.elapsed().as_secs_f64() / reps as f64));
        }
        Ok(times)
    }
}
