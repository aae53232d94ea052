//! End-to-end training throughput (images/s) of the default MLP and CNN,
//! one epoch over real MNIST images, on the GPU and on the CPU reference.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gpunet::backend::{Backend, EpochPlan, Optimizer};
use gpunet::cpu::CpuTrainer;
use gpunet::data::{load_mnist, Split};
use gpunet::gpu::{GpuContext, GpuTrainer};
use gpunet::graph::{epoch_order, Graph, Shape};
use gpunet::spec::ModelSpec;
use std::time::Duration;

fn train_epoch(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let all = load_mnist(&dir, Split::Train).unwrap();
    let sgd = Optimizer::Sgd {
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
    };
    // The CNN is ~70× the MLP's work per image: fewer images keep a sample short.
    for (model, images) in [("mlp", 2560), ("cnn", 256)] {
        let data = all.clone().truncated(images);
        let spec = ModelSpec::parse(model).unwrap();
        let graph = Graph::new(&spec, Shape { c: 1, h: 28, w: 28 }, 10).unwrap();
        let init = graph.init_params(0);
        let order = epoch_order(images, 0, 1);
        let mut group = c.benchmark_group(format!("train_{model}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(5));
        group.throughput(Throughput::Elements(images as u64));
        for batch in [64, 128, 256] {
            let lrs = vec![0.01; images.div_ceil(batch)];
            let plan = EpochPlan {
                order: &order,
                lrs: &lrs,
                first_step: 0,
                report_every: 0,
                snapshot_every: 0,
            };
            let mut cpu =
                CpuTrainer::new(&graph, batch, sgd, init.clone(), data.clone(), data.clone());
            group.bench_with_input(BenchmarkId::new("cpu", batch), &batch, |b, _| {
                b.iter(|| cpu.train_epoch(plan, &mut |_| {}).unwrap())
            });
            if let Ok(ctx) = GpuContext::new() {
                let mut gpu =
                    GpuTrainer::new(ctx, &graph, batch, sgd, &init, &data, &data).unwrap();
                group.bench_with_input(BenchmarkId::new("gpu", batch), &batch, |b, _| {
                    b.iter(|| gpu.train_epoch(plan, &mut |_| {}).unwrap())
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, train_epoch);
criterion_main!(benches);
