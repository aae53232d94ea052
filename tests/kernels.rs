//! Every WGSL kernel against its CPU reference, on random inputs over shapes
//! that are and are not multiples of the 64×64 / 16 tiles.
//!
//! Tolerances: matmul sums k products of values in [-1, 1], each rounding
//! contributing up to ~6e-8·|partial sum|, so we allow 1e-5·(k + 1) absolute;
//! elementwise kernels differ from the CPU only in exp/tanh, 1e-5.

mod common;

use common::{assert_close, gpu, random_vec, rng};
use common::{conv, ops};
use gpunet::backend::Optimizer;
use gpunet::data::Normalization;
use gpunet::gpu::{
    Binding, ConvPass, ConvVersion, GpuContext, Kernels, MatmulForm, MatmulShape, MatmulVersion,
    StepSlots,
};
use gpunet::graph::Activation;
use gpunet::graph::Shape;
use gpunet::ops::conv2d::Conv2d;
use gpunet::ops::gather::{self, reference::GatherSettings, Augment, GatherInput};
use gpunet::ops::optim::{reference as optim, AdamConfig};
use gpunet::ops::pool::MaxPool;
use rand::Rng;

/// Every matmul kernel this device can run is checked against the CPU
/// reference (version 4 needs subgroups of 8 lanes, as lavapipe has).
fn matmul_versions(ctx: &GpuContext) -> Vec<MatmulVersion> {
    let versions = MatmulVersion::available(ctx);
    eprintln!(
        "matmul versions checked on {}: {versions:?}",
        ctx.describe()
    );
    versions
}

const ACTIVATIONS: [Activation; 4] = [
    Activation::Identity,
    Activation::Relu,
    Activation::Tanh,
    Activation::Sigmoid,
];

fn cpu_matmul(form: MatmulForm, a: &[f32], b: &[f32], s: MatmulShape) -> Vec<f32> {
    let mut c = vec![0.0; s.m * s.n];
    match form {
        MatmulForm::NN => ops::matmul_nn(a, b, &mut c, s.m, s.k, s.n),
        MatmulForm::TN => ops::matmul_tn(a, b, &mut c, s.m, s.k, s.n),
        MatmulForm::NT => ops::matmul_nt(a, b, &mut c, s.m, s.k, s.n),
    }
    c
}

#[allow(clippy::too_many_arguments)]
fn gpu_matmul(
    ctx: &GpuContext,
    kernels: &Kernels,
    version: MatmulVersion,
    form: MatmulForm,
    s: MatmulShape,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    let a_buf = ctx.storage_init("a", a);
    let b_buf = ctx.storage_init("b", b);
    let bias_buf = bias.map(|v| ctx.storage_init("bias", v));
    let c_buf = ctx.storage_zeroed("c", s.m * s.n);
    let d = kernels.matmul_version(
        ctx,
        version,
        form,
        s,
        Binding::whole(&a_buf),
        Binding::whole(&b_buf),
        bias_buf.as_ref().map(Binding::whole),
        act,
        Binding::whole(&c_buf),
    );
    ctx.run(&[d]);
    ctx.read(&c_buf, 0, s.m * s.n).unwrap()
}

#[test]
fn matmul_all_forms_match_reference() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    let mut rng = rng(1);
    let shapes = [
        (1, 1, 1),
        (7, 5, 3),
        (63, 65, 129),
        (65, 63, 7),
        (129, 17, 64),
        (2, 130, 1),
        (64, 64, 16),
        (128, 10, 200),
        // n and k multiples of 4 (matmul version 4's vec4 loads) with
        // ragged row and column blocks.
        (37, 44, 52),
        (130, 36, 20),
    ];
    for form in [MatmulForm::NN, MatmulForm::TN, MatmulForm::NT] {
        for &(m, n, k) in &shapes {
            let s = MatmulShape { m, n, k };
            let a = random_vec(&mut rng, m * k, 1.0);
            let b = random_vec(&mut rng, k * n, 1.0);
            let want = cpu_matmul(form, &a, &b, s);
            for version in matmul_versions(&ctx) {
                let id = Activation::Identity;
                let got = gpu_matmul(&ctx, &kernels, version, form, s, &a, &b, None, id);
                let tol = 1e-5 * (k as f32 + 1.0);
                let what = format!("{version:?} {form:?} {m}x{n}x{k}");
                assert_close(&what, &got, &want, tol, 1e-5);
            }
        }
    }
}

