//! The GPU training step against the CPU one, from the same weights and
//! batches: after a step (and after an epoch with a short last batch) the
//! weights and the running statistics agree, for MLPs and CNNs (with and
//! without batch norm), with SGD and with Adam/AdamW.

mod common;

use common::{assert_close, gpu, mnist_dir};
use gpunet::backend::{Backend, EpochPlan, Optimizer};
use gpunet::cpu::CpuTrainer;
use gpunet::data::{load_mnist, Split};
use gpunet::gpu::GpuTrainer;
use gpunet::graph::{epoch_order, Activation, Graph, GraphBuilder, Shape, Value};
use gpunet::ops::activation::ActivationOp;
use gpunet::ops::add::Add;
use gpunet::ops::conv2d::Conv2d;
use gpunet::ops::dense::Dense;
use gpunet::ops::optim::AdamConfig;
use gpunet::ops::pool::MaxPool;
use gpunet::spec::ModelSpec;

const SGD: Optimizer = Optimizer::Sgd {
    momentum: 0.9,
    weight_decay: 1e-4,
    nesterov: false,
};

fn adam(decoupled: bool) -> Optimizer {
    Optimizer::Adam(AdamConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
        decoupled,
    })
}

/// Trains one epoch of `n_images` on both devices and compares weights,
/// metrics and a following evaluation. Tolerances: after a few steps the
/// weights differ by accumulated f32 rounding of sums over up to 784·batch
/// products; 1e-3 relative + 2e-5 absolute covers it with margin.
fn compare_after_epoch(spec: &str, n_images: usize, batch: usize, optimizer: Optimizer) {
    let spec = ModelSpec::parse(spec).unwrap();
    let graph = Graph::new(&spec, MNIST, 10).unwrap();
    compare_graph_after_epoch(&graph, n_images, batch, optimizer);
}

const MNIST: Shape = Shape { c: 1, h: 28, w: 28 };

