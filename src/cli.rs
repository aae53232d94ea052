//! Command-line interface: argument parsing and wiring, nothing more.

use crate::backend::Optimizer;
use crate::data::NormalizeChoice;
use crate::data::{catalog, load_dataset, load_dataset_sized, Split};
use crate::graph::Activation;
use crate::inspect::analysis::AscentSettings;
use crate::inspect::prompts::PromptsConfig;
use crate::inspect::report::{self, InspectConfig};
use crate::llm::LlmConfig;
use crate::ops::gather::Augment;
use crate::ops::optim::AdamConfig;
use crate::schedule::ScheduleKind;
use crate::spec::ModelSpec;
use crate::train::{self, DeviceChoice, FloatRange, TrainConfig};
use crate::{infer, model_file, output};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "gpunet",
    version,
    about = "Train small neural networks on any GPU with WGSL compute shaders, and look inside them"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Train a network on image data: MNIST-style IDX files, CIFAR-10/100, or an image folder.
    Train(Box<TrainArgs>),
    /// Loss, accuracy, per-class accuracy and the confusion matrix of a saved model.
    Eval(EvalArgs),
    /// The most likely classes of image files (PNG, JPEG, GIF, BMP; any size or colour):
    /// centred MNIST-style for 28×28 one-channel models, resized to the input otherwise.
    Predict(PredictArgs),
    /// See what a saved model learned: weight templates, units per class, dead units,
    /// activation maximisation, mistakes, PCA; an HTML report with pictures.
    Inspect(InspectArgs),
    /// Why a saved model predicts what it does for given images: top classes, saliency,
    /// gradient × input, integrated gradients, occlusion and a CNN's feature maps; an HTML
    /// page with pictures.
    Explain(ExplainArgs),
    /// List the GPU adapters wgpu can see, best first.
    Devices,
    /// Speed of the kernels (matmul, conv2d, softmax) and of training on the adapter in
    /// use, beside the CPU reference.
    Bench(crate::bench::BenchArgs),
    /// Write a saved model for other tools: PyTorch (a weights-only safetensors file and
    /// the Python of its nn.Sequential) or ONNX (for Netron, onnxruntime).
    Export(ExportArgs),
    /// Download datasets (MNIST, Fashion-MNIST, KMNIST, CIFAR-10, CIFAR-100) with
    /// checksums, or list them and what is present.
    #[command(subcommand)]
    Data(DataCommand),
    /// Check that this adapter computes what the CPU reference computes: every kernel
    /// and version the engine would run, PASS/FAIL per kernel; exit status 1 on a failure.
    Selftest(crate::selftest::SelftestArgs),
}

