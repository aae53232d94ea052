//! End-to-end training speed: one epoch of the default MLP and CNN over real
//! MNIST images at several batch sizes, on the GPU and on the CPU reference.
//! For the GPU also the launches per step and, with timestamps, how much of
//! a step is spent outside the kernels.

use super::measure::{self, Budget, Timing};
use super::report::{rate, ratio, times, Figure, Reporter, Table};
use super::Settings;
use crate::backend::{Backend, EpochPlan, Optimizer};
use crate::cpu::CpuTrainer;
use crate::data::{load_mnist, Dataset, Split, NUM_CLASSES};
use crate::gpu::{Dispatch, GpuContext, GpuTimer, GpuTrainer, TimingSource};
use crate::graph::{epoch_order, Graph, Shape};
use crate::spec::ModelSpec;
use anyhow::{Context as _, Result};
use serde::Serialize;
use std::time::Instant;

/// The default models the training part can train, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    Mlp,
    Cnn,
}

impl Model {
    pub const ALL: [Model; 2] = [Model::Mlp, Model::Cnn];

    /// The name `gpunet train --model` and the table use.
    fn name(self) -> &'static str {
        match self {
            Model::Mlp => "mlp",
            Model::Cnn => "cnn",
        }
    }
}

const OPTIMIZER: Optimizer = Optimizer::Sgd {
    momentum: 0.9,
    weight_decay: 0.0,
    nesterov: false,
};
const LEARNING_RATE: f32 = 0.01;

/// One model at one batch size.
#[derive(Debug, Serialize)]
pub struct TrainRow {
    pub model: &'static str,
    pub batch: usize,
    /// Images in the timed epoch.
    pub images: usize,
    pub steps: usize,
    pub gpu_images_per_sec: Figure,
    pub cpu_images_per_sec: Figure,
    pub gpu_over_cpu: Option<f64>,
    /// Kernel launches the GPU records per training step.
    pub dispatches_per_step: Option<usize>,
    /// Wall time of a GPU step within the epoch.
    pub gpu_ms_per_step: Option<f64>,
    /// The step's launches timed one by one with timestamps, summed.
    pub kernel_ms_per_step: Option<f64>,
    /// gpu_ms_per_step − kernel_ms_per_step.
    pub outside_kernels_ms_per_step: Option<f64>,
}

impl TrainRow {
    fn cells(&self) -> Vec<String> {
        let millis = |ms: Option<f64>| ms.map_or("-".to_string(), |v| format!("{v:.2}"));
        vec![
            self.model.to_string(),
            self.batch.to_string(),
            self.images.to_string(),
            self.gpu_images_per_sec.cell(rate),
            self.cpu_images_per_sec.cell(rate),
            times(self.gpu_over_cpu),
            self.dispatches_per_step
                .map_or("-".to_string(), |n| n.to_string()),
            millis(self.gpu_ms_per_step),
            millis(self.kernel_ms_per_step),
            millis(self.outside_kernels_ms_per_step),
        ]
    }
}

const TABLE: Table = Table {
    columns: &[
        ("model", 5),
        ("batch", 5),
        ("images", 6),
        ("GPU img/s", 9),
        ("CPU img/s", 9),
        ("GPU/CPU", 7),
        ("launches", 8),
        ("GPU ms/step", 11),
        ("in kernels", 10),
        ("outside", 8),
    ],
};

/// Images in the epoch timed for `model`: the requested count rounded up to
/// whole batches, at most what the data holds.
fn epoch_images(settings: &Settings, model: &str, batch: usize, available: usize) -> usize {
    let requested = if model == "cnn" {
        settings.cnn_images
    } else {
        settings.mlp_images
    };
    requested.next_multiple_of(batch).min(available)
}

