//! Prints where a GPU training step's time goes, launch by launch.
//! `cargo run --release --example profile_step -- [batch]`
use gpunet::data::{load_mnist, Split};
use gpunet::gpu::{GpuContext, GpuTrainer};
use gpunet::graph::{Activation, Graph, ModelSpec};

fn main() -> anyhow::Result<()> {
    let batch: usize = std::env::args().nth(1).map_or(Ok(128), |s| s.parse())?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let train = load_mnist(&dir, Split::Test)?.truncated(2048);
    let graph = Graph::new(&ModelSpec {
        layers: vec![784, 128, 10],
        activation: Activation::Relu,
    });
    let ctx = GpuContext::new()?;
    println!("{}", ctx.describe());
    let trainer = GpuTrainer::new(ctx, &graph, batch, &graph.init_params(0), &train, &train)?;
    let mut total = 0.0;
    for (name, secs) in trainer.time_dispatches(20)? {
        println!("{name:>22}: {:8.3} ms", secs * 1e3);
        total += secs;
    }
    println!(
        "{:>22}: {:8.3} ms per step of {batch}",
        "total",
        total * 1e3
    );
    Ok(())
}
