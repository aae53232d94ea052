//! `--device cpu`: the training step composed from the reference ops.

use super::network;
use crate::backend::{Backend, EpochPlan, EpochStats, OnUpdate, Optimizer, Update};
use crate::data::Dataset;
use crate::graph::Graph;
use crate::ops::gather::reference::{gather, GatherSettings};
use crate::ops::gather::Augment;
use crate::ops::optim::reference as optim;
use crate::ops::softmax_xent::reference::softmax_xent;
use crate::ops::Mode;
use anyhow::{bail, ensure, Result};

pub struct CpuTrainer {
    graph: Graph,
    batch: usize,
    optimizer: Optimizer,
    train: Dataset,
    test: Dataset,
    params: Vec<f32>,
    /// Non-trainable buffers (running statistics; layout `Graph::buffers`).
    buffers: Vec<f32>,
    grads: Vec<f32>,
    /// Velocity (SGD) or the first and second moments (Adam).
    state: Vec<Vec<f32>>,
}

impl CpuTrainer {
    pub fn new(
        graph: &Graph,
        batch: usize,
        optimizer: Optimizer,
        params: Vec<f32>,
        train: Dataset,
        test: Dataset,
    ) -> Self {
        CpuTrainer {
            graph: graph.clone(),
            batch,
            optimizer,
            train,
            test,
            buffers: graph.init_buffers(),
            grads: vec![0.0; params.len()],
            state: vec![vec![0.0; params.len()]; optimizer.state_vectors()],
            params,
        }
    }

    /// The batch of `data` at `indices`, augmented (training) at `step`
    /// when `train_step` is given and the graph asks for it.
    fn batch_of(
        &self,
        data: &Dataset,
        indices: &[u32],
        train_step: Option<usize>,
    ) -> (Vec<f32>, Vec<u32>) {
        let size = data.input_size();
        let mut x = vec![0.0; indices.len() * size];
        let mut labels = vec![0; indices.len()];
        let scale = self.graph.normalization.scale(self.graph.input.c);
        let settings = GatherSettings {
            shape: self.graph.input,
            scale: &scale,
            augment: train_step.map_or(Augment::default(), |_| self.graph.augment),
            seed: self.graph.seed,
            step: train_step.unwrap_or(0) as u32,
        };
        gather(
            &data.images,
            &data.labels,
            &settings,
            indices,
            &mut x,
            &mut labels,
        );
        (x, labels)
    }

    /// The forward pass in evaluation mode (running statistics untouched).
    fn forward(&mut self, x: &[f32], rows: usize) -> network::Forward {
        let buffers = &mut self.buffers;
        network::forward(&self.graph, &self.params, buffers, x, rows, Mode::Eval, 0)
    }

    /// One optimiser step, run over each of the graph's weight-decay groups
    /// (one group covering everything unless --no-bias-decay).
    fn update(&mut self, lr: f32, step: usize) {
        for (range, decays) in self.graph.decay_groups() {
            let optimizer = if decays {
                self.optimizer
            } else {
                self.optimizer.without_weight_decay()
            };
            let params = &mut self.params[range.clone()];
            let grads = &self.grads[range.clone()];
            match (&optimizer, self.state.as_mut_slice()) {
                (
                    Optimizer::Sgd {
                        momentum,
                        weight_decay,
                        nesterov,
                    },
                    [velocity],
                ) => optim::sgd_momentum(
                    params,
                    grads,
                    &mut velocity[range],
                    lr,
                    *momentum,
                    *weight_decay,
                    *nesterov,
                ),
                (Optimizer::Adam(cfg), [m, v]) => optim::adam(
                    params,
                    grads,
                    &mut m[range.clone()],
                    &mut v[range],
                    lr,
                    step as u32 + 1,
                    cfg,
                ),
                _ => unreachable!("optimizer state sized by Optimizer::state_vectors"),
            }
        }
    }
}

