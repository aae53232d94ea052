//! The training loop: picks the device, plans the graph, runs the epochs,
//! reports progress and metrics. Knows nothing of kernels.

use crate::backend::{Backend, EpochStats, Hyper};
use crate::cpu::CpuTrainer;
use crate::data::{load_mnist, Dataset, Split};
use crate::gpu::{self, GpuContext, GpuTrainer};
use crate::graph::{epoch_order, Graph, ModelSpec};
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
    pub device: DeviceChoice,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
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
pub fn open_backend(
    device: DeviceChoice,
    graph: &Graph,
    batch: usize,
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
            Box::new(CpuTrainer::new(graph, batch, init.to_vec(), train, test))
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
            Box::new(GpuTrainer::new(ctx, graph, batch, init, &train, &test)?)
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
    cfg.spec
        .validate(train_set.input_size(), crate::data::NUM_CLASSES)?;
    let graph = Graph::new(&cfg.spec);
    let init = graph.init_params(cfg.seed);
    let n_train = train_set.len();
    let n_test = test_set.len();
    writeln!(
        log,
        "model: {} ({} activation), {} parameters; data: {} training, {} test images",
        cfg.spec
            .layers
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join("-"),
        format!("{:?}", cfg.spec.activation).to_lowercase(),
        graph.num_parameters(),
        n_train,
        n_test
    )?;
    let mut backend = open_backend(
        cfg.device, &graph, cfg.batch, &init, train_set, test_set, log,
    )?;
    let hyper = Hyper {
        lr: cfg.lr,
        momentum: cfg.momentum,
        weight_decay: cfg.weight_decay,
    };

    for epoch in 1..=cfg.epochs {
        let order = epoch_order(n_train, cfg.seed, epoch);
        let bar = progress_bar(n_train, format!("epoch {epoch}/{}", cfg.epochs));
        let start = Instant::now();
        let train_stats =
            backend.train_epoch(&order, hyper, &mut |n| bar.set_position(n as u64))?;
        let seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        check_finite(&train_stats, epoch, cfg)?;

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

fn check_finite(stats: &EpochStats, epoch: usize, cfg: &TrainConfig) -> Result<()> {
    if let Some(step) = stats.bad_step {
        bail!(
            "training diverged: the loss became NaN or infinite in epoch {epoch}, step {step} \
             (images {}..{} of the epoch's order). Try a lower --lr (it is {}).",
            step * cfg.batch,
            (step + 1) * cfg.batch,
            cfg.lr
        );
    }
    if !stats.loss_sum.is_finite() {
        bail!(
            "training diverged: the loss became NaN or infinite in epoch {epoch}. \
             Try a lower --lr (it is {}).",
            cfg.lr
        );
    }
    Ok(())
}
