//! The training loop: picks the device, plans the graph, runs the epochs,
//! reports progress and metrics. Knows nothing of kernels.

use crate::backend::{Backend, EpochPlan, EpochStats, Optimizer};
use crate::cpu::CpuTrainer;
use crate::data::{load_mnist, Dataset, Split};
use crate::gpu::{self, GpuContext, GpuTrainer};
use crate::graph::{epoch_order, Graph, Shape};
use crate::schedule::{Schedule, ScheduleKind};
use crate::spec::ModelSpec;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Where the math runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    /// A hardware GPU if there is one, else the CPU.
    Auto,
    /// Any GPU adapter wgpu finds, software ones included.
    Gpu,
    /// The CPU reference.
    Cpu,
}

#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub spec: ModelSpec,
    /// The input width the user wrote first in `--layers`, checked
    /// against the data.
    pub expected_input: Option<usize>,
    pub device: DeviceChoice,
    pub epochs: usize,
    pub batch: usize,
    pub optimizer: Optimizer,
    pub lr: f32,
    pub schedule: ScheduleKind,
    pub warmup_steps: usize,
    pub step_epochs: usize,
    pub gamma: f32,
    pub seed: u64,
    pub data: PathBuf,
    pub train_limit: Option<usize>,
    pub test_limit: Option<usize>,
}

/// One epoch's figures; `--json` prints one of these per line.
#[derive(Debug, Clone, Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub test_loss: f64,
    pub test_acc: f64,
    /// Wall time of the epoch's training pass.
    pub seconds: f64,
    /// Training images per second in that pass.
    pub images_per_sec: f64,
    pub device: String,
    pub adapter: String,
}

/// Loads both splits, applying the limits.
pub fn load_data(cfg: &TrainConfig) -> Result<(Dataset, Dataset)> {
    let mut train = load_mnist(&cfg.data, Split::Train)?;
    let mut test = load_mnist(&cfg.data, Split::Test)?;
    if let Some(n) = cfg.train_limit {
        train = train.truncated(n);
    }
    if let Some(n) = cfg.test_limit {
        test = test.truncated(n);
    }
    if train.is_empty() || test.is_empty() {
        bail!("no training or test images left (check --train-limit / --test-limit)");
    }
    if train.input_size() != test.input_size() {
        bail!(
            "training images are {}×{} but test images are {}×{}",
            train.rows,
            train.cols,
            test.rows,
            test.cols
        );
    }
    Ok((train, test))
}

/// Opens the backend the user asked for, saying what was chosen on `log`.
#[allow(clippy::too_many_arguments)]
pub fn open_backend(
    device: DeviceChoice,
    graph: &Graph,
    batch: usize,
    optimizer: Optimizer,
    init: &[f32],
    train: Dataset,
    test: Dataset,
    log: &mut dyn Write,
) -> Result<Box<dyn Backend>> {
    let adapter = match device {
        DeviceChoice::Cpu => None,
        DeviceChoice::Gpu => Some(gpu::best_adapter().context(gpu::NO_ADAPTER_HELP)?),
        DeviceChoice::Auto => match gpu::best_adapter() {
            Some(a) if a.is_hardware() => Some(a),
            Some(a) => {
                writeln!(
                    log,
                    "device: no hardware GPU found (only {}); using the CPU reference. \
                     Pass --device gpu to use that adapter anyway.",
                    gpu::describe(&a.info)
                )?;
                None
            }
            None => {
                writeln!(
                    log,
                    "device: no GPU adapter found; using the CPU reference."
                )?;
                None
            }
        },
    };
    Ok(match adapter {
        None => {
            writeln!(log, "device: cpu (reference implementation)")?;
            Box::new(CpuTrainer::new(
                graph,
                batch,
                optimizer,
                init.to_vec(),
                train,
                test,
            ))
        }
        Some(choice) => {
            writeln!(log, "device: gpu, adapter {}", gpu::describe(&choice.info))?;
            if !choice.is_hardware() {
                writeln!(
                    log,
                    "warning: {} is a software adapter that runs on the CPU; \
                     expect it to be far slower than a real GPU.",
                    choice.info.name
                )?;
            }
            let ctx = GpuContext::from_adapter(choice)?;
            Box::new(GpuTrainer::new(
                ctx, graph, batch, optimizer, init, &train, &test,
            )?)
        }
    })
}