#[test]
fn matmul_epilogue_adds_bias_and_activates() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    let mut rng = rng(2);
    for act in ACTIVATIONS {
        for &(m, n, k) in &[(7, 9, 13), (65, 129, 63), (33, 20, 64)] {
            let s = MatmulShape { m, n, k };
            let a = random_vec(&mut rng, m * k, 1.0);
            let b = random_vec(&mut rng, n * k, 1.0);
            let bias = random_vec(&mut rng, n, 1.0);
            let mut want = cpu_matmul(MatmulForm::NT, &a, &b, s);
            ops::bias_activation(&mut want, &bias, act, n);
            for version in matmul_versions(&ctx) {
                let nt = MatmulForm::NT;
                let got = gpu_matmul(&ctx, &kernels, version, nt, s, &a, &b, Some(&bias), act);
                let tol = 1e-5 * (k as f32 + 1.0);
                let what = format!("{version:?} {act:?} {m}x{n}x{k}");
                assert_close(&what, &got, &want, tol, 1e-5);
            }
        }
    }
}

#[test]
fn activation_backward_matches_reference() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    let mut rng = rng(3);
    for act in ACTIVATIONS {
        for len in [1, 7, 255, 256, 257, 1000] {
            let y: Vec<f32> = random_vec(&mut rng, len, 3.0)
                .into_iter()
                .map(|x| act.apply(x))
                .collect();
            let dy = random_vec(&mut rng, len, 1.0);
            let mut want = dy.clone();
            ops::activation_backward(act, &y, &mut want);
            let y_buf = ctx.storage_init("y", &y);
            let dy_buf = ctx.storage_init("dy", &dy);
            let d = kernels.activation_backward(
                &ctx,
                act,
                len,
                Binding::whole(&y_buf),
                Binding::whole(&dy_buf),
            );
            ctx.run(&[d]);
            let got: Vec<f32> = ctx.read(&dy_buf, 0, len).unwrap();
            assert_close(&format!("{act:?} len {len}"), &got, &want, 1e-6, 1e-5);
        }
    }
}

#[test]
fn bias_grad_matches_reference() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    let mut rng = rng(4);
    for &(rows, cols) in &[(1, 1), (7, 3), (128, 10), (63, 65), (3, 129)] {
        let dz = random_vec(&mut rng, rows * cols, 1.0);
        let mut want = vec![0.0; cols];
        ops::bias_grad(&dz, &mut want, cols);
        let dz_buf = ctx.storage_init("dz", &dz);
        let db_buf = ctx.storage_zeroed("db", cols);
        let d = kernels.bias_grad(
            &ctx,
            rows,
            cols,
            Binding::whole(&dz_buf),
            Binding::whole(&db_buf),
        );
        ctx.run(&[d]);
        let got: Vec<f32> = ctx.read(&db_buf, 0, cols).unwrap();
        assert_close(
            &format!("{rows}x{cols}"),
            &got,
            &want,
            1e-5 * rows as f32,
            1e-5,
        );
    }
}

#[test]
fn softmax_xent_matches_reference_and_skips_padding_rows() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    let mut rng = rng(5);
    // (rows in the buffer, real rows, classes): more rows than the 256
    // invocations of the workgroup, and a short last batch.
    for &(rows, real, cols) in &[
        (1, 1, 10),
        (7, 7, 3),
        (128, 100, 10),
        (300, 300, 10),
        (65, 1, 5),
    ] {
        for smoothing in [0.0, 0.1] {
            let logits = random_vec(&mut rng, rows * cols, 8.0);
            let labels: Vec<u32> = (0..rows)
                .map(|_| rng.random_range(0..cols as u32))
                .collect();
            let mut want_grad = vec![0.0; rows * cols];
            let (want_loss, want_correct) =
                ops::softmax_xent_smoothed(&logits, &labels, &mut want_grad, real, cols, smoothing);

            let steps = StepSlots::new(&ctx, "steps", 1);
            steps.write_epoch(&ctx, real, rows, 0, &[]);
            let logits_buf = ctx.storage_init("logits", &logits);
            let labels_buf = ctx.storage_init("labels", &labels);
            let grad_buf = ctx.storage_init("grad", &vec![f32::NAN; rows * cols]);
            let metrics = ctx.storage_zeroed("metrics", 4);
            let d = kernels.softmax_xent_smoothed(
                &ctx,
                &steps.buffer,
                rows,
                cols,
                Binding::whole(&logits_buf),
                Binding::whole(&labels_buf),
                Binding::whole(&grad_buf),
                Binding::whole(&metrics),
                smoothing,
            );
            ctx.run(&[d.clone(), d]); // twice: the metrics accumulate
            let grad: Vec<f32> = ctx.read(&grad_buf, 0, rows * cols).unwrap();
            assert_close(
                &format!("grad {rows}x{cols}"),
                &grad,
                &want_grad,
                1e-6,
                1e-4,
            );
            let m: Vec<u32> = ctx.read(&metrics, 0, 4).unwrap();
            let loss = f32::from_bits(m[0]);
            assert_close("loss", &[loss], &[2.0 * want_loss], 1e-4, 1e-5);
            assert_eq!(m[1], 2 * want_correct, "correct count");
            assert_eq!(m[2], 0, "no bad step");
            assert_eq!(m[3], 2 * real as u32, "examples counted");
        }
    }
}

