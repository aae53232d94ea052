//! End-to-end training throughput (images/s) of the default MLP, one epoch
//! over 2,560 real MNIST images, on the GPU and on the CPU reference.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gpunet::backend::{Backend, Hyper};
use gpunet::cpu::CpuTrainer;
use gpunet::data::{load_mnist, Split};
use gpunet::gpu::{GpuContext, GpuTrainer};
use gpunet::graph::{epoch_order, Activation, Graph, ModelSpec};
use std::time::Duration;

const IMAGES: usize = 2560;

fn train_epoch(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let data = load_mnist(&dir, Split::Train).unwrap().truncated(IMAGES);
    let graph = Graph::new(&ModelSpec {
        layers: vec![784, 128, 10],
        activation: Activation::Relu,
    });
    let init = graph.init_params(0);
    let order = epoch_order(IMAGES, 0, 1);
    let hyper = Hyper {
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 0.0,
    };
    let mut group = c.benchmark_group("train_mlp_784_128_10");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(IMAGES as u64));
    for batch in [64, 128, 256] {
        let mut cpu = CpuTrainer::new(&graph, batch, init.clone(), data.clone(), data.clone());
        group.bench_with_input(BenchmarkId::new("cpu", batch), &batch, |b, _| {
            b.iter(|| cpu.train_epoch(&order, hyper, &mut |_| {}).unwrap())
        });
        if let Ok(ctx) = GpuContext::new() {
            let mut gpu = GpuTrainer::new(ctx, &graph, batch, &init, &data, &data).unwrap();
            group.bench_with_input(BenchmarkId::new("gpu", batch), &batch, |b, _| {
                b.iter(|| gpu.train_epoch(&order, hyper, &mut |_| {}).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, train_epoch);
criterion_main!(benches);
