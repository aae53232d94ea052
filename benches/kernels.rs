//! Kernel throughput, GPU beside the CPU reference. Criterion's "elem/s" is
//! floating-point operations per second here (2·m·n·k per matmul, 2 per
//! multiply-add of a convolution), so "Gelem/s" reads as GFLOP/s.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gpunet::gpu::{Binding, GpuContext, Kernels, MatmulForm, MatmulShape};
use gpunet::graph::{Activation, Graph, Shape};
use gpunet::ops::conv2d::{reference as conv, Conv2d};
use gpunet::ops::matmul::reference as ops;
use gpunet::spec::ModelSpec;
use std::time::Duration;

const SIZES: [usize; 3] = [128, 256, 512];

fn matmul(c: &mut Criterion) {
    let gpu = GpuContext::new().ok();
    let mut group = c.benchmark_group("matmul");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for n in SIZES {
        let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.1).collect();
        group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        group.bench_with_input(BenchmarkId::new("cpu", n), &n, |bench, &n| {
            let mut out = vec![0.0; n * n];
            bench.iter(|| ops::matmul_nn(&a, &b, &mut out, n, n, n));
        });
        if let Some(ctx) = &gpu {
            let kernels = Kernels::new(ctx);
            let (a_buf, b_buf) = (ctx.storage_init("a", &a), ctx.storage_init("b", &b));
            let c_buf = ctx.storage_zeroed("c", n * n);
            for form in [MatmulForm::NN, MatmulForm::TN, MatmulForm::NT] {
                let d = kernels.matmul(
                    ctx,
                    form,
                    MatmulShape { m: n, n, k: n },
                    Binding::whole(&a_buf),
                    Binding::whole(&b_buf),
                    None,
                    Activation::Identity,
                    Binding::whole(&c_buf),
                );
                let id = BenchmarkId::new(format!("gpu_{form:?}"), n);
                group.bench_with_input(id, &n, |bench, _| {
                    bench.iter(|| {
                        ctx.run(std::slice::from_ref(&d));
                        ctx.wait().unwrap();
                    });
                });
            }
        }
    }
    group.finish();
}

/// The default CNN's convolutions at batch 128: forward, backward to the
/// input and backward to the weights, each 2·batch·out_c·out_h·out_w·in_c·k²
/// FLOPs.
fn conv2d(c: &mut Criterion) {
    const BATCH: usize = 128;
    let gpu = GpuContext::new().ok();
    let spec = ModelSpec::parse("cnn").unwrap();
    let graph = Graph::new(&spec, Shape { c: 1, h: 28, w: 28 }, 10).unwrap();
    let convs: Vec<Conv2d> = graph
        .nodes
        .iter()
        .filter_map(|node| node.op.as_any().downcast_ref::<Conv2d>().copied())
        .collect();
    let mut group = c.benchmark_group("conv2d");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for (layer, conv) in convs.iter().enumerate() {
        let (x_len, y_len) = (BATCH * conv.input.len(), BATCH * conv.output.len());
        let w_len = conv.output.c * conv.input.c * conv.kernel * conv.kernel;
        let x: Vec<f32> = (0..x_len).map(|i| (i % 7) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..w_len).map(|i| (i % 5) as f32 * 0.1 - 0.2).collect();
        let dy: Vec<f32> = (0..y_len).map(|i| (i % 3) as f32 * 0.1).collect();
        let bias = vec![0.1; conv.output.c];
        let flops = 2 * y_len * conv.input.c * conv.kernel * conv.kernel;
        group.throughput(Throughput::Elements(flops as u64));
        let name = |pass: &str, dev: &str| BenchmarkId::new(format!("{pass}_{dev}"), layer);
        let (mut y, mut dx, mut dw) = (vec![0.0; y_len], vec![0.0; x_len], vec![0.0; w_len]);
        group.bench_function(name("forward", "cpu"), |bench| {
            bench.iter(|| conv::conv2d_forward(&x, &w, &bias, &mut y, BATCH, conv))
        });
        group.bench_function(name("backward_input", "cpu"), |bench| {
            bench.iter(|| conv::conv2d_backward_input(&dy, &w, &mut dx, BATCH, conv))
        });
        group.bench_function(name("backward_weight", "cpu"), |bench| {
            bench.iter(|| conv::conv2d_backward_weight(&dy, &x, &mut dw, BATCH, conv))
        });
        let Some(ctx) = &gpu else { continue };
        let kernels = Kernels::new(ctx);
        let [x_buf, w_buf, dy_buf, b_buf] =
            [&x, &w, &dy, &bias].map(|v| ctx.storage_init("conv input", v));
        let [y_buf, dx_buf, dw_buf] = [y_len, x_len, w_len].map(|n| ctx.storage_zeroed("out", n));
        let whole = Binding::whole;
        let passes = [
            (
                "forward",
                kernels.conv2d_forward(
                    ctx,
                    conv,
                    BATCH,
                    whole(&x_buf),
                    whole(&w_buf),
                    whole(&b_buf),
                    whole(&y_buf),
                ),
            ),
            (
                "backward_input",
                kernels.conv2d_backward_input(
                    ctx,
                    conv,
                    BATCH,
                    whole(&dy_buf),
                    whole(&w_buf),
                    whole(&dx_buf),
                ),
            ),
            (
                "backward_weight",
                kernels.conv2d_backward_weight(
                    ctx,
                    conv,
                    BATCH,
                    whole(&dy_buf),
                    whole(&x_buf),
                    whole(&dw_buf),
                ),
            ),
        ];
        for (pass, dispatch) in passes {
            group.bench_function(name(pass, "gpu"), |bench| {
                bench.iter(|| {
                    ctx.run(std::slice::from_ref(&dispatch));
                    ctx.wait().unwrap();
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, matmul, conv2d);
criterion_main!(benches);