#[test]
fn softmax_xent_records_the_first_non_finite_step() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    let steps = StepSlots::new(&ctx, "steps", 3);
    steps.write_epoch(&ctx, 12, 4, 0, &[]);
    let logits = [0.0, f32::INFINITY, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0];
    let logits_buf = ctx.storage_init("logits", &logits);
    let labels_buf = ctx.storage_init("labels", &[0u32, 1, 0, 0]);
    let grad_buf = ctx.storage_zeroed("grad", 8);
    let metrics = ctx.storage_zeroed("metrics", 4);
    let d = kernels.softmax_xent(
        &ctx,
        &steps.buffer,
        4,
        2,
        Binding::whole(&logits_buf),
        Binding::whole(&labels_buf),
        Binding::whole(&grad_buf),
        Binding::whole(&metrics),
    );
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        for step in [1, 2] {
            d.record(&mut pass, step);
        }
    }
    ctx.queue.submit([encoder.finish()]);
    let m: Vec<u32> = ctx.read(&metrics, 0, 4).unwrap();
    assert_eq!(m[2], 2, "step 1 (stored +1) is the first bad one");
}

/// Runs `optimizer` on the GPU for `steps` steps (learning rates from the
/// step slots, Adam's t from global_step) and on the CPU; compares the
/// parameters and every state vector.
fn check_optimizer(
    ctx: &GpuContext,
    kernels: &Kernels,
    optimizer: Optimizer,
    len: usize,
    seed: u64,
) {
    let mut rng = rng(seed);
    let mut params = random_vec(&mut rng, len, 1.0);
    let grads = random_vec(&mut rng, len, 1.0);
    // SGD starts from a random velocity; Adam from its real start (m = v = 0,
    // t = 1, 2, 3), where the bias corrections 1 − βᵗ are most sensitive.
    let mut state: Vec<Vec<f32>> = match optimizer {
        Optimizer::Sgd { .. } => vec![random_vec(&mut rng, len, 1.0)],
        Optimizer::Adam(_) => vec![vec![0.0; len]; 2],
    };
    let (first_step, lrs) = (0, [0.05f32, 0.02, 0.01]);

    let steps = StepSlots::new(ctx, "steps", lrs.len());
    steps.write_epoch(ctx, lrs.len(), 1, first_step, &lrs);
    let p_buf = ctx.storage_init("p", &params);
    let g_buf = ctx.storage_init("g", &grads);
    let s_bufs: Vec<wgpu::Buffer> = state.iter().map(|v| ctx.storage_init("state", v)).collect();
    let bindings: Vec<Binding> = s_bufs.iter().map(Binding::whole).collect();
    let d = kernels.optimizer_update(
        ctx,
        &steps.buffer,
        &optimizer,
        len,
        Binding::whole(&p_buf),
        Binding::whole(&g_buf),
        &bindings,
    );
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        for step in 0..lrs.len() {
            d.record(&mut pass, step);
        }
    }
    ctx.queue.submit([encoder.finish()]);

    for (step, &lr) in lrs.iter().enumerate() {
        match (&optimizer, state.as_mut_slice()) {
            (
                Optimizer::Sgd {
                    momentum,
                    weight_decay,
                    nesterov,
                },
                [v],
            ) => optim::sgd_momentum(
                &mut params,
                &grads,
                v,
                lr,
                *momentum,
                *weight_decay,
                *nesterov,
            ),
            (Optimizer::Adam(cfg), [m, v]) => optim::adam(
                &mut params,
                &grads,
                m,
                v,
                lr,
                (first_step + step + 1) as u32,
                cfg,
            ),
            _ => unreachable!(),
        }
    }
    // SGD is a few multiply-adds: 1e-6. Adam's update (of size ~lr) divides
    // m̂ by √v̂ + ε, where 1 − β2ᵗ loses digits to cancellation and the GPU's
    // pow is a few ulp off the CPU's repeated product: ~1e-4 relative, so
    // 1e-5 absolute.
    let atol = if optimizer.state_vectors() == 1 {
        1e-6
    } else {
        1e-5
    };
    let what = format!("{optimizer:?}, {len} parameters");
    assert_close(
        &what,
        &ctx.read(&p_buf, 0, len).unwrap(),
        &params,
        atol,
        1e-5,
    );
    for (buf, want) in s_bufs.iter().zip(&state) {
        assert_close(
            &format!("{what} state"),
            &ctx.read(buf, 0, len).unwrap(),
            want,
            atol,
            1e-5,
        );
    }
}