/// Which optimiser `--optimizer` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerChoice {
    Sgd,
    Adam,
    Adamw,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Where to run: a hardware GPU if present (auto), any GPU adapter, or the CPU reference.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// The network: `mlp`, `cnn`, `cifar`, a spec such as
    /// "conv16k3p1,relu,pool2,conv32k3p1,relu,pool2,dense128,relu,dense10", or a JSON file
    /// {"layers": "..."}. Tokens: denseN, convCkK[sS][pP], poolK[sS], bn, relu, tanh, sigmoid,
    /// dropoutP, gap, flatten, res(TOKENS). `cifar`'s last layer takes the data's class count.
    #[arg(long, conflicts_with = "layers")]
    pub model: Option<String>,
    /// An MLP by its layer widths from input to classes, e.g. 784,256,128,10 (the default
    /// model is 784,128,10).
    #[arg(long, value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
    /// Non-linearity of the hidden layers of a --layers MLP.
    #[arg(long, value_enum, default_value_t = Activation::Relu, conflicts_with = "model")]
    pub activation: Activation,
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
    #[arg(long, value_enum, default_value_t = OptimizerChoice::Sgd)]
    pub optimizer: OptimizerChoice,
    /// Learning rate (default 0.1 for sgd, 0.001 for adam and adamw).
    #[arg(long, value_parser = positive)]
    pub lr: Option<f32>,
    /// SGD momentum, in [0, 1).
    #[arg(long, default_value_t = 0.9, value_parser = fraction)]
    pub momentum: f32,
    /// SGD with Nesterov momentum: θ ← θ − lr·(g + momentum·v).
    #[arg(long)]
    pub nesterov: bool,
    /// Label smoothing ε of the training loss, in [0, 1): the target is
    /// (1 − ε)·onehot + ε/classes. The reported test loss stays plain.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub label_smoothing: f32,
    /// No weight decay on one-dimensional parameters (biases, batch-norm
    /// scales and shifts).
    #[arg(long)]
    pub no_bias_decay: bool,
    /// L2 penalty (sgd, adam: added to the gradient; adamw: decoupled, default 0.01).
    #[arg(long, value_parser = non_negative)]
    pub weight_decay: Option<f32>,
    /// Adam's decay of the gradient's running mean, in [0, 1).
    #[arg(long, default_value_t = 0.9, value_parser = fraction)]
    pub beta1: f32,
    /// Adam's decay of the squared gradient's running mean, in [0, 1).
    #[arg(long, default_value_t = 0.999, value_parser = fraction)]
    pub beta2: f32,
    /// Adam's term added to the denominator, above 0.
    #[arg(long, default_value_t = 1e-8, value_parser = positive)]
    pub eps: f32,
    /// How the learning rate changes over the run.
    #[arg(long, value_enum, default_value_t = ScheduleKind::Constant)]
    pub lr_schedule: ScheduleKind,
    /// Linear learning-rate warm-up over this many steps.
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: usize,
    /// With --lr-schedule step: multiply the rate by --lr-gamma every this many epochs.
    #[arg(long, default_value_t = 2)]
    pub lr_step_epochs: usize,
    /// With --lr-schedule step: the factor, above 0.
    #[arg(long, default_value_t = 0.1, value_parser = positive)]
    pub lr_gamma: f32,
    /// Seed for the initial weights and the batch order (the same on every device).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How pixels become inputs: `channel` subtracts the training set's mean
    /// and divides by its std, per channel; `255` divides by 255; `auto`
    /// (the default) is `channel` for colour data and `255` for one-channel
    /// data. Saved with the model; eval, predict and inspect use it.
    #[arg(long, value_enum, default_value_t = NormalizeChoice::Auto)]
    pub normalize: NormalizeChoice,
    /// Random augmentation of the training batches on the device, e.g.
    /// `crop:4,flip`: crop:P pads each image by P black pixels and crops it
    /// back at a random offset, flip mirrors it left-right half the time.
    /// Deterministic for a --seed, the same on every device. Off unless given.
    #[arg(long, value_parser = Augment::parse, default_value = "none")]
    pub augment: Augment,
    /// With an image folder (--data DIR holding train/<class>/ and
    /// test/<class>/): resize every image to N×N. Without it the images
    /// must all have the first one's size.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub image_size: Option<u32>,
    /// The data: a directory of MNIST-style IDX files (gzipped or raw) or
    /// of CIFAR-10/100 binary batches, or the name of a fetched dataset
    /// (`gpunet data list`).
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// Train on the first N training images only.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Test on the first N test images only.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Print the metrics lines of --log on stdout, one JSON object per epoch (and per
    /// --log-every steps); human text goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// Save the trained model (safetensors, PyTorch names and layouts, optimiser state included).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Also save to --save every N epochs, so a run can be resumed.
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: usize,
    /// Continue from a checkpoint (its model; the same seed and settings give the same result
    /// as a run that was never interrupted).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Append one JSON object per epoch to this file.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// With --log: also log the training loss every N steps (each is a GPU read-back).
    #[arg(long, default_value_t = 0)]
    pub log_every: usize,
    /// Draw the loss and accuracy curves into this PNG after every epoch.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Keep the first layer's weights every K steps, saved with the model (needs --save);
    /// `gpunet inspect` animates them.
    #[arg(long, default_value_t = 0)]
    pub snapshot_every: usize,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A model saved by `gpunet train --save`, or a weights-only safetensors file
    /// (`gpunet export --format torch`'s, or one saved from its nn.Sequential).
    #[arg(long)]
    pub model: PathBuf,
    /// The network of a weights-only file that does not name it (no gpunet.model in
    /// its metadata): a spec or preset, as `train --model` takes. Its input shape is
    /// the test images'.
    #[arg(long)]
    pub spec: Option<String>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// The test data: a directory (IDX or CIFAR) or a fetched dataset's name.
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Print the figures as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What `gpunet export --format` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// OUT (safetensors, the nn.Sequential's state_dict names) and OUT with .py (its
    /// `build()`).
    Torch,
    /// OUT as an ONNX model, opset 13, input N×C×H×W.
    Onnx,
}

