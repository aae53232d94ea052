//! The training loop: picks the device, plans the graph, runs the epochs,
//! reports progress and metrics. Knows nothing of kernels.

use crate::backend::{Backend, EpochPlan, EpochStats, Optimizer};
use crate::cpu::CpuTrainer;
use crate::data::{load_dataset_sized, Dataset, NormalizeChoice, Split};
use crate::gpu;
use crate::graph::{epoch_order, Graph, Shape};
use crate::memory;
use crate::model_file::{self, SavedModel, TrainingSettings};
use crate::ops::gather::Augment;
use crate::output;
use crate::plot::{plot_curves, CurvePoint};
use crate::schedule::{Schedule, ScheduleKind};
use crate::spec::ModelSpec;
use crate::status;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
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
    /// The model; None means the default MLP, or the resumed checkpoint's.
    pub spec: Option<ModelSpec>,
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
    /// Label smoothing ε of the training loss.
    pub label_smoothing: f32,
    /// No weight decay on biases and batch-norm parameters.
    pub no_bias_decay: bool,
    pub data: PathBuf,
    pub train_limit: Option<usize>,
    pub test_limit: Option<usize>,
    /// Where the trained model goes (and the periodic checkpoints).
    pub save: Option<PathBuf>,
    /// Save to `save` every this many epochs (0: only at the end).
    pub checkpoint_every: usize,
    /// A checkpoint to continue from.
    pub resume: Option<PathBuf>,
    /// A JSON-lines file that gets one object per epoch (appended).
    pub log: Option<PathBuf>,
    /// Also log the running training loss every this many steps.
    pub log_every: usize,
    /// A PNG of the loss and accuracy curves, redrawn after every epoch.
    pub plot: Option<PathBuf>,
    /// Keep the first layer's weights every this many steps (saved with the
    /// model, for `inspect`'s animation).
    pub snapshot_every: usize,
    /// How pixels become inputs (`--normalize`); a resumed run keeps the
    /// checkpoint's.
    pub normalize: NormalizeChoice,
    /// Random crops and flips of the training batches (`--augment`).
    pub augment: Augment,
    /// An image folder's images resized to N×N (`--image-size`).
    pub image_size: Option<u32>,
}

impl TrainConfig {
    /// Everything but the paths, as saved with the model.
    pub fn settings(&self) -> TrainingSettings {
        TrainingSettings {
            optimizer: self.optimizer,
            lr: self.lr,
            schedule: self.schedule,
            warmup_steps: self.warmup_steps,
            step_epochs: self.step_epochs,
            gamma: self.gamma,
            batch: self.batch,
            seed: self.seed,
            epochs: self.epochs,
            train_limit: self.train_limit,
            label_smoothing: self.label_smoothing,
            no_bias_decay: self.no_bias_decay,
            augment: self.augment,
        }
    }
}

/// The range a float setting must lie in (besides being finite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatRange {
    /// Above 0: `--lr`, `--eps`, `--lr-gamma`.
    Positive,
    /// 0 or more: `--weight-decay`.
    NonNegative,
    /// In [0, 1): `--momentum`, `--beta1`, `--beta2`.
    Fraction,
}

impl FloatRange {
    /// `value` if it is finite and in the range; else what it must be.
    pub fn check(self, value: f32) -> Result<f32> {
        let (inside, must) = match self {
            FloatRange::Positive => (value > 0.0, "a finite number above 0"),
            FloatRange::NonNegative => (value >= 0.0, "a finite number, 0 or more"),
            FloatRange::Fraction => ((0.0..1.0).contains(&value), "a number in [0, 1)"),
        };
        if !(value.is_finite() && inside) {
            bail!("must be {must}, not {value}");
        }
        Ok(value)
    }
}