#[test]
fn sgd_momentum_matches_reference() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    for len in [4, 100, 70_004] {
        for nesterov in [false, true] {
            let sgd = Optimizer::Sgd {
                momentum: 0.9,
                weight_decay: 1e-3,
                nesterov,
            };
            check_optimizer(&ctx, &kernels, sgd, len, len as u64);
        }
    }
}

#[test]
fn adam_and_adamw_match_reference() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    for decoupled in [false, true] {
        for len in [4, 260, 70_004] {
            let adam = Optimizer::Adam(AdamConfig {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
                decoupled,
            });
            check_optimizer(&ctx, &kernels, adam, len, 7 + len as u64);
        }
    }
}

/// The convolution shapes the tests sweep: channels 1, 3, 5; odd sizes;
/// strides 1 and 2; paddings 0, 1, 2; kernels 1, 3, 5.
fn conv_cases() -> Vec<(usize, Conv2d)> {
    let mut cases = Vec::new();
    let acts = [Activation::Identity, Activation::Relu, Activation::Tanh];
    let mut i = 0;
    for &(in_c, out_c) in &[(1, 3), (3, 5), (5, 1)] {
        for &(h, w) in &[(7, 7), (9, 6)] {
            for &(kernel, stride, padding) in
                &[(3, 1, 1), (3, 2, 0), (5, 2, 2), (1, 1, 0), (3, 1, 2)]
            {
                let oh = (h + 2 * padding - kernel) / stride + 1;
                let ow = (w + 2 * padding - kernel) / stride + 1;
                let batch = [1, 2, 3][i % 3];
                cases.push((
                    batch,
                    Conv2d {
                        input: Shape { c: in_c, h, w },
                        output: Shape {
                            c: out_c,
                            h: oh,
                            w: ow,
                        },
                        kernel,
                        stride,
                        padding,
                        activation: acts[i % 3],
                    },
                ));
                i += 1;
            }
        }
    }
    cases
}

/// Runs `launch` (one conv pass writing its output to the given binding)
/// once per conv version the device has for `pass`, checks each result
/// against the CPU's `want` within `tol`, and checks that the versions agree
/// bit for bit: they sum the same terms in the same order.
fn check_conv_versions(
    ctx: &GpuContext,
    pass: ConvPass,
    what: &str,
    want: &[f32],
    tol: f32,
    launch: impl Fn(ConvVersion, Binding) -> gpunet::gpu::Dispatch,
) {
    let versions = ConvVersion::available(ctx, pass);
    let outputs: Vec<Vec<f32>> = versions
        .iter()
        .map(|&version| {
            let out = ctx.storage_zeroed("conv output", want.len());
            ctx.run(&[launch(version, Binding::whole(&out))]);
            let got = ctx.read::<f32>(&out, 0, want.len()).unwrap();
            assert_close(&format!("{version:?} {what}"), &got, want, tol, 1e-5);
            got
        })
        .collect();
    for (version, got) in versions.iter().zip(&outputs).skip(1) {
        assert_eq!(
            &outputs[0], got,
            "{what}: {:?} and {version:?} differ",
            versions[0]
        );
    }
}

