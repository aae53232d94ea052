//! `--device cpu`: the training step composed from the reference ops.

use super::{network, ops, optim};
use crate::backend::{Backend, EpochPlan, EpochStats, Optimizer, Progress};
use crate::data::Dataset;
use crate::graph::Graph;
use anyhow::{ensure, Result};

pub struct CpuTrainer {
    graph: Graph,
    batch: usize,
    optimizer: Optimizer,
    train: Dataset,
    test: Dataset,
    params: Vec<f32>,
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
            grads: vec![0.0; params.len()],
            state: vec![vec![0.0; params.len()]; optimizer.state_vectors()],
            params,
        }
    }

    fn batch_of(&self, data: &Dataset, indices: &[u32]) -> (Vec<f32>, Vec<u32>) {
        let size = data.input_size();
        let mut x = vec![0.0; indices.len() * size];
        let mut labels = vec![0; indices.len()];
        ops::gather(
            &data.images,
            &data.labels,
            size,
            indices,
            &mut x,
            &mut labels,
        );
        (x, labels)
    }

    fn update(&mut self, lr: f32, step: usize) {
        match (&self.optimizer, self.state.as_mut_slice()) {
            (
                Optimizer::Sgd {
                    momentum,
                    weight_decay,
                },
                [velocity],
            ) => optim::sgd_momentum(
                &mut self.params,
                &self.grads,
                velocity,
                lr,
                *momentum,
                *weight_decay,
            ),
            (Optimizer::Adam(cfg), [m, v]) => optim::adam(
                &mut self.params,
                &self.grads,
                m,
                v,
                lr,
                step as u32 + 1,
                cfg,
            ),
            _ => unreachable!("optimizer state sized by Optimizer::state_vectors"),
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

    fn train_epoch(&mut self, plan: EpochPlan, progress: Progress) -> Result<EpochStats> {
        let steps = plan.order.len().div_ceil(self.batch);
        ensure!(plan.lrs.len() == steps, "one learning rate per step");
        let mut stats = EpochStats::default();
        for (step, indices) in plan.order.chunks(self.batch).enumerate() {
            let (x, labels) = self.batch_of(&self.train, indices);
            let (loss, correct, _) =
                network::loss_and_grads(&self.graph, &self.params, &x, &labels, &mut self.grads);
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
            progress(stats.count as usize);
        }
        Ok(stats)
    }

    fn evaluate(&mut self, progress: Progress) -> Result<EpochStats> {
        let mut stats = EpochStats::default();
        let all: Vec<u32> = (0..self.test.len() as u32).collect();
        let classes = self.graph.classes();
        for indices in all.chunks(self.batch) {
            let (x, labels) = self.batch_of(&self.test, indices);
            let fwd = network::forward(&self.graph, &self.params, &x, indices.len());
            let mut grad = vec![0.0; indices.len() * classes];
            let (loss, correct) =
                ops::softmax_xent(fwd.logits(), &labels, &mut grad, indices.len(), classes);
            stats.loss_sum += f64::from(loss);
            stats.correct += u64::from(correct);
            stats.count += indices.len() as u64;
            progress(stats.count as usize);
        }
        Ok(stats)
    }

    fn params(&self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }
}