impl TrainConfig {
    /// Refuses settings that cannot train, naming the flag: every float
    /// finite and in its range (a NaN rate would reach the weights and the
    /// saved model), at least one epoch.
    pub fn check(&self) -> Result<()> {
        let mut floats = vec![
            ("--lr", self.lr, FloatRange::Positive),
            ("--lr-gamma", self.gamma, FloatRange::Positive),
        ];
        match self.optimizer {
            Optimizer::Sgd {
                momentum,
                weight_decay,
                ..
            } => floats.extend([
                ("--momentum", momentum, FloatRange::Fraction),
                ("--weight-decay", weight_decay, FloatRange::NonNegative),
            ]),
            Optimizer::Adam(adam) => floats.extend([
                ("--beta1", adam.beta1, FloatRange::Fraction),
                ("--beta2", adam.beta2, FloatRange::Fraction),
                ("--eps", adam.eps, FloatRange::Positive),
                ("--weight-decay", adam.weight_decay, FloatRange::NonNegative),
            ]),
        }
        for (flag, value, range) in floats {
            range.check(value).with_context(|| flag.to_string())?;
        }
        if self.epochs == 0 {
            bail!("--epochs 0 trains nothing; give at least 1 (with --resume, the total including the epochs already done)");
        }
        if self.batch == 0 {
            bail!("--batch must be at least 1");
        }
        Ok(())
    }
}

/// One epoch's figures; `--json` prints one of these per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Bytes of buffers gpunet holds on the GPU (absent on the CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_bytes: Option<u64>,
    pub device: String,
    pub adapter: String,
    /// Time to first step and its parts (device, self-test, shader
    /// compilation and tuning); the first epoch of a GPU run only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<crate::gpu::Startup>,
}

/// One line of `--log` and of `--json` (the same line in both): an
/// epoch's figures, or with `--log-every N` the running figures every N
/// steps counted from the start of training. Serialised with its `kind`
/// first: `{"kind":"epoch","step":…,"epoch":…,…}` or
/// `{"kind":"steps","epoch":…,"step":…,"train_loss":…,"train_acc":…}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MetricsLine {
    /// The training loss and accuracy over the steps since the previous
    /// report, or since the epoch began; `epoch` is fractional (2.5: half
    /// way through the second epoch), `step` the steps done since the start
    /// of training.
    Steps {
        epoch: f64,
        step: usize,
        train_loss: f64,
        train_acc: f64,
    },
    /// The end of an epoch; `step` as above.
    Epoch {
        step: usize,
        #[serde(flatten)]
        report: EpochReport,
    },
}

/// Loads both splits, applying the limits.
pub fn load_data(cfg: &TrainConfig) -> Result<(Dataset, Dataset)> {
    let mut train = load_dataset_sized(&cfg.data, Split::Train, cfg.image_size)?;
    // The test images take the training images' size, as the model will.
    let size = cfg
        .image_size
        .or(Some(train.rows as u32).filter(|_| train.rows == train.cols));
    let mut test = load_dataset_sized(&cfg.data, Split::Test, size)?;
    if train.classes != test.classes {
        bail!(
            "{}: the training set has {} classes and the test set {}",
            cfg.data.display(),
            train.classes.len(),
            test.classes.len()
        );
    }
    if let Some(n) = cfg.train_limit {
        train = train.truncated(n);
    }
    if let Some(n) = cfg.test_limit {
        test = test.truncated(n);
    }
    if train.is_empty() || test.is_empty() {
        bail!("no training or test images left (check --train-limit / --test-limit)");
    }
    if (train.channels, train.rows, train.cols) != (test.channels, test.rows, test.cols) {
        bail!(
            "training images are {}×{}×{} but test images are {}×{}×{}",
            train.channels,
            train.rows,
            train.cols,
            test.channels,
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
        DeviceChoice::Gpu => Some(gpu::AdapterChoice::best()?),
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
                let why = gpu::AdapterChoice::filter_mismatch()
                    .unwrap_or_else(|| "no GPU adapter found".into());
                writeln!(log, "device: {why}; using the CPU reference.")?;
                None
            }
        },
    };
    // Refuse a plan the host cannot hold before any of it is allocated: on
    // the CPU all of it, on a GPU the copies of the parameters and the
    // packed datasets the upload makes (the device's limits are checked
    // where its buffers are made).
    let context = format!("--batch {batch}");
    match adapter {
        None => memory::check_host(
            &memory::plan_needs(graph, batch, optimizer.state_vectors()),
            &context,
        )?,
        Some(_) => {
            let data = |d: &Dataset| {
                memory::Need::new(
                    "copies of the data for the upload",
                    memory::bytes_of(d.images.len() as u64, 2),
                )
            };
            let params = memory::Need::new(
                "a copy of the parameters",
                memory::bytes_of(init.len() as u64, 4),
            );
            memory::check_host(&[params, data(&train), data(&test)], &context)?;
        }
    }
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
            let _spinner = status::start(&format!("opening {}", choice.info.name));
            let trainer =
                gpu::open_trainer(choice, graph, batch, optimizer, init, &train, &test, log)?;
            if !train.is_empty() {
                let (pixels, all) = trainer.device_bytes();
                writeln!(
                    log,
                    "device memory: {:.1} MB in buffers: {:.1} MB of u8 pixels ({} training, \
                     {} test images; the training set in {} buffer{}), {:.1} MB of weights, \
                     activations and the rest",
                    all as f64 / 1e6,
                    pixels as f64 / 1e6,
                    train.len(),
                    test.len(),
                    trainer.training_chunks(),
                    if trainer.training_chunks() == 1 {
                        ""
                    } else {
                        "s"
                    },
                    (all - pixels) as f64 / 1e6,
                )?;
            }
            Box::new(trainer)
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