/// Every pass with two versions (forward, backward to the input and to the
/// weights): each version against the reference, and the two alike.
#[test]
fn conv2d_versions_match_reference_and_each_other() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    let mut rng = rng(21);
    for (batch, c) in conv_cases() {
        let what = format!(
            "batch {batch}, {}→{}, k{} s{} p{}",
            c.input, c.output, c.kernel, c.stride, c.padding
        );
        let k2 = c.kernel * c.kernel;
        let x = random_vec(&mut rng, batch * c.input.len(), 1.0);
        let w = random_vec(&mut rng, c.output.c * c.input.c * k2, 1.0);
        let b = random_vec(&mut rng, c.output.c, 1.0);
        let dy = random_vec(&mut rng, batch * c.output.len(), 1.0);
        let [xb, wb, bb, dyb] = [&x, &w, &b, &dy].map(|v| ctx.storage_init("conv input", v));
        let (x_, w_, b_, dy_) = (
            Binding::whole(&xb),
            Binding::whole(&wb),
            Binding::whole(&bb),
            Binding::whole(&dyb),
        );
        let tol = |terms: usize| 1e-5 * (terms as f32 + 1.0);

        let mut y = vec![0.0; batch * c.output.len()];
        conv::conv2d_forward(&x, &w, &b, &mut y, batch, &c);
        check_conv_versions(
            &ctx,
            ConvPass::Forward,
            &format!("{what}: y"),
            &y,
            tol(c.input.c * k2),
            |v, out| kernels.conv2d_forward_version(&ctx, v, &c, batch, x_, w_, b_, out),
        );
        let mut dx = vec![0.0; batch * c.input.len()];
        conv::conv2d_backward_input(&dy, &w, &mut dx, batch, &c);
        check_conv_versions(
            &ctx,
            ConvPass::BackwardInput,
            &format!("{what}: dx"),
            &dx,
            tol(c.output.c * k2),
            |v, out| kernels.conv2d_backward_input_version(&ctx, v, &c, batch, dy_, w_, out),
        );
        let mut dw = vec![0.0; w.len()];
        conv::conv2d_backward_weight(&dy, &x, &mut dw, batch, &c);
        let per_weight = batch * c.output.h * c.output.w;
        check_conv_versions(
            &ctx,
            ConvPass::BackwardWeight,
            &format!("{what}: dW"),
            &dw,
            tol(per_weight),
            |v, out| kernels.conv2d_backward_weight_version(&ctx, v, &c, batch, dy_, x_, out),
        );
    }
}

#[test]
fn conv2d_forward_and_backward_match_reference() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    let mut rng = rng(20);
    for (batch, c) in conv_cases() {
        let what = format!(
            "batch {batch}, {}→{}, k{} s{} p{}, {:?}",
            c.input, c.output, c.kernel, c.stride, c.padding, c.activation
        );
        let n_w = c.output.c * c.input.c * c.kernel * c.kernel;
        let x = random_vec(&mut rng, batch * c.input.len(), 1.0);
        let w = random_vec(&mut rng, n_w, 1.0);
        let b = random_vec(&mut rng, c.output.c, 1.0);
        let dy = random_vec(&mut rng, batch * c.output.len(), 1.0);
        let (xb, wb, bb, dyb) = (
            ctx.storage_init("x", &x),
            ctx.storage_init("w", &w),
            ctx.storage_init("b", &b),
            ctx.storage_init("dy", &dy),
        );
        let yb = ctx.storage_zeroed("y", batch * c.output.len());
        let dxb = ctx.storage_zeroed("dx", batch * c.input.len());
        let dwb = ctx.storage_zeroed("dw", n_w);
        let dbb = ctx.storage_zeroed("db", c.output.c);
        let all = |buf| Binding::whole(buf);
        ctx.run(&[
            kernels.conv2d_forward(&ctx, &c, batch, all(&xb), all(&wb), all(&bb), all(&yb)),
            kernels.conv2d_backward_input(&ctx, &c, batch, all(&dyb), all(&wb), all(&dxb)),
            kernels.conv2d_backward_weight(&ctx, &c, batch, all(&dyb), all(&xb), all(&dwb)),
            kernels.conv2d_backward_bias(&ctx, &c, batch, all(&dyb), all(&dbb)),
        ]);
        let mut y = vec![0.0; batch * c.output.len()];
        conv::conv2d_forward(&x, &w, &b, &mut y, batch, &c);
        let mut dx = vec![0.0; batch * c.input.len()];
        conv::conv2d_backward_input(&dy, &w, &mut dx, batch, &c);
        let mut dw = vec![0.0; n_w];
        conv::conv2d_backward_weight(&dy, &x, &mut dw, batch, &c);
        let mut db = vec![0.0; c.output.c];
        conv::conv2d_backward_bias(&dy, &mut db, batch, &c);
        // Sums of up to in_c·k² (forward), out_c·k² (dx) or batch·oh·ow (dW) products.
        let tol = |terms: usize| 1e-5 * (terms as f32 + 1.0);
        let read = |buf, len| ctx.read::<f32>(buf, 0, len).unwrap();
        let k2 = c.kernel * c.kernel;
        assert_close(
            &format!("{what}: y"),
            &read(&yb, y.len()),
            &y,
            tol(c.input.c * k2),
            1e-5,
        );
        assert_close(
            &format!("{what}: dx"),
            &read(&dxb, dx.len()),
            &dx,
            tol(c.output.c * k2),
            1e-5,
        );
        let per_weight = batch * c.output.h * c.output.w;
        assert_close(
            &format!("{what}: dW"),
            &read(&dwb, n_w),
            &dw,
            tol(per_weight),
            1e-5,
        );
        assert_close(
            &format!("{what}: db"),
            &read(&dbb, db.len()),
            &db,
            tol(per_weight),
            1e-5,
        );
    }
}