impl Backend for CpuTrainer {
    fn device(&self) -> &'static str {
        "cpu"
    }

    fn adapter(&self) -> String {
        "CPU reference (one thread)".into()
    }

    fn train_epoch(&mut self, plan: EpochPlan, progress: OnUpdate) -> Result<EpochStats> {
        let steps = plan.order.len().div_ceil(self.batch);
        ensure!(plan.lrs.len() == steps, "one learning rate per step");
        let mut stats = EpochStats::default();
        for (step, indices) in plan.order.chunks(self.batch).enumerate() {
            let (x, labels) = self.batch_of(&self.train, indices, Some(plan.first_step + step));
            let (loss, correct, _) = network::loss_and_grads(
                &self.graph,
                &self.params,
                &mut self.buffers,
                &x,
                &labels,
                &mut self.grads,
                (plan.first_step + step) as u64,
            );
            stats.loss_sum += f64::from(loss);
            stats.correct += u64::from(correct);
            stats.count += indices.len() as u64;
            if !loss.is_finite() {
                // The weights are about to become NaN: stop here, as a GPU
                // run would at the epoch's end, and let the caller report it.
                stats.bad_step = Some(step);
                break;
            }
            self.update(plan.lrs[step], plan.first_step + step);
            let due = |every: usize| every > 0 && (step + 1) % every == 0;
            // --log-every counts the steps since the start of training.
            let global = plan.first_step + step + 1;
            let report = (plan.report_every > 0 && global.is_multiple_of(plan.report_every))
                .then_some((step + 1, stats));
            let snapshot = due(plan.snapshot_every)
                .then(|| (step + 1, self.params[self.graph.params[0].range()].to_vec()));
            progress(Update {
                examples: stats.count as usize,
                report,
                snapshot,
            });
        }
        Ok(stats)
    }

    fn evaluate(&mut self, progress: OnUpdate) -> Result<EpochStats> {
        let mut stats = EpochStats::default();
        let all: Vec<u32> = (0..self.test.len() as u32).collect();
        let classes = self.graph.classes();
        for indices in all.chunks(self.batch) {
            let (x, labels) = self.batch_of(&self.test, indices, None);
            let rows = indices.len();
            let fwd = self.forward(&x, rows);
            let mut grad = vec![0.0; indices.len() * classes];
            let (loss, correct) =
                softmax_xent(fwd.logits(), &labels, &mut grad, indices.len(), classes);
            stats.loss_sum += f64::from(loss);
            stats.correct += u64::from(correct);
            stats.count += indices.len() as u64;
            progress(Update {
                examples: stats.count as usize,
                report: None,
                snapshot: None,
            });
        }
        Ok(stats)
    }

    fn params(&self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn optimizer_state(&self) -> Result<Vec<Vec<f32>>> {
        Ok(self.state.clone())
    }

    fn load_state(&mut self, params: &[f32], optimizer_state: &[Vec<f32>]) -> Result<()> {
        if params.len() != self.params.len()
            || optimizer_state.len() != self.state.len()
            || optimizer_state.iter().any(|v| v.len() != self.params.len())
        {
            bail!("the saved state does not fit this model and optimiser");
        }
        self.params = params.to_vec();
        self.state = optimizer_state.to_vec();
        Ok(())
    }

    fn buffers(&self) -> Result<Vec<f32>> {
        Ok(self.buffers.clone())
    }

    fn load_buffers(&mut self, buffers: &[f32]) -> Result<()> {
        if buffers.len() != self.buffers.len() {
            bail!(
                "the saved buffers hold {} values, this model {}",
                buffers.len(),
                self.buffers.len()
            );
        }
        self.buffers = buffers.to_vec();
        Ok(())
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
            let fwd = self.forward(chunk, chunk.len() / size);
            for (out, &node) in outputs.iter_mut().zip(nodes) {
                out.extend_from_slice(&fwd.outputs[node]);
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
        ensure!(
            rows <= self.batch,
            "input_gradient takes at most {} rows",
            self.batch
        );
        ensure!(
            x.len() == rows * size && seed.len() == rows * self.graph.nodes[node].output_len(),
            "input_gradient: wrong lengths"
        );
        let fwd = self.forward(x, rows);
        let grad = network::backward_from(
            &self.graph,
            &self.params,
            x,
            &fwd,
            node,
            true,
            seed.to_vec(),
            &mut self.grads,
            true,
        );
        Ok(grad.unwrap_or_default())
    }
}