#[derive(Args)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// A model saved by `gpunet train --save` (or any file `gpunet eval` reads).
    #[arg(long)]
    pub model: PathBuf,
    /// With a weights-only file that does not name its network: the network's spec.
    #[arg(long)]
    pub spec: Option<String>,
    /// With a weights-only file that does not give its input shape: CxHxW, e.g. 1x28x28.
    #[arg(long)]
    pub input: Option<String>,
    /// Where to write: e.g. model.safetensors (torch; model.py goes beside it) or
    /// model.onnx.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct InspectArgs {
    /// A model saved by `gpunet train --save` (with --snapshot-every for the animation).
    #[arg(long)]
    pub model: PathBuf,
    /// Where the report goes (index.html and its pictures).
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// The test data: a directory (IDX or CIFAR) or a fetched dataset's name.
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// Use the first N test images only.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Also maximise this unit: LAYER:UNIT, LAYER a dense or conv layer as numbered in the
    /// model spec (its weights are layers.LAYER.weight), e.g. 0:5; inside a residual block
    /// add the path of its tensors: 3.body.0:5 is unit 5 of the block's first layer
    /// (layers.3.body.0.weight), 3.shortcut:5 of its 1×1 projection.
    #[arg(long)]
    pub unit: Option<String>,
    /// The node whose activations PCA projects, any node by the same addresses as --unit
    /// (a bn, a pool, a block's output: 3 alone is the block's sum); default the last hidden
    /// dense or conv layer.
    #[arg(long)]
    pub pca_layer: Option<String>,
    /// Also tabulate the units per class of this node (any node, addressed as --pca-layer;
    /// its channels are its units). Repeatable.
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
    /// How many units and weights to list per class.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// How many of the most confident mistakes to show.
    #[arg(long, default_value_t = 30)]
    pub mistakes: usize,
    /// Gradient-ascent steps of activation maximisation.
    #[arg(long, default_value_t = 200)]
    pub ascent_steps: usize,
    /// How many units of each hidden layer (the first ones) get an
    /// activation-maximisation image on their unit pages; every output does.
    /// Each layer's units climb as one batch; on the CPU the cost grows with
    /// the count.
    #[arg(long, default_value_t = 16)]
    pub ascent_units: usize,
    /// Also write the raw numbers to OUT/report.json.
    #[arg(long)]
    pub json: bool,
    /// Write neuron write-up prompts to OUT/prompts/: one per live hidden unit (with its
    /// activation-maximisation image), one per layer, one for the network, as Markdown.
    #[arg(long)]
    pub prompts: bool,
    /// Ask an OpenAI-compatible chat-completions server these prompts (implies --prompts),
    /// e.g. http://localhost:11434 for Ollama; /v1/chat/completions is appended unless the
    /// URL ends in /chat/completions (or /v1: then /chat/completions). The key, if any, is
    /// read from the environment variable GPUNET_LLM_API_KEY only. Answers go to
    /// OUT/writeups.json as they arrive; a rerun asks only for the missing ones.
    #[arg(long, requires = "llm_model")]
    pub llm_url: Option<String>,
    /// The model the server should answer with, e.g. llava (a model that reads images).
    #[arg(long, requires = "llm_url")]
    pub llm_model: Option<String>,
    /// Seconds one request may take, answer included.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub llm_timeout: u64,
    /// Retries of a request that got 429, a 5xx or a dropped connection, with
    /// exponential backoff (or the server's Retry-After).
    #[arg(long, default_value_t = 5)]
    pub llm_retries: u32,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// A model saved by `gpunet train --save`.
    #[arg(long)]
    pub model: PathBuf,
    /// Image files (PNG, JPEG, GIF, BMP), prepared as `predict` prepares them (digit-style
    /// for 28×28 one-channel models, else resized) and normalised as in training.
    pub images: Vec<PathBuf>,
    /// Also explain these test images (numbered from 0), with their labels.
    #[arg(long, num_args = 1..)]
    pub test_index: Vec<usize>,
    /// The test data for --test-index: a directory (IDX) or a fetched dataset's name.
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// Where the page goes (index.html, explain.json and a folder of pictures per image).
    #[arg(long, default_value = "explain")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Also explain this class (besides the predicted one).
    #[arg(long)]
    pub class: Option<usize>,
    /// Integrated gradients: intervals of the path from the baseline (trapezoid rule).
    #[arg(long, default_value_t = 64)]
    pub steps: usize,
    /// Integrated gradients: where the path starts, an image of one pixel value in every
    /// channel (black 0, grey 127.5, white 255) normalised as the model's inputs are, so black
    /// is black for any normalisation. Occlusion's grey patch is pixel 127.5, normalised.
    #[arg(long, value_enum, default_value_t = crate::explain::attribution::Baseline::Black)]
    pub baseline: crate::explain::attribution::Baseline,
    /// Occlusion: the side of the grey patch, in pixels.
    #[arg(long, default_value_t = 4)]
    pub patch: usize,
    /// Occlusion: pixels between patches.
    #[arg(long, default_value_t = 2)]
    pub stride: usize,
    /// How many classes to list per image.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Print a summary as one JSON object on stdout (the full maps are in OUT/explain.json).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PredictArgs {
    /// A model saved by `gpunet train --save`, or a weights-only safetensors file
    /// (`gpunet export --format torch`'s, or one saved from its nn.Sequential).
    #[arg(long)]
    pub model: PathBuf,
    /// The network of a weights-only file that does not name it (no gpunet.model in
    /// its metadata): a spec or preset; its input is then taken to be 1x28x28.
    #[arg(long)]
    pub spec: Option<String>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Print one JSON object per image on stdout.
    #[arg(long)]
    pub json: bool,
    /// The images.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// A float flag's value: finite and in its range, or clap's usage error
