//! Kernel throughput, GPU beside the CPU reference. Criterion's "elem/s" is
//! floating-point operations per second here (2·m·n·k per matmul), so
//! "Gelem/s" reads as GFLOP/s.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gpunet::cpu::ops;
use gpunet::gpu::{Binding, GpuContext, Kernels, MatmulForm, MatmulShape};
use gpunet::graph::Activation;
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

criterion_group!(benches, matmul);
criterion_main!(benches);