/// Trains for `cfg.epochs` (or, resuming, up to that many), calling
/// `on_line` with each metrics line as it is written to `--log` (the steps
/// lines of an epoch at its end, then the epoch's). `log` receives the
/// human-readable lines. Returns the final parameters.
pub fn train(
    cfg: &TrainConfig,
    log: &mut dyn Write,
    on_line: &mut dyn FnMut(&MetricsLine) -> Result<()>,
) -> Result<Vec<f32>> {
    cfg.check()?;
    if cfg.checkpoint_every > 0 && cfg.save.is_none() {
        bail!("--checkpoint-every needs --save PATH to know where to write the checkpoints");
    }
    if cfg.snapshot_every > 0 && cfg.save.is_none() {
        bail!("--snapshot-every needs --save PATH: the snapshots are saved with the model");
    }
    // Every output is checked before any work, so that a typo in a path is
    // not found after hours of training.
    if let Some(path) = &cfg.save {
        output::check_file("--save", path)?;
    }
    if let Some(path) = &cfg.plot {
        output::check_file("--plot", path)?;
    }
    let mut metrics_log = match &cfg.log {
        Some(path) => {
            let name = format!("--log {}", path.display());
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("{name}: cannot open it for appending"))?;
            Some(output::Named::new(file, name))
        }
        None => None,
    };
    let resumed = cfg
        .resume
        .as_deref()
        .map(model_file::load)
        .transpose()
        .context("--resume")?;
    if let (Some(saved), Some(path)) = (&resumed, &cfg.resume) {
        let done = saved.progress.epochs_done;
        if done >= cfg.epochs {
            bail!(
                "--resume {}: the model has already been trained for {done} epoch{}, and --epochs {} \
                 (the total) asks for no more, so nothing was trained; pass --epochs {} or more to continue",
                path.display(),
                if done == 1 { "" } else { "s" },
                cfg.epochs,
                done + 1
            );
        }
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
        c: train_set.channels,
        h: train_set.rows,
        w: train_set.cols,
    };
    let classes = train_set.classes.len();
    let fitted = cfg.spec.as_ref().map(|spec| spec.for_classes(classes));
    let spec = match (&resumed, &fitted) {
        (Some(saved), Some(spec)) if saved.graph.spec != *spec => bail!(
            "--resume: the checkpoint holds the model {}, not {spec}",
            saved.graph.spec
        ),
        (Some(saved), _) => saved.graph.spec.clone(),
        (None, Some(spec)) => spec.clone(),
        (None, None) => ModelSpec::parse("mlp")?,
    };
    let mut graph = Graph::new(&spec, input, classes)?;
    graph.names = train_set.classes.clone();
    graph.normalization = match &resumed {
        Some(saved) => saved.graph.normalization.clone(),
        None => cfg.normalize.resolve(&train_set)?,
    };
    graph.augment = cfg.augment;
    if cfg.augment.flip && train_set.channels == 1 {
        writeln!(
            log,
            "warning: --augment flip mirrors one-channel images; digits and letters change \
             meaning when mirrored"
        )?;
    }
    graph.seed = cfg.seed;
    graph.label_smoothing = cfg.label_smoothing;
    graph.no_bias_decay = cfg.no_bias_decay;
    let n_train = train_set.len();
    let n_test = test_set.len();
    writeln!(
        log,
        "model: {spec} on {input} inputs, {} parameters; data: {n_train} training, {n_test} test images",
        graph.num_parameters(),
    )?;
    writeln!(
        log,
        "inputs: {}; augmentation: {}",
        graph.normalization, graph.augment
    )?;
    let init = graph.init_params(cfg.seed);
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

    let settings = cfg.settings();
    let mut progress = model_file::Progress::default();
    let mut history: Vec<EpochReport> = Vec::new();
    let mut snapshots: Vec<(usize, Vec<f32>)> = Vec::new();
    if cfg.snapshot_every > 0 {
        snapshots.push((0, init[graph.params[0].range()].to_vec()));
    }
    if let Some(saved) = resumed {
        if saved.graph.input != graph.input {
            bail!(
                "--resume: the checkpoint was trained on {} inputs, the data has {}",
                saved.graph.input,
                graph.input
            );
        }
        match &saved.settings {
            Some(old) if old.optimizer != cfg.optimizer => bail!(
                "--resume: the checkpoint was trained with {}, not {}; pass the same optimiser flags ({})",
                old.optimizer,
                cfg.optimizer,
                model_file::optimizer_differences(&old.optimizer, &cfg.optimizer).join("; ")
            ),
            Some(old) if *old != TrainingSettings { epochs: old.epochs, ..settings.clone() } => writeln!(
                log,
                "warning: the training settings differ from the checkpoint's ({}); \
                 the run will not match one that was never interrupted",
                old.differences(&settings).join("; ")
            )?,
            _ => {}
        }
        if saved.optimizer_state.is_empty() {
            bail!("--resume: the checkpoint holds no optimiser state");
        }
        backend.load_state(&saved.params, &saved.optimizer_state)?;
        backend.load_buffers(&saved.buffers)?;
        progress = saved.progress;
        history = saved.history;
        snapshots = saved.snapshots;
        writeln!(
            log,
            "resuming after epoch {} (step {})",
            progress.epochs_done, progress.global_step
        )?;
    }

    let steps_per_epoch = n_train.div_ceil(cfg.batch);
    let schedule = Schedule {
        kind: cfg.schedule,
        base_lr: cfg.lr,
        warmup_steps: cfg.warmup_steps,
        step_epochs: cfg.step_epochs,
        gamma: cfg.gamma,
        steps_per_epoch,
        total_steps: steps_per_epoch.checked_mul(cfg.epochs).with_context(|| {
            format!(
                "--epochs {} of {steps_per_epoch} steps each is more steps than can be counted",
                cfg.epochs
            )
        })?,
    };

    if let Some(s) = backend.startup() {
        writeln!(
            log,
            "time to first step: {:.2}s (device {:.2}s, self-test {:.2}s, shaders and tuning {:.2}s; tuning cache {})",
            s.seconds, s.device_seconds, s.selftest_seconds, s.plan_seconds, s.tuning_cache
        )?;
    }
    let first_epoch = progress.epochs_done + 1;
    for epoch in first_epoch..=cfg.epochs {
        let order = epoch_order(n_train, cfg.seed, epoch);
        let bar = progress_bar(n_train, format!("epoch {epoch}/{}", cfg.epochs));
        let first_step = (epoch - 1) * steps_per_epoch;
        let lrs = schedule.lrs(first_step, steps_per_epoch);
        let plan = EpochPlan {
            order: &order,
            lrs: &lrs,
            first_step,
            report_every: cfg.log_every,
            snapshot_every: cfg.snapshot_every,
        };
        let start = Instant::now();
        let mut last_report = (0, EpochStats::default());
        let mut step_lines: Vec<MetricsLine> = Vec::new();
        let train_stats = backend.train_epoch(plan, &mut |update| {
            bar.set_position(update.examples as u64);
            if let Some((steps, stats)) = update.report {
                step_lines.push(step_line(
                    epoch,
                    first_step,
                    steps,
                    steps_per_epoch,
                    &stats,
                    &last_report.1,
                ));
                last_report = (steps, stats);
            }
            if let Some((steps, weights)) = update.snapshot {
                snapshots.push((first_step + steps, weights));
            }
        })?;
        let seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        check_finite(
            &train_stats,
            epoch,
            cfg,
            lrs.iter().cloned().fold(0.0, f32::max),
        )?;
        for line in &step_lines {
            if let Some(file) = &mut metrics_log {
                writeln!(file, "{}", serde_json::to_string(line)?)?;
            }
            on_line(line)?;
        }

        let bar = progress_bar(n_test, "evaluating".into());
        let test_stats = backend.evaluate(&mut |u| bar.set_position(u.examples as u64))?;
        bar.finish_and_clear();
        // The training loss of each step is taken before its update, so the
        // last update can break the weights unseen: the test loss shows it.
        if !test_stats.loss_sum.is_finite() {
            bail!(
                "training diverged: the test loss became NaN or infinite after epoch {epoch} \
                 (training loss {:.4}); this epoch's model was not saved. Try a lower --lr (the rate reached {}).",
                train_stats.mean_loss(),
                model_file::number(lrs.iter().cloned().fold(0.0, f32::max))
            );
        }

        let report = EpochReport {
            epoch,
            train_loss: train_stats.mean_loss(),
            train_acc: train_stats.accuracy(),
            test_loss: test_stats.mean_loss(),
            test_acc: test_stats.accuracy(),
            seconds,
            images_per_sec: n_train as f64 / seconds.max(1e-9),
            device_bytes: backend.device_bytes().map(|(_, all)| all),
            device: backend.device().into(),
            adapter: backend.adapter(),
            startup: None,
        };
        let mut report = report;
        if epoch == first_epoch {
            report.startup = backend.startup();
        }
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
        let epoch_line = MetricsLine::Epoch {
            step: first_step + steps_per_epoch,
            report: report.clone(),
        };
        if let Some(file) = &mut metrics_log {
            writeln!(file, "{}", serde_json::to_string(&epoch_line)?)?;
        }
        history.push(EpochReport {
            startup: None,
            ..report.clone()
        });
        progress = model_file::Progress {
            epochs_done: epoch,
            global_step: first_step + steps_per_epoch,
        };
        if let Some(path) = &cfg.plot {
            plot_curves(path, &curve_points(&history), 1000, 420)?;
        }
        let checkpoint_due = cfg.checkpoint_every > 0 && epoch % cfg.checkpoint_every == 0;
        if let (Some(path), true) = (&cfg.save, checkpoint_due || epoch == cfg.epochs) {
            let params = backend.params()?;
            if let Some((tensor, bad)) = model_file::non_finite_tensor(&graph, &params) {
                bail!(
                    "training diverged: {tensor} holds {bad} NaN or infinite values after epoch {epoch}; \
                     {} was not overwritten. Try a lower --lr.",
                    path.display()
                );
            }
            let saved = SavedModel {
                graph: graph.clone(),
                params,
                buffers: backend.buffers()?,
                optimizer_state: backend.optimizer_state()?,
                settings: Some(settings.clone()),
                progress,
                history: history.clone(),
                snapshots: snapshots.clone(),
            };
            model_file::save(path, &saved)?;
            writeln!(log, "saved {} (after epoch {epoch})", path.display())?;
        }
        on_line(&epoch_line)?;
    }
    backend.params()
}

/// A `--log-every` line: the loss and accuracy over the steps since the
/// previous report (from the running sums `now` and `before`), `steps`
/// into the epoch that began after `first_step` steps.
fn step_line(
    epoch: usize,
    first_step: usize,
    steps: usize,
    per_epoch: usize,
    now: &EpochStats,
    before: &EpochStats,
) -> MetricsLine {
    let count = (now.count - before.count).max(1) as f64;
    MetricsLine::Steps {
        epoch: (epoch - 1) as f64 + steps as f64 / per_epoch as f64,
        step: first_step + steps,
        train_loss: (now.loss_sum - before.loss_sum) / count,
        train_acc: (now.correct - before.correct) as f64 / count,
    }
}

fn curve_points(history: &[EpochReport]) -> Vec<CurvePoint> {
    history
        .iter()
        .map(|r| CurvePoint {
            epoch: r.epoch as f64,
            train_loss: r.train_loss,
            train_acc: r.train_acc,
            test_loss: Some(r.test_loss),
            test_acc: Some(r.test_acc),
        })
        .collect()
}

fn check_finite(stats: &EpochStats, epoch: usize, cfg: &TrainConfig, lr: f32) -> Result<()> {
    let lr = model_file::number(lr);
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