fn progress_bar(len: usize, message: String) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>14} [{bar:30}] {pos}/{len} images ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

/// Trains for `cfg.epochs`, calling `on_epoch` after each. `log` receives
/// the human-readable lines.
pub fn train(
    cfg: &TrainConfig,
    log: &mut dyn Write,
    on_epoch: &mut dyn FnMut(&EpochReport) -> Result<()>,
) -> Result<Vec<f32>> {
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        bail!("--lr must be a positive number, not {}", cfg.lr);
    }
    if cfg.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let (train_set, test_set) = load_data(cfg)?;
    if let Some(width) = cfg.expected_input {
        if width != train_set.input_size() {
            bail!(
                "--layers must start at the data's input size {} (its images are {}×{} pixels), not {width}",
                train_set.input_size(),
                train_set.rows,
                train_set.cols
            );
        }
    }
    let input = Shape {
        c: 1,
        h: train_set.rows,
        w: train_set.cols,
    };
    let graph = Graph::new(&cfg.spec, input, crate::data::NUM_CLASSES)?;
    let init = graph.init_params(cfg.seed);
    let n_train = train_set.len();
    let n_test = test_set.len();
    writeln!(
        log,
        "model: {} on {input} inputs, {} parameters; data: {n_train} training, {n_test} test images",
        cfg.spec,
        graph.num_parameters(),
    )?;
    let mut backend = open_backend(
        cfg.device,
        &graph,
        cfg.batch,
        cfg.optimizer,
        &init,
        train_set,
        test_set,
        log,
    )?;
    let steps_per_epoch = n_train.div_ceil(cfg.batch);
    let schedule = Schedule {
        kind: cfg.schedule,
        base_lr: cfg.lr,
        warmup_steps: cfg.warmup_steps,
        step_epochs: cfg.step_epochs,
        gamma: cfg.gamma,
        steps_per_epoch,
        total_steps: steps_per_epoch * cfg.epochs,
    };

    for epoch in 1..=cfg.epochs {
        let order = epoch_order(n_train, cfg.seed, epoch);
        let bar = progress_bar(n_train, format!("epoch {epoch}/{}", cfg.epochs));
        let first_step = (epoch - 1) * steps_per_epoch;
        let lrs = schedule.lrs(first_step, steps_per_epoch);
        let plan = EpochPlan {
            order: &order,
            lrs: &lrs,
            first_step,
        };
        let start = Instant::now();
        let train_stats = backend.train_epoch(plan, &mut |n| bar.set_position(n as u64))?;
        let seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        check_finite(
            &train_stats,
            epoch,
            cfg,
            lrs.iter().cloned().fold(0.0, f32::max),
        )?;

        let bar = progress_bar(n_test, "evaluating".into());
        let test_stats = backend.evaluate(&mut |n| bar.set_position(n as u64))?;
        bar.finish_and_clear();

        let report = EpochReport {
            epoch,
            train_loss: train_stats.mean_loss(),
            train_acc: train_stats.accuracy(),
            test_loss: test_stats.mean_loss(),
            test_acc: test_stats.accuracy(),
            seconds,
            images_per_sec: n_train as f64 / seconds.max(1e-9),
            device: backend.device().into(),
            adapter: backend.adapter(),
        };
        writeln!(
            log,
            "epoch {epoch}/{}: train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% | {:.1}s, {:.0} images/s",
            cfg.epochs,
            report.train_loss,
            100.0 * report.train_acc,
            report.test_loss,
            100.0 * report.test_acc,
            report.seconds,
            report.images_per_sec
        )?;
        on_epoch(&report)?;
    }
    backend.params()
}

fn check_finite(stats: &EpochStats, epoch: usize, cfg: &TrainConfig, lr: f32) -> Result<()> {
    if let Some(step) = stats.bad_step {
        bail!(
            "training diverged: the loss became NaN or infinite in epoch {epoch}, step {step} \
             (images {}..{} of the epoch's order). Try a lower --lr (the rate reached {lr}).",
            step * cfg.batch,
            (step + 1) * cfg.batch,
        );
    }
    if !stats.loss_sum.is_finite() {
        bail!(
            "training diverged: the loss became NaN or infinite in epoch {epoch}. \
             Try a lower --lr (the rate reached {lr})."
        );
    }
    Ok(())
}