/// ("invalid value 'nan' for '--lr <LR>': must be a finite number above 0").
fn float_in(text: &str, range: FloatRange) -> std::result::Result<f32, String> {
    let value: f32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    range.check(value).map_err(|e| e.to_string())
}

fn positive(text: &str) -> std::result::Result<f32, String> {
    float_in(text, FloatRange::Positive)
}

fn non_negative(text: &str) -> std::result::Result<f32, String> {
    float_in(text, FloatRange::NonNegative)
}

fn fraction(text: &str) -> std::result::Result<f32, String> {
    float_in(text, FloatRange::Fraction)
}

impl TrainArgs {
    /// The model the flags describe: --model (a spec or a JSON file), or
    /// the --layers MLP with the width it must start at.
    fn model(&self) -> Result<(Option<ModelSpec>, Option<usize>)> {
        if let Some(model) = &self.model {
            let path = Path::new(model);
            if model.ends_with(".json") || path.is_file() {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the model file {model}"))?;
                let spec = ModelSpec::from_json(&text).with_context(|| model.clone())?;
                return Ok((Some(spec), None));
            }
            return Ok((Some(ModelSpec::parse(model).context("--model")?), None));
        }
        let Some(widths) = self.layers.clone() else {
            return Ok((None, None));
        };
        if widths.len() < 2 {
            bail!("--layers needs at least an input and an output width, e.g. 784,10");
        }
        if let Some(i) = widths.iter().position(|&w| w == 0) {
            bail!("--layers: layer {i} has width 0");
        }
        Ok((
            Some(ModelSpec::mlp(&widths, self.activation)),
            Some(widths[0]),
        ))
    }