/// Trains each model at each batch size of `settings`; the GPU side only
/// when `gpu_found`.
pub fn run(settings: &Settings, gpu_found: bool, out: &mut Reporter) -> Result<Vec<TrainRow>> {
    let data = load_training_data(settings)?;
    out.section(
        &format!(
            "training, images/s over one epoch of MNIST with SGD + momentum \
             (images: MLP {}, CNN {}, rounded up to whole batches)\n\
             GPU step: kernel launches per step, wall ms per step within the epoch, \
             the launches timed one by one (timestamps only) and the rest, \
             which measurement noise can make negative",
            settings.mlp_images, settings.cnn_images
        ),
        &TABLE,
    )?;
    let input = Shape {
        c: 1,
        h: data.rows,
        w: data.cols,
    };
    let mut rows = Vec::new();
    for model in settings.train_models.iter().map(|m| m.name()) {
        let spec = ModelSpec::parse(model)?;
        let graph = Graph::new(&spec, input, NUM_CLASSES)
            .with_context(|| format!("planning the default {model}"))?;
        let init = graph.init_params(0);
        for &batch in &settings.train_batches {
            let images = epoch_images(settings, model, batch, data.len());
            out.working_on(format!("train {model}, batch {batch}, {images} images"));
            let subset = data.clone().truncated(images);
            let run = EpochRun::new(&graph, &init, &subset, batch);
            let gpu = if gpu_found {
                Some(run.gpu(settings)?)
            } else {
                None
            };
            let cpu = run.cpu(settings)?;
            let row = row(model, &run, gpu, cpu);
            out.row(&TABLE, &row.cells())?;
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The training images, only as many as the largest epoch needs.
fn load_training_data(settings: &Settings) -> Result<Dataset> {
    let data = load_mnist(&settings.data, Split::Train).with_context(|| {
        format!(
            "the training bench needs MNIST in {} (--data, or leave out the train part \
             with --only)",
            settings.data.display()
        )
    })?;
    let needed = settings
        .train_models
        .iter()
        .flat_map(|model| {
            let model = model.name();
            settings
                .train_batches
                .iter()
                .map(move |&batch| epoch_images(settings, model, batch, usize::MAX))
        })
        .max()
        .unwrap_or(0);
    Ok(data.truncated(needed))
}

/// One model, batch size and set of images to time an epoch over.
struct EpochRun<'a> {
    graph: &'a Graph,
    init: &'a [f32],
    data: &'a Dataset,
    batch: usize,
    order: Vec<u32>,
    lrs: Vec<f32>,
}

/// What the GPU side measured.
struct GpuFigures {
    epoch: Timing,
    dispatches_per_step: usize,
    /// Summed launch times of one step, with timestamps only.
    kernel_seconds: Option<f64>,
}

impl<'a> EpochRun<'a> {
    fn new(graph: &'a Graph, init: &'a [f32], data: &'a Dataset, batch: usize) -> EpochRun<'a> {
        let steps = data.len().div_ceil(batch);
        EpochRun {
            graph,
            init,
            data,
            batch,
            order: epoch_order(data.len(), 0, 1),
            lrs: vec![LEARNING_RATE; steps],
        }
    }

    fn steps(&self) -> usize {
        self.lrs.len()
    }

    fn plan(&self) -> EpochPlan<'_> {
        EpochPlan {
            order: &self.order,
            lrs: &self.lrs,
            first_step: 0,
            report_every: 0,
            snapshot_every: 0,
        }
    }

    fn cpu(&self, settings: &Settings) -> Result<Timing> {
        let mut trainer = CpuTrainer::new(
            self.graph,
            self.batch,
            OPTIMIZER,
            self.init.to_vec(),
            self.data.clone(),
            self.data.clone(),
        );
        measure::repeat(settings.budget, || epoch_seconds(&mut trainer, self.plan()))
    }

    /// Plans the graph on a fresh device, times each launch of a step (with
    /// timestamps; otherwise just runs a step, to warm up) and then whole
    /// epochs.
    fn gpu(&self, settings: &Settings) -> Result<GpuFigures> {
        let ctx = GpuContext::new()?;
        let mut trainer = GpuTrainer::new(
            ctx, self.graph, self.batch, OPTIMIZER, self.init, self.data, self.data,
        )?;
        let kernel_seconds = kernel_seconds_per_step(&trainer, settings.budget)?;
        if kernel_seconds.is_none() {
            let ctx = trainer.context();
            ctx.run(trainer.train_step_dispatches());
            ctx.wait()?;
        }
        let dispatches_per_step = trainer.dispatches_per_step();
        let epoch = measure::repeat(settings.budget, || epoch_seconds(&mut trainer, self.plan()))?;
        Ok(GpuFigures {
            epoch,
            dispatches_per_step,
            kernel_seconds,
        })
    }
}

/// Wall seconds of one training epoch (the backends wait for their work).
fn epoch_seconds(backend: &mut dyn Backend, plan: EpochPlan) -> Result<f64> {
    let start = Instant::now();
    backend.train_epoch(plan, &mut |_| {})?;
    Ok(start.elapsed().as_secs_f64())
}

/// The launches of one training step, each in its own timed pass, summed
/// (the median over repeated steps); None where the adapter has no
/// timestamp queries.
fn kernel_seconds_per_step(trainer: &GpuTrainer, budget: Budget) -> Result<Option<f64>> {
    let ctx = trainer.context();
    let timer = GpuTimer::new(ctx);
    if timer.source() != TimingSource::Timestamps {
        return Ok(None);
    }
    let passes: Vec<&[Dispatch]> = trainer
        .train_step_dispatches()
        .iter()
        .map(std::slice::from_ref)
        .collect();
    let timing = measure::repeat(budget, || Ok(timer.time_passes(ctx, &passes)?.iter().sum()))?;
    Ok(Some(timing.seconds))
}

fn row(model: &'static str, run: &EpochRun, gpu: Option<GpuFigures>, cpu: Timing) -> TrainRow {
    let images = run.data.len();
    let images_per_sec = |t: Timing| Figure::Value(images as f64 / t.seconds.max(1e-12));
    let cpu_figure = images_per_sec(cpu);
    let gpu_figure = gpu
        .as_ref()
        .map_or(Figure::NoGpu, |g| images_per_sec(g.epoch));
    let step_ms = gpu
        .as_ref()
        .map(|g| g.epoch.seconds * 1e3 / run.steps() as f64);
    let kernel_ms = gpu.as_ref().and_then(|g| g.kernel_seconds).map(|s| s * 1e3);
    TrainRow {
        model,
        batch: run.batch,
        images,
        steps: run.steps(),
        gpu_images_per_sec: gpu_figure,
        cpu_images_per_sec: cpu_figure,
        gpu_over_cpu: ratio(gpu_figure, cpu_figure),
        dispatches_per_step: gpu.as_ref().map(|g| g.dispatches_per_step),
        gpu_ms_per_step: step_ms,
        kernel_ms_per_step: kernel_ms,
        outside_kernels_ms_per_step: step_ms.zip(kernel_ms).map(|(step, kernels)| step - kernels),
    }
}