fn compare_graph_after_epoch(graph: &Graph, n_images: usize, batch: usize, optimizer: Optimizer) {
    let Some(ctx) = gpu() else { return };
    let data = load_mnist(&mnist_dir(), Split::Test)
        .unwrap()
        .truncated(n_images);
    let spec = &graph.spec;
    let init = graph.init_params(3);
    let order = epoch_order(n_images, 3, 1);
    let steps = n_images.div_ceil(batch);
    let lrs: Vec<f32> = (0..steps).map(|s| 0.05 / (1.0 + s as f32)).collect();
    let plan = EpochPlan {
        order: &order,
        lrs: &lrs,
        first_step: 4,
        report_every: 0,
        snapshot_every: 0,
    };
    let mut cpu = CpuTrainer::new(
        graph,
        batch,
        optimizer,
        init.clone(),
        data.clone(),
        data.clone(),
    );
    let mut gpu = GpuTrainer::new(ctx, graph, batch, optimizer, &init, &data, &data).unwrap();
    let cpu_stats = cpu.train_epoch(plan, &mut |_| {}).unwrap();
    let gpu_stats = gpu.train_epoch(plan, &mut |_| {}).unwrap();
    let what = format!("{spec}, {optimizer:?}, {n_images} images in batches of {batch}");
    let (g, c) = (gpu.params().unwrap(), cpu.params().unwrap());
    assert_ne!(c, init, "{what}: the step changed the weights");
    assert_close(&format!("{what}: weights"), &g, &c, 2e-5, 1e-3);
    let (g, c) = (gpu.buffers().unwrap(), cpu.buffers().unwrap());
    assert_close(&format!("{what}: buffers"), &g, &c, 2e-5, 1e-3);
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
fn one_mlp_step_on_gpu_equals_one_on_cpu() {
    compare_after_epoch("dense32,relu,dense16,relu,dense10", 64, 64, SGD);
}

#[test]
fn an_mlp_epoch_with_a_short_last_batch_agrees() {
    compare_after_epoch("dense32,tanh,dense10", 150, 64, SGD);
    compare_after_epoch("dense24,sigmoid,dense10", 100, 32, adam(false));
}

/// Batch norm after conv and dense layers, relu fused into it: the
/// statistics of the short last batch (22 of 64 rows) cover its real rows
/// on the GPU as on the CPU, and the running statistics agree after the
/// epoch. With Adam, bn follows activations (and the input) instead: the
/// bias of a layer right before bn has a gradient that is zero up to
/// rounding (bn subtracts the mean), and so does the weight of an input
/// that is the same in every example (the gradient bn passes back sums to
/// zero over the batch); Adam scales such rounding noise up to full steps
/// of either sign, so the devices' last-bit differences would become
/// different weights. SGD leaves them at rounding size.
#[test]
fn epochs_with_batch_norm_and_a_short_last_batch_agree() {
    compare_after_epoch(
        "conv4k3p1,bn,relu,pool2,dense16,bn,relu,dense10",
        150,
        64,
        SGD,
    );
    compare_after_epoch(
        "bn,conv3k5s2,tanh,bn,dense12,sigmoid,bn,relu,dense10",
        40,
        12,
        adam(true),
    );
}

/// A graph that is not a chain: x → conv (a) → relu; a → conv (f) → a + f
/// → relu → pool → dense. `a` is read twice, so its gradient is the sum of
/// the two paths' on both devices.
#[test]
fn a_graph_with_a_value_read_twice_trains_alike() {
    let mut b = GraphBuilder::new(MNIST);
    let conv = |input, channels| Conv2d::new(input, channels, 3, 1, 1).unwrap();
    let a = b
        .push(0, Box::new(conv(MNIST, 4)), vec![Value::Input])
        .unwrap();
    assert!(b.fuse(a, Activation::Relu));
    let f = b.push(2, Box::new(conv(b.shape(a), 4)), vec![a]).unwrap();
    let shape = b.shape(a);
    let sum = b.push(3, Box::new(Add { shape }), vec![a, f]).unwrap();
    let act = b
        .push(
            4,
            Box::new(ActivationOp {
                shape,
                act: Activation::Relu,
            }),
            vec![sum],
        )
        .unwrap();
    let pool = b
        .push(5, Box::new(MaxPool::new(shape, 2, 2).unwrap()), vec![act])
        .unwrap();
    let logits = Dense {
        inputs: b.shape(pool).len(),
        outputs: 10,
        activation: Activation::Identity,
    };
    b.push(6, Box::new(logits), vec![pool]).unwrap();
    let spec = ModelSpec::parse("dense10").unwrap();
    let graph = b.finish(&spec, 10).unwrap();
    compare_graph_after_epoch(&graph, 24, 8, SGD);
    compare_graph_after_epoch(&graph, 16, 16, adam(false));
}

/// Nesterov momentum, label smoothing and no weight decay on biases: the
/// recipes' details agree between the devices too.
#[test]
fn nesterov_smoothing_and_no_bias_decay_agree() {
    let spec = ModelSpec::parse("conv4k3p1,relu,pool2,dense16,relu,dense10").unwrap();
    let mut graph = Graph::new(&spec, MNIST, 10).unwrap();
    graph.label_smoothing = 0.1;
    graph.no_bias_decay = true;
    let nesterov = Optimizer::Sgd {
        momentum: 0.9,
        weight_decay: 5e-2,
        nesterov: true,
    };
    compare_graph_after_epoch(&graph, 24, 16, nesterov);
    compare_graph_after_epoch(&graph, 16, 16, adam(true));
}

/// Residual blocks from the spec language (an identity shortcut, a 1×1
/// projection with stride 2), dropout inside a block and before the head,
/// and global pooling, over an epoch whose last batch is short: the devices
/// draw the same dropout masks (the run's seed, each step's number), so
/// their weights agree as for any other network, and the padding rows of
/// the GPU's last batch change nothing.
#[test]
fn residual_blocks_with_dropout_train_alike() {
    let spec = ModelSpec::parse(
        "conv4k3p1,relu,res(conv4k3p1,relu,dropout0.3,conv4k3p1),relu,pool2,\
         res(conv6k3s2p1,tanh,conv6k3p1),dropout0.5,gap,flatten,dense10",
    )
    .unwrap();
    let mut graph = Graph::new(&spec, MNIST, 10).unwrap();
    graph.seed = 0x5eed_0000_0000_0077;
    compare_graph_after_epoch(&graph, 20, 8, SGD);
    let spec =
        ModelSpec::parse("conv3k3s2,res(conv3k3p1,relu),relu,dropout0.4,dense16,relu,dense10")
            .unwrap();
    let mut graph = Graph::new(&spec, MNIST, 10).unwrap();
    graph.seed = 1;
    compare_graph_after_epoch(&graph, 13, 5, adam(true));
}

#[test]
fn one_cnn_step_on_gpu_equals_one_on_cpu() {
    compare_after_epoch(
        "conv4k3p1,relu,pool2,conv6k3p1,relu,pool2,dense16,relu,dense10",
        16,
        16,
        SGD,
    );
}

#[test]
fn cnn_steps_with_adam_agree() {
    compare_after_epoch("conv3k5s2p2,tanh,pool3s2,dense10", 20, 8, adam(true));
    compare_after_epoch("conv4k3,relu,pool2,dense10", 12, 12, adam(false));
}

/// The inspect paths: every node's outputs, and the gradient of a node's
/// pre-activation with respect to the input, agree between the devices
/// (in evaluation mode: batch norm with running statistics, here set away
/// from their starting values).
#[test]
fn node_outputs_and_input_gradients_agree() {
    check_inspect_paths("conv4k3p1,relu,pool2,dense12,sigmoid,dense10");
    check_inspect_paths("conv4k3p1,bn,relu,pool2,dense12,bn,sigmoid,dense10");
}

fn check_inspect_paths(spec: &str) {
    let Some(ctx) = gpu() else { return };
    let data = load_mnist(&mnist_dir(), Split::Test).unwrap().truncated(20);
    let spec = ModelSpec::parse(spec).unwrap();
    let graph = Graph::new(&spec, Shape { c: 1, h: 28, w: 28 }, 10).unwrap();
    let init = graph.init_params(9);
    let mut cpu = CpuTrainer::new(&graph, 8, SGD, init.clone(), data.clone(), data.clone());
    let mut gpu = GpuTrainer::new(ctx, &graph, 8, SGD, &init, &data, &data).unwrap();
    let buffers: Vec<f32> = graph
        .init_buffers()
        .iter()
        .enumerate()
        .map(|(i, v)| v + 0.1 + 0.05 * (i % 7) as f32)
        .collect();
    cpu.load_buffers(&buffers).unwrap();
    gpu.load_buffers(&buffers).unwrap();
    let x: Vec<f32> = data.images.iter().map(|&p| f32::from(p) / 255.0).collect();
    let nodes: Vec<usize> = (0..graph.nodes.len() - 1).collect();
    let (c, g) = (
        cpu.node_outputs(&x, 20, &nodes).unwrap(),
        gpu.node_outputs(&x, 20, &nodes).unwrap(),
    );
    for (i, (c, g)) in c.iter().zip(&g).enumerate() {
        assert_eq!(c.len(), 20 * graph.nodes[i].output_len());
        assert_close(&format!("{spec}: node {i} outputs"), g, c, 1e-4, 1e-4);
    }
    for node in nodes {
        let rows = 5;
        let len = graph.nodes[node].output_len();
        // One unit per row, away from the image border (where a ReLU
        // network's units often see only zeros).
        let mut seed = vec![0.0; rows * len];
        for r in 0..rows {
            seed[r * len + (len / 2 + 7 * r) % len] = 1.0;
        }
        let xs = &x[..rows * 784];
        let want = cpu.input_gradient(xs, rows, node, &seed).unwrap();
        let got = gpu.input_gradient(xs, rows, node, &seed).unwrap();
        assert!(
            want.iter().any(|&v| v != 0.0),
            "{spec}: node {node}: a non-zero gradient"
        );
        assert_close(
            &format!("{spec}: node {node} input gradient"),
            &got,
            &want,
            1e-5,
            1e-3,
        );
    }
}