    fn optimizer(&self) -> (Optimizer, f32) {
        let adam = |decoupled: bool, default_wd: f32| {
            Optimizer::Adam(AdamConfig {
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: self.weight_decay.unwrap_or(default_wd),
                decoupled,
            })
        };
        match self.optimizer {
            OptimizerChoice::Sgd => (
                Optimizer::Sgd {
                    momentum: self.momentum,
                    weight_decay: self.weight_decay.unwrap_or(0.0),
                    nesterov: self.nesterov,
                },
                self.lr.unwrap_or(0.1),
            ),
            OptimizerChoice::Adam => (adam(false, 0.0), self.lr.unwrap_or(1e-3)),
            OptimizerChoice::Adamw => (adam(true, 0.01), self.lr.unwrap_or(1e-3)),
        }
    }
}

/// `--data`: a directory, or the name of a dataset that `gpunet data
/// fetch` knows, looked up in the data directory (`GPUNET_DATA`, else the
/// user's cache); a name not fetched yet is an error that says how to fetch
/// it. The bundled MNIST stands in for the default `data/mnist` when the
/// binary runs from elsewhere.
fn resolve_data_dir(dir: PathBuf) -> Result<PathBuf> {
    let bundled = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    if dir == Path::new("data/mnist") && !dir.exists() && bundled.exists() {
        return Ok(bundled);
    }
    if !dir.exists() && dir.components().count() == 1 {
        if let Some(name) = dir.to_str().filter(|n| catalog::find(n).is_ok()) {
            return catalog::locate(name, &catalog::data_root(None)?)
                .with_context(|| format!("--data {name}"));
        }
    }
    Ok(dir)
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => run_train(*args),
        Command::Eval(args) => run_eval(args),
        Command::Predict(args) => run_predict(args),
        Command::Inspect(args) => run_inspect(args),
        Command::Explain(args) => run_explain(args),
        Command::Bench(mut args) => {
            args.data = resolve_data_dir(args.data)?;
            crate::bench::run(&args)
        }
        Command::Devices => {
            let mut out = output::stdout();
            let adapters = crate::gpu::list_adapters();
            if adapters.is_empty() {
                writeln!(out, "{}", crate::gpu::AdapterChoice::none_found())?;
            }
            for a in adapters {
                writeln!(out, "{}", crate::gpu::describe(&a.info))?;
            }
            out.flush()?;
            Ok(())
        }
        Command::Data(command) => run_data(command),
        Command::Selftest(args) => crate::selftest::command(&args),
        Command::Export(args) => run_export(args),
    }
}

/// `--spec` of eval, predict and export: a spec string or preset.
fn assumed(spec: Option<&str>, input: Option<crate::graph::Shape>) -> Result<model_file::Assumed> {
    Ok(model_file::Assumed {
        spec: spec
            .map(|s| ModelSpec::parse(s).context("--spec"))
            .transpose()?,
        input,
    })
}

fn run_export(args: ExportArgs) -> Result<()> {
    use crate::export::{onnx, torch, TorchNet};
    let input = args
        .input
        .as_deref()
        .map(|text| model_file::parse_shape(text).context("--input"))
        .transpose()?;
    let model = model_file::load_with(&args.model, &assumed(args.spec.as_deref(), input)?)?;
    let net = TorchNet::new(&model.graph)?;
    let mut out = output::stdout();
    match args.format {
        ExportFormat::Torch => {
            let python = args.out.with_extension("py");
            if python == args.out {
                bail!(
                    "--out {}: the weights and the Python would share that name; use e.g. model.safetensors",
                    args.out.display()
                );
            }
            torch::save(&model, &net, &args.out, &python)?;
            writeln!(out, "{}", args.out.display())?;
            writeln!(out, "{}", python.display())?;
        }
        ExportFormat::Onnx => {
            onnx::save(&model, &net, &args.out)?;
            writeln!(out, "{}", args.out.display())?;
        }
    }
    out.flush()?;
    Ok(())
}

