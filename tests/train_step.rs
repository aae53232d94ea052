//! The GPU training step against the CPU one, from the same weights and
//! batches: after a step (and after an epoch with a short last batch) the
//! weights agree.

mod common;

use common::{assert_close, gpu, mnist_dir};
use gpunet::backend::{Backend, Hyper};
use gpunet::cpu::CpuTrainer;
use gpunet::data::{load_mnist, Split};
use gpunet::gpu::GpuTrainer;
use gpunet::graph::{epoch_order, Activation, Graph, ModelSpec};

fn compare_after_epoch(n_images: usize, batch: usize, act: Activation) {
    let Some(ctx) = gpu() else { return };
    let data = load_mnist(&mnist_dir(), Split::Test)
        .unwrap()
        .truncated(n_images);
    let graph = Graph::new(&ModelSpec {
        layers: vec![784, 32, 16, 10],
        activation: act,
    });
    let init = graph.init_params(3);
    let hyper = Hyper {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 1e-4,
    };
    let order = epoch_order(n_images, 3, 1);
    let mut cpu = CpuTrainer::new(&graph, batch, init.clone(), data.clone(), data.clone());
    let mut gpu = GpuTrainer::new(ctx, &graph, batch, &init, &data, &data).unwrap();
    let cpu_stats = cpu.train_epoch(&order, hyper, &mut |_| {}).unwrap();
    let gpu_stats = gpu.train_epoch(&order, hyper, &mut |_| {}).unwrap();
    let what = format!("{act:?}, {n_images} images in batches of {batch}");
    assert_close(
        &format!("{what}: weights"),
        &gpu.params().unwrap(),
        &cpu.params().unwrap(),
        2e-5,
        1e-3,
    );
    assert_eq!(gpu_stats.count, cpu_stats.count, "{what}: examples");
    assert_eq!(gpu_stats.correct, cpu_stats.correct, "{what}: correct");
    assert_close(
        &format!("{what}: loss"),
        &[gpu_stats.loss_sum as f32],
        &[cpu_stats.loss_sum as f32],
        1e-3,
        1e-4,
    );
    let (g, c) = (
        gpu.evaluate(&mut |_| {}).unwrap(),
        cpu.evaluate(&mut |_| {}).unwrap(),
    );
    assert_eq!(g.count, c.count);
    assert_close(
        "eval loss",
        &[g.loss_sum as f32],
        &[c.loss_sum as f32],
        1e-3,
        1e-4,
    );
}

#[test]
fn one_step_on_gpu_equals_one_on_cpu() {
    compare_after_epoch(64, 64, Activation::Relu);
}

#[test]
fn an_epoch_with_a_short_last_batch_agrees() {
    compare_after_epoch(150, 64, Activation::Tanh);
    compare_after_epoch(100, 32, Activation::Sigmoid);
}