#[test]
fn maxpool_forward_and_backward_match_reference() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    let mut rng = rng(21);
    // Non-overlapping, overlapping (size 3 stride 2) and edge-dropping windows.
    for &(batch, ch, h, w, size, stride) in &[
        (1, 1, 4, 4, 2, 2),
        (2, 3, 7, 5, 2, 2),
        (3, 5, 9, 9, 3, 2),
        (1, 2, 6, 7, 3, 1),
        (2, 1, 5, 5, 5, 5),
    ] {
        let pool = MaxPool {
            input: Shape { c: ch, h, w },
            output: Shape {
                c: ch,
                h: (h - size) / stride + 1,
                w: (w - size) / stride + 1,
            },
            size,
            stride,
        };
        let what = format!("batch {batch}, {} pool{size}s{stride}", pool.input);
        let x = random_vec(&mut rng, batch * pool.input.len(), 1.0);
        let dy = random_vec(&mut rng, batch * pool.output.len(), 1.0);
        let (xb, dyb) = (ctx.storage_init("x", &x), ctx.storage_init("dy", &dy));
        let yb = ctx.storage_zeroed("y", dy.len());
        let argb = ctx.storage_zeroed("argmax", dy.len());
        let dxb = ctx.storage_zeroed("dx", x.len());
        let all = |buf| Binding::whole(buf);
        ctx.run(&[
            kernels.maxpool_forward(&ctx, &pool, batch, all(&xb), all(&yb), all(&argb)),
            kernels.maxpool_backward(&ctx, &pool, batch, all(&dyb), all(&argb), all(&dxb)),
        ]);
        let mut y = vec![0.0; dy.len()];
        let mut argmax = vec![0u32; dy.len()];
        conv::maxpool_forward(&x, &mut y, &mut argmax, batch, &pool);
        let mut dx = vec![0.0; x.len()];
        conv::maxpool_backward(&dy, &argmax, &mut dx, batch, &pool);
        assert_close(
            &format!("{what}: y"),
            &ctx.read(&yb, 0, y.len()).unwrap(),
            &y,
            0.0,
            0.0,
        );
        assert_eq!(
            ctx.read::<u32>(&argb, 0, y.len()).unwrap(),
            argmax,
            "{what}: argmax"
        );
        assert_close(
            &format!("{what}: dx"),
            &ctx.read(&dxb, 0, dx.len()).unwrap(),
            &dx,
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn gather_matches_reference_and_zero_pads() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    let mut rng = rng(7);
    let off = Augment::default();
    // All 13 images in one buffer (a struct literal: clippy reads `[0..13]`
    // as a mistaken range array).
    let whole = [std::ops::Range { start: 0, end: 13 }];
    // 13 images of 7 pixels, whose byte offsets straddle the packed u32
    // words (one pixel per invocation), and of 8 (one word per invocation).
    let grey = |h, w| Shape { c: 1, h, w };
    check_gather(&ctx, &kernels, &mut rng, grey(1, 7), None, off, &whole);
    check_gather(&ctx, &kernels, &mut rng, grey(2, 4), None, off, &whole);
}

#[test]
fn gather_normalises_per_channel_augments_and_reads_chunks() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    let mut rng = rng(8);
    let colour = Shape { c: 3, h: 4, w: 4 };
    let norm = Normalization::PerChannel {
        mean: vec![0.49, 0.48, 0.45],
        std: vec![0.25, 0.24, 0.26],
    };
    let augment = Augment {
        crop: 2,
        flip: true,
    };
    let chunks = [0..5, 5..9, 9..13];
    // Words (no augmentation), then pixels with crops and flips, each over
    // one buffer and over three.
    let whole = [std::ops::Range { start: 0, end: 13 }];
    for parts in [&whole[..], &chunks] {
        let off = Augment::default();
        check_gather(&ctx, &kernels, &mut rng, colour, Some(&norm), off, parts);
        check_gather(
            &ctx,
            &kernels,
            &mut rng,
            colour,
            Some(&norm),
            augment,
            parts,
        );
    }
}

