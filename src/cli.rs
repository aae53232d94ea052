//! Command-line interface: argument parsing and wiring, nothing more.

use crate::backend::Optimizer;
use crate::data::{catalog, load_dataset, Split};
use crate::graph::Activation;
use crate::inspect::analysis::AscentSettings;
use crate::inspect::report::{self, InspectConfig};
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
    /// Train a network on MNIST-style data.
    Train(Box<TrainArgs>),
    /// Loss, accuracy, per-class accuracy and the confusion matrix of a saved model.
    Eval(EvalArgs),
    /// The most likely digits in image files (PNG, JPEG, GIF, BMP; any size or colour).
    Predict(PredictArgs),
    /// See what a saved model learned: weight templates, units per class, dead units,
    /// activation maximisation, mistakes, PCA; an HTML report with pictures.
    Inspect(InspectArgs),
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
    /// {"layers": "..."}. Tokens: denseN, convCkK[sS][pP], poolK[sS], relu, tanh, sigmoid,
    /// dropoutP, gap, flatten, res(TOKENS).
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
    /// Print one JSON object per epoch on stdout (human text goes to stderr).
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
    /// Also maximise this unit: LAYER:UNIT, the layer as numbered in the model spec
    /// (its weights are layers.LAYER.weight), e.g. 0:5.
    #[arg(long)]
    pub unit: Option<String>,
    /// The layer (numbered as in the spec) whose activations PCA projects; default the last
    /// hidden one.
    #[arg(long)]
    pub pca_layer: Option<usize>,
    /// How many units and weights to list per class.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// How many of the most confident mistakes to show.
    #[arg(long, default_value_t = 30)]
    pub mistakes: usize,
    /// Gradient-ascent steps of activation maximisation.
    #[arg(long, default_value_t = 200)]
    pub ascent_steps: usize,
    /// Also write the raw numbers to OUT/report.json.
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
    };
    let json = args.json;
    let mut log: Box<dyn Write> = if json {
        Box::new(output::stderr())
    } else {
        Box::new(output::stdout())
    };
    train::train(&cfg, &mut *log, &mut |report| {
        if json {
            let mut out = output::stdout();
            writeln!(out, "{}", serde_json::to_string(report)?)?;
            out.flush()?;
        }
        Ok(())
    })?;
    log.flush()?;
    Ok(())
}

fn run_eval(args: EvalArgs) -> Result<()> {
    if args.test_limit == Some(0) {
        bail!("--test-limit 0 leaves no test images to evaluate; give at least 1");
    }
    let mut test = load_dataset(&resolve_data_dir(args.data)?, Split::Test)?;
    if let Some(n) = args.test_limit {
        test = test.truncated(n);
    }
    let data_shape = crate::graph::Shape {
        c: test.channels,
        h: test.rows,
        w: test.cols,
    };
    let model = model_file::load_with(
        &args.model,
        &assumed(args.spec.as_deref(), Some(data_shape))?,
    )?;
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
    let report = infer::evaluate(backend.as_mut(), &test, model.graph.classes())?;
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
    if args.top == 0 {
        bail!("--top 0 shows no classes; give at least 1");
    }
    let digits = crate::graph::Shape { c: 1, h: 28, w: 28 };
    let model = model_file::load_with(&args.model, &assumed(args.spec.as_deref(), Some(digits))?)?;
    let input = model.graph.input;
    if input.c != 1 {
        bail!(
            "{}: predict prepares images the MNIST way (grayscale digits); this model takes {input} colour images, which predict cannot prepare yet",
            args.model.display()
        );
    }
    let names = model.graph.class_names();
    let mut backend = infer::open_model(args.device, &model, &mut output::stderr())?;
    let predictions = infer::predict_files(
        backend.as_mut(),
        &args.files,
        model.graph.classes(),
        args.top,
    )?;
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
    let cfg = InspectConfig {
        model: args.model,
        out: args.out,
        device: args.device,
        data: resolve_data_dir(args.data)?,
        test_limit: args.test_limit,
        unit: args.unit.as_deref().map(report::parse_unit).transpose()?,
        pca_layer: args.pca_layer,
        top_k: args.top,
        mistakes: args.mistakes,
        ascent: AscentSettings {
            steps: args.ascent_steps,
            ..Default::default()
        },
        json: args.json,
    };
    let index = report::run(&cfg, &mut output::stderr())?;
    let mut out = output::stdout();
    writeln!(out, "{}", index.display())?;
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