fn run_train(args: TrainArgs) -> Result<()> {
    if args.json {
        // No spinner: stdout and stderr may be read by a program.
        crate::status::quiet();
    }
    let (spec, expected_input) = args.model()?;
    let (optimizer, lr) = args.optimizer();
    let cfg = TrainConfig {
        spec,
        expected_input,
        device: args.device,
        epochs: args.epochs,
        batch: args.batch as usize,
        optimizer,
        lr,
        schedule: args.lr_schedule,
        warmup_steps: args.warmup_steps,
        step_epochs: args.lr_step_epochs,
        gamma: args.lr_gamma,
        seed: args.seed,
        label_smoothing: args.label_smoothing,
        no_bias_decay: args.no_bias_decay,
        data: resolve_data_dir(args.data)?,
        train_limit: args.train_limit,
        test_limit: args.test_limit,
        save: args.save,
        checkpoint_every: args.checkpoint_every,
        resume: args.resume,
        log: args.log,
        log_every: args.log_every,
        plot: args.plot,
        snapshot_every: args.snapshot_every,
        normalize: args.normalize,
        augment: args.augment,
        image_size: args.image_size,
    };
    let json = args.json;
    let mut log: Box<dyn Write> = if json {
        Box::new(output::stderr())
    } else {
        Box::new(output::stdout())
    };
    train::train(&cfg, &mut *log, &mut |line| {
        if json {
            let mut out = output::stdout();
            writeln!(out, "{}", serde_json::to_string(line)?)?;
            out.flush()?;
        }
        Ok(())
    })?;
    log.flush()?;
    Ok(())
}

fn run_eval(args: EvalArgs) -> Result<()> {
    if args.json {
        // No spinner: stdout and stderr may be read by a program.
        crate::status::quiet();
    }
    if args.test_limit == Some(0) {
        bail!("--test-limit 0 leaves no test images to evaluate; give at least 1");
    }
    let data = resolve_data_dir(args.data)?;
    // A file that gives its input shape is read first, so that an image
    // folder's test images are resized to it; a weights-only file that
    // does not takes the test images' shape.
    let (model, mut test) =
        match model_file::load_with(&args.model, &assumed(args.spec.as_deref(), None)?) {
            Ok(model) => {
                let input = model.graph.input;
                let side = Some(input.h as u32).filter(|_| input.h == input.w);
                let test = load_dataset_sized(&data, Split::Test, side)?;
                (model, test)
            }
            Err(_) => {
                let test = load_dataset(&data, Split::Test)?;
                let data_shape = crate::graph::Shape {
                    c: test.channels,
                    h: test.rows,
                    w: test.cols,
                };
                let model = model_file::load_with(
                    &args.model,
                    &assumed(args.spec.as_deref(), Some(data_shape))?,
                )?;
                (model, test)
            }
        };
    if let Some(n) = args.test_limit {
        test = test.truncated(n);
    }
    if test.is_empty() {
        bail!("no test images to evaluate");
    }
    let input = model.graph.input;
    if (input.c, input.h, input.w) != (test.channels, test.rows, test.cols) {
        bail!(
            "{} was trained on {input} images, the test images are {}×{}×{}",
            args.model.display(),
            test.channels,
            test.rows,
            test.cols
        );
    }
    if test.classes.len() != model.graph.classes() {
        bail!(
            "{} scores {} classes, the test set has {}",
            args.model.display(),
            model.graph.classes(),
            test.classes.len()
        );
    }
    let mut backend = infer::open_model(args.device, &model, &mut output::stderr())?;
    let report = infer::evaluate(
        backend.as_mut(),
        &model.graph.normalization,
        &test,
        model.graph.classes(),
    )?;
    let mut out = output::stdout();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        write!(out, "{}", report.to_text())?;
    }
    out.flush()?;
    Ok(())
}

fn run_predict(args: PredictArgs) -> Result<()> {
    if args.json {
        // No spinner: stdout and stderr may be read by a program.
        crate::status::quiet();
    }
    if args.top == 0 {
        bail!("--top 0 shows no classes; give at least 1");
    }
    let digits = crate::graph::Shape { c: 1, h: 28, w: 28 };
    let model = model_file::load_with(&args.model, &assumed(args.spec.as_deref(), Some(digits))?)?;
    let names = model.graph.class_names();
    let mut backend = infer::open_model(args.device, &model, &mut output::stderr())?;
    let predictions = infer::predict_files(backend.as_mut(), &model.graph, &args.files, args.top)?;
    let (mut out, mut err) = (output::stdout(), output::stderr());
    let mut failed = 0;
    for p in &predictions {
        if args.json {
            writeln!(out, "{}", serde_json::to_string(p)?)?;
        }
        match &p.error {
            Some(e) => {
                out.flush()?;
                writeln!(err, "error: {e}")?;
                failed += 1;
            }
            None if !args.json => {
                let ranked: Vec<String> = p
                    .top
                    .iter()
                    .map(|(c, prob)| format!("{} ({:.1}%)", names[*c], 100.0 * prob))
                    .collect();
                writeln!(out, "{}: {}", p.file.display(), ranked.join(", "))?;
            }
            None => {}
        }
    }
    out.flush()?;
    if failed > 0 {
        bail!(
            "{failed} of {} files could not be predicted",
            predictions.len()
        );
    }
    Ok(())
}