/// The gather of 13 random images of `shape` in batches of 5 (the last
/// short) against the reference, bit for bit, with the pixels uploaded in
/// the image ranges `chunks` (one dispatch each).
fn check_gather(
    ctx: &GpuContext,
    kernels: &Kernels,
    rng: &mut impl Rng,
    shape: Shape,
    norm: Option<&Normalization>,
    augment: Augment,
    chunks: &[std::ops::Range<usize>],
) {
    let (n, rows) = (13usize, 5usize);
    let size = shape.c * shape.h * shape.w;
    let images: Vec<u8> = (0..n * size).map(|_| rng.random()).collect();
    let labels: Vec<u8> = (0..n).map(|_| rng.random_range(0..10)).collect();
    let order: Vec<u32> = vec![12, 0, 5, 7, 3, 11, 1, 2, 4, 6, 8, 9, 10];
    let labels32: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    let scale = norm.cloned().unwrap_or_default().scale(shape.c);
    let seed = 0x1234_5678_9abc;

    let steps = StepSlots::new(ctx, "steps", 3);
    steps.write_epoch(ctx, n, rows, 10, &[0.0; 3]);
    let labels_buf = ctx.storage_init("labels", &labels32);
    let order_buf = ctx.storage_init("order", &order);
    let x_buf = ctx.storage_zeroed("x", rows * size);
    let y_buf = ctx.storage_zeroed("y", rows);
    let chunk_bufs: Vec<wgpu::Buffer> = chunks
        .iter()
        .map(|range| {
            let mut packed = images[range.start * size..range.end * size].to_vec();
            packed.resize(packed.len().next_multiple_of(4), 0);
            ctx.storage_init("images", bytemuck::cast_slice::<u8, u32>(&packed))
        })
        .collect();
    let input = GatherInput {
        shape,
        scale: &scale,
        augment,
        seed,
    };
    let dispatches: Vec<_> = chunks
        .iter()
        .zip(&chunk_bufs)
        .map(|(range, buf)| {
            kernels.gather(
                ctx,
                &steps.buffer,
                &input,
                rows,
                range.clone(),
                Binding::whole(buf),
                Binding::whole(&labels_buf),
                Binding::whole(&order_buf),
                Binding::whole(&x_buf),
                Binding::whole(&y_buf),
            )
        })
        .collect();
    for step in 0..3 {
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for d in &dispatches {
                d.record(&mut pass, step);
            }
        }
        ctx.queue.submit([encoder.finish()]);
        let indices = &order[step * rows..((step + 1) * rows).min(n)];
        let mut want_x = vec![0.0; rows * size];
        let mut want_y = vec![0u32; rows];
        let settings = GatherSettings {
            shape,
            scale: &scale,
            augment,
            seed,
            step: 10 + step as u32,
        };
        gather::reference::gather(
            &images,
            &labels,
            &settings,
            indices,
            &mut want_x,
            &mut want_y,
        );
        let got_x: Vec<f32> = ctx.read(&x_buf, 0, rows * size).unwrap();
        let got_y: Vec<u32> = ctx.read(&y_buf, 0, rows).unwrap();
        let what = format!("{shape} {augment} in {} chunks, step {step}", chunks.len());
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got_x), bits(&want_x), "{what}: pixels");
        assert_eq!(got_y, want_y, "{what}: labels");
    }
}
