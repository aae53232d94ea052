//! `gpunet bench`: the speed of the kernels and of training on the adapter in
//! use, GPU beside the CPU reference.
//!
//! Four parts, each runnable alone with `--only`:
//! - `matmul`: the engine's matmul kernel and the naive version 1 in the three
//!   forms (A·B, Aᵀ·B, A·Bᵀ) at square sizes, GFLOP/s (2·m·n·k per product);
//! - `conv`: conv2d forward, backward to the input and to the weights on the
//!   default CNN's two conv layers, GFLOP/s (2·batch·out_c·out_h·out_w·in_c·k·k);
//! - `softmax`: softmax cross-entropy with its gradient, µs and GB/s;
//! - `train`: training images/s of the default MLP and CNN on real MNIST, and
//!   for the GPU the launches per step and the time per step outside kernels;
//! - `startup`: time to first step of the default CNN, cold and warm
//!   (self-test, shader compilation, tuning; see `startup.rs`);
//! - `accuracy` (only when asked for): time to 99% test accuracy of the CNN.
//!
//! Every measurement starts with a warm-up run, then repeats for about
//! `--measure-time` seconds (at least one timed run, at most `MAX_RUNS`) and
//! reports the median; a first run of over 2 s is the measurement itself
//! (see `measure::repeat`). GPU kernel times come
//! from timestamp queries where the adapter has them, else from the wall
//! clock around submit and wait; the output says which.

mod conv;
mod matmul;
mod measure;
mod report;
mod softmax;
mod startup;
mod train;

use crate::gpu::{GpuContext, GpuTimer, Kernels};
use anyhow::{bail, Result};
use clap::Args;
use measure::Budget;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use report::{Reporter, Results};
use std::path::PathBuf;
use std::time::Instant;

/// The parts of the bench `--only` picks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Matmul,
    Conv,
    Softmax,
    Train,
    Startup,
    Accuracy,
}

/// The flags of `gpunet bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Print the results as one JSON object on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Run only these parts (repeat the flag or give a comma list).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Part>,
    /// A fast look: small matmuls, few training images, short measurements.
    #[arg(long)]
    pub quick: bool,
    /// Square matmul sizes [default: 128,256,512,1024,2048,4096; 128 with --quick].
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<usize>>,
    /// Run the CPU reference matmul only up to this size.
    #[arg(long, default_value_t = 1024)]
    pub cpu_max_size: usize,
    /// Run the naive (version 1) matmul kernel only up to this size.
    #[arg(long, default_value_t = 1024)]
    pub naive_max_size: usize,
    /// Train only these default models [default: mlp,cnn].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub models: Vec<train::Model>,
    /// Training batch sizes [default: 64,128,256,1024; 64 with --quick].
    #[arg(long, value_delimiter = ',')]
    pub batches: Option<Vec<usize>>,
    /// Training images per epoch for both models, rounded up to whole batches
    /// [default: 4096 for the MLP and 512 for the CNN; 1024 and 64 with --quick].
    #[arg(long)]
    pub train_images: Option<usize>,
    /// Seconds to repeat each measurement for [default: 0.3; 0.05 with --quick].
    #[arg(long)]
    pub measure_time: Option<f64>,
    /// Skip a matmul whose single run is expected (from the size below it, as n³) to
    /// take longer than this many seconds.
    #[arg(long, default_value_t = 20.0)]
    pub max_run_time: f64,
    /// Directory holding the MNIST IDX files (for the training part).
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// The accuracy part: at most this many epochs [default: 15; 1 with --quick].
    #[arg(long)]
    pub accuracy_epochs: Option<usize>,
}

/// At most this many timed runs per measurement.
const MAX_RUNS: usize = 200;

/// What to measure, resolved from the flags.
struct Settings {
    parts: Vec<Part>,
    matmul_sizes: Vec<usize>,
    cpu_max_size: usize,
    naive_max_size: usize,
    /// Skip a matmul run expected to take longer than this.
    max_run_seconds: f64,
    conv_batch: usize,
    /// (rows, classes) of each softmax cross-entropy case.
    softmax_cases: Vec<(usize, usize)>,
    train_batches: Vec<usize>,
    train_models: Vec<train::Model>,
    mlp_images: usize,
    cnn_images: usize,
    data: PathBuf,
    budget: Budget,
    accuracy_epochs: usize,
    /// Training images for the accuracy part (None: all of MNIST's).
    accuracy_train_limit: Option<usize>,
}

