//! Command-line interface: argument parsing and wiring, nothing more.

use crate::graph::{Activation, ModelSpec};
use crate::train::{self, DeviceChoice, TrainConfig};
use anyhow::Result;
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
    Train(TrainArgs),
    /// List the GPU adapters wgpu can see, best first.
    Devices,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Where to run: a hardware GPU if present (auto), any GPU adapter, or the CPU reference.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Layer widths from input to classes, e.g. 784,256,128,10.
    #[arg(long, value_delimiter = ',', default_value = "784,128,10")]
    pub layers: Vec<usize>,
    /// Non-linearity of the hidden layers.
    #[arg(long, value_enum, default_value_t = Activation::Relu)]
    pub activation: Activation,
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f32,
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// L2 penalty added to the gradient (weight_decay · θ).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Seed for the initial weights and the batch order (the same on every device).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory holding the MNIST IDX files (gzipped or raw).
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
}

/// The bundled data, when the default relative path is not found because the
/// binary runs from elsewhere.
fn resolve_data_dir(dir: PathBuf) -> PathBuf {
    let bundled = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    if dir == Path::new("data/mnist") && !dir.exists() && bundled.exists() {
        bundled
    } else {
        dir
    }
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => run_train(args),
        Command::Devices => {
            let adapters = crate::gpu::list_adapters();
            if adapters.is_empty() {
                println!("{}", crate::gpu::NO_ADAPTER_HELP);
            }
            for a in adapters {
                println!("{}", crate::gpu::describe(&a.info));
            }
            Ok(())
        }
    }
}

fn run_train(args: TrainArgs) -> Result<()> {
    let cfg = TrainConfig {
        spec: ModelSpec {
            layers: args.layers,
            activation: args.activation,
        },
        device: args.device,
        epochs: args.epochs,
        batch: args.batch as usize,
        lr: args.lr,
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        seed: args.seed,
        data: resolve_data_dir(args.data),
        train_limit: args.train_limit,
        test_limit: args.test_limit,
    };
    let json = args.json;
    let mut log: Box<dyn Write> = if json {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    train::train(&cfg, &mut *log, &mut |report| {
        if json {
            println!("{}", serde_json::to_string(report)?);
        }
        Ok(())
    })?;
    Ok(())
}
