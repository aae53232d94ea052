//! Prints where a GPU training step's time goes, launch by launch (GPU
//! timestamps where the adapter has them).
//! `cargo run --release --example profile_step -- [model] [batch]`
//! (model: mlp, cnn or a spec string; batch: 128).
use gpunet::backend::Optimizer;
use gpunet::data::{load_mnist, Split};
use gpunet::gpu::{GpuContext, GpuTrainer};
use gpunet::graph::{Graph, Shape};
use gpunet::spec::ModelSpec;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let spec = ModelSpec::parse(&args.next().unwrap_or_else(|| "mlp".into()))?;
    let batch: usize = args.next().map_or(Ok(128), |s| s.parse())?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let data = load_mnist(&dir, Split::Test)?.truncated(2048);
    let graph = Graph::new(&spec, Shape { c: 1, h: 28, w: 28 }, 10)?;
    let ctx = GpuContext::new()?;
    println!("{}: {spec}, batch {batch}", ctx.describe());
    let sgd = Optimizer::Sgd {
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
    };
    let trainer = GpuTrainer::new(ctx, &graph, batch, sgd, &graph.init_params(0), &data, &data)?;
    let (source, times) = trainer.time_dispatches(10)?;
    println!("timing: {}", source.describe());
    let mut total = 0.0;
    for (name, secs) in times {
        println!("{name:>24}: {:9.3} ms", secs * 1e3);
        total += secs;
    }
    println!(
        "{:>24}: {:9.3} ms per step of {batch}",
        "total",
        total * 1e3
    );
    Ok(())
}