fn run_inspect(args: InspectArgs) -> Result<()> {
    if args.json {
        // No spinner: stdout and stderr may be read by a program.
        crate::status::quiet();
    }
    let cfg = InspectConfig {
        model: args.model,
        out: args.out,
        device: args.device,
        data: resolve_data_dir(args.data)?,
        test_limit: args.test_limit,
        unit: args.unit.as_deref().map(report::parse_unit).transpose()?,
        pca_layer: args.pca_layer,
        nodes: args.nodes,
        top_k: args.top,
        mistakes: args.mistakes,
        ascent: AscentSettings {
            steps: args.ascent_steps,
            ..Default::default()
        },
        ascent_units: args.ascent_units,
        json: args.json,
        prompts: (args.prompts || args.llm_url.is_some()).then(|| PromptsConfig {
            llm: args.llm_url.zip(args.llm_model).map(|(url, model)| {
                LlmConfig::with_key_from_env(
                    url,
                    model,
                    std::time::Duration::from_secs(args.llm_timeout),
                    args.llm_retries,
                )
            }),
        }),
    };
    let index = report::run(&cfg, &mut output::stderr())?;
    let mut out = output::stdout();
    writeln!(out, "{}", index.display())?;
    out.flush()?;
    Ok(())
}

fn run_explain(args: ExplainArgs) -> Result<()> {
    use crate::explain::{self, attribution::Settings, ExplainConfig};
    let cfg = ExplainConfig {
        model: args.model,
        images: args.images,
        test_indices: args.test_index,
        data: resolve_data_dir(args.data)?,
        out: args.out,
        device: args.device,
        class: args.class,
        settings: Settings {
            steps: args.steps,
            baseline: args.baseline,
            patch: args.patch,
            stride: args.stride,
            top: args.top,
        },
    };
    let (report, index, json) = explain::run(&cfg, &mut output::stderr())?;
    let mut out = output::stdout();
    if args.json {
        let summary = serde_json::to_string(&report.summary(index, json))?;
        writeln!(out, "{summary}")?;
    } else {
        writeln!(out, "{}", index.display())?;
    }
    out.flush()?;
    Ok(())
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Download a dataset into DIR/NAME/, resuming a partial download; each file is
    /// checked against its published size, MD5 and SHA-256 before it is put in place
    /// or unpacked.
    Fetch {
        /// mnist, fashion-mnist, kmnist, cifar10 or cifar100.
        name: String,
        /// The data directory (default: $GPUNET_DATA, else gpunet in the user's cache
        /// directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The datasets gpunet can fetch, their files and sizes, and which are present and
    /// verified in the data directory.
    List {
        /// The data directory (default: $GPUNET_DATA, else gpunet in the user's cache
        /// directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn run_data(command: DataCommand) -> Result<()> {
    use crate::data::{catalog, fetch};
    match command {
        DataCommand::Fetch { name, dir } => {
            let source = catalog::find(&name)?;
            let root = catalog::data_root(dir.as_deref())?;
            let dir = fetch::fetch(
                &source,
                &root.path,
                &fetch::FetchOptions::default(),
                &mut output::stderr(),
            )?;
            let mut out = output::stdout();
            writeln!(out, "{}: ready in {}", source.name, dir.display())?;
            out.flush()?;
        }
        DataCommand::List { dir } => {
            let root = catalog::data_root(dir.as_deref())?;
            let mut out = output::stdout();
            catalog::write_list(&catalog::known(), &root, &mut out)?;
            out.flush()?;
        }
    }
    Ok(())
}