impl Settings {
    fn from_args(args: &BenchArgs) -> Result<Settings> {
        let quick = args.quick;
        let pick =
            |quick_value: Vec<usize>, full: Vec<usize>| if quick { quick_value } else { full };
        let parts = if args.only.is_empty() {
            vec![
                Part::Matmul,
                Part::Conv,
                Part::Softmax,
                Part::Train,
                Part::Startup,
            ]
        } else {
            args.only.clone()
        };
        let matmul_sizes = args
            .sizes
            .clone()
            .unwrap_or_else(|| pick(vec![128], vec![128, 256, 512, 1024, 2048, 4096]));
        let train_batches = args
            .batches
            .clone()
            .unwrap_or_else(|| pick(vec![64], vec![64, 128, 256, 1024]));
        if matmul_sizes.contains(&0) {
            bail!("--sizes: a matmul size must be at least 1");
        }
        if train_batches.contains(&0) {
            bail!("--batches: a batch must hold at least one image");
        }
        if args.train_images == Some(0) {
            bail!("--train-images must be at least 1");
        }
        let seconds = args.measure_time.unwrap_or(if quick { 0.05 } else { 0.3 });
        if !(seconds.is_finite() && seconds >= 0.0) {
            bail!("--measure-time must be a number of seconds, 0 or more");
        }
        if args.max_run_time.is_nan() || args.max_run_time <= 0.0 {
            bail!("--max-run-time must be a positive number of seconds");
        }
        Ok(Settings {
            parts,
            matmul_sizes,
            cpu_max_size: args.cpu_max_size,
            naive_max_size: args.naive_max_size,
            max_run_seconds: args.max_run_time,
            conv_batch: if quick { 8 } else { 128 },
            softmax_cases: vec![(128, 10), (1024, 1000)],
            train_batches,
            train_models: if args.models.is_empty() {
                train::Model::ALL.to_vec()
            } else {
                args.models.clone()
            },
            mlp_images: args.train_images.unwrap_or(if quick { 1024 } else { 4096 }),
            cnn_images: args.train_images.unwrap_or(if quick { 64 } else { 512 }),
            data: args.data.clone(),
            budget: Budget {
                seconds,
                max_runs: MAX_RUNS,
            },
            accuracy_epochs: args.accuracy_epochs.unwrap_or(if quick { 1 } else { 15 }),
            accuracy_train_limit: quick.then_some(2048),
        })
    }

    fn runs(&self, part: Part) -> bool {
        self.parts.contains(&part)
    }

    /// Table rows the selected parts will print: the progress bar's length.
    fn row_count(&self, gpu: Option<&Gpu>) -> usize {
        let mut rows = 0;
        if self.runs(Part::Matmul) {
            rows += matmul::FORMS.len() * self.matmul_sizes.len();
        }
        if self.runs(Part::Conv) {
            rows += conv::row_count(gpu);
        }
        if self.runs(Part::Softmax) {
            rows += self.softmax_cases.len();
        }
        if self.runs(Part::Train) {
            rows += self.train_models.len() * self.train_batches.len();
        }
        rows
    }
}

/// The adapter the kernel parts run on, with the engine's pipelines and a
/// timer.
struct Gpu {
    ctx: GpuContext,
    kernels: Kernels,
    timer: GpuTimer,
}

impl Gpu {
    fn open() -> Result<Gpu> {
        let ctx = GpuContext::new()?;
        let kernels = Kernels::new(&ctx);
        let timer = GpuTimer::new(&ctx);
        Ok(Gpu {
            ctx,
            kernels,
            timer,
        })
    }

    /// Fails if a GPU validation error was raised inside `work`.
    fn checked<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let guard = self
            .ctx
            .device
            .push_error_scope(wgpu::ErrorFilter::Validation);
        let value = work();
        self.ctx.check(guard)?;
        value
    }
}

/// Runs `gpunet bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let settings = Settings::from_args(args)?;
    let started = Instant::now();
    let (gpu, gpu_error) = match Gpu::open() {
        Ok(gpu) => (Some(gpu), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let mut out = Reporter::new(args.json, settings.row_count(gpu.as_ref()));
    let mut results = Results::new(gpu.as_ref().map(|g| (&g.ctx, g.timer.source())));
    results.gpu_error = gpu_error;
    out.header(&results)?;
    if settings.runs(Part::Matmul) {
        results.matmul = matmul::run(&settings, gpu.as_ref(), &mut out)?;
    }
    if settings.runs(Part::Conv) {
        results.conv = conv::run(&settings, gpu.as_ref(), &mut out)?;
    }
    if settings.runs(Part::Softmax) {
        results.softmax = softmax::run(&settings, gpu.as_ref(), &mut out)?;
    }
    // The trainers open their own devices: free this one first.
    let gpu_found = gpu.is_some();
    drop(gpu);
    if settings.runs(Part::Train) {
        results.train = train::run(&settings, gpu_found, &mut out)?;
    }
    if gpu_found && settings.runs(Part::Startup) {
        results.startup = startup::startup(&settings, &mut out)?;
    }
    if gpu_found && settings.runs(Part::Accuracy) {
        results.accuracy = startup::accuracy(&settings, &mut out)?;
    }
    results.seconds = started.elapsed().as_secs_f64();
    out.finish(&results)
}

/// `len` values uniform in [-1, 1) from `seed`: inputs whose values do not
/// matter to the speed, but are not all zero.
fn test_values(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}
