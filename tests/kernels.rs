//! Every WGSL kernel against its CPU reference, on random inputs over shapes
//! that are and are not multiples of the 64×64 / 16 tiles.
//!
//! Tolerances: matmul sums k products of values in [-1, 1], each rounding
//! contributing up to ~6e-8·|partial sum|, so we allow 1e-5·(k + 1) absolute;
//! elementwise kernels differ from the CPU only in exp/tanh, 1e-5.

mod common;

use common::{assert_close, gpu, random_vec, rng};
use gpunet::cpu::ops;
use gpunet::gpu::{Binding, GpuContext, Kernels, MatmulForm, MatmulShape, SgdParams, StepSlots};
use gpunet::graph::Activation;
use rand::Rng;

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
    let d = kernels.matmul(
        ctx,
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
    ];
    for form in [MatmulForm::NN, MatmulForm::TN, MatmulForm::NT] {
        for &(m, n, k) in &shapes {
            let s = MatmulShape { m, n, k };
            let a = random_vec(&mut rng, m * k, 1.0);
            let b = random_vec(&mut rng, k * n, 1.0);
            let want = cpu_matmul(form, &a, &b, s);
            let got = gpu_matmul(&ctx, &kernels, form, s, &a, &b, None, Activation::Identity);
            let tol = 1e-5 * (k as f32 + 1.0);
            assert_close(&format!("{form:?} {m}x{n}x{k}"), &got, &want, tol, 1e-5);
        }
    }
}

#[test]
fn matmul_epilogue_adds_bias_and_activates() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    let mut rng = rng(2);
    for act in ACTIVATIONS {
        for &(m, n, k) in &[(7, 9, 13), (65, 129, 63)] {
            let s = MatmulShape { m, n, k };
            let a = random_vec(&mut rng, m * k, 1.0);
            let b = random_vec(&mut rng, n * k, 1.0);
            let bias = random_vec(&mut rng, n, 1.0);
            let mut want = cpu_matmul(MatmulForm::NT, &a, &b, s);
            ops::bias_activation(&mut want, &bias, act, n);
            let got = gpu_matmul(&ctx, &kernels, MatmulForm::NT, s, &a, &b, Some(&bias), act);
            let tol = 1e-5 * (k as f32 + 1.0);
            assert_close(&format!("{act:?} {m}x{n}x{k}"), &got, &want, tol, 1e-5);
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
        let logits = random_vec(&mut rng, rows * cols, 8.0);
        let labels: Vec<u32> = (0..rows)
            .map(|_| rng.random_range(0..cols as u32))
            .collect();
        let mut want_grad = vec![0.0; rows * cols];
        let (want_loss, want_correct) =
            ops::softmax_xent(&logits, &labels, &mut want_grad, real, cols);

        let steps = StepSlots::new(&ctx, "steps", 1);
        steps.write_epoch(&ctx, real, rows);
        let logits_buf = ctx.storage_init("logits", &logits);
        let labels_buf = ctx.storage_init("labels", &labels);
        let grad_buf = ctx.storage_init("grad", &vec![f32::NAN; rows * cols]);
        let metrics = ctx.storage_zeroed("metrics", 4);
        let d = kernels.softmax_xent(
            &ctx,
            &steps.buffer,
            rows,
            cols,
            Binding::whole(&logits_buf),
            Binding::whole(&labels_buf),
            Binding::whole(&grad_buf),
            Binding::whole(&metrics),
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

#[test]
fn softmax_xent_records_the_first_non_finite_step() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    let steps = StepSlots::new(&ctx, "steps", 3);
    steps.write_epoch(&ctx, 12, 4);
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

#[test]
fn sgd_momentum_matches_reference() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    let mut rng = rng(6);
    for len in [1, 100, 70_001] {
        let params = random_vec(&mut rng, len, 1.0);
        let grads = random_vec(&mut rng, len, 1.0);
        let velocity = random_vec(&mut rng, len, 1.0);
        let (lr, momentum, wd) = (0.05, 0.9, 1e-3);
        let (mut want_p, mut want_v) = (params.clone(), velocity.clone());
        ops::sgd_momentum(&mut want_p, &grads, &mut want_v, lr, momentum, wd);
        let p_buf = ctx.storage_init("p", &params);
        let g_buf = ctx.storage_init("g", &grads);
        let v_buf = ctx.storage_init("v", &velocity);
        let (d, _) = kernels.sgd_momentum(
            &ctx,
            SgdParams {
                len: len as u32,
                lr,
                momentum,
                weight_decay: wd,
            },
            Binding::whole(&p_buf),
            Binding::whole(&g_buf),
            Binding::whole(&v_buf),
        );
        ctx.run(&[d]);
        assert_close(
            "params",
            &ctx.read(&p_buf, 0, len).unwrap(),
            &want_p,
            1e-6,
            1e-6,
        );
        assert_close(
            "velocity",
            &ctx.read(&v_buf, 0, len).unwrap(),
            &want_v,
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
    // 13 images of 7 pixels: byte offsets straddle the packed u32 words.
    let (n, size, rows) = (13usize, 7usize, 5usize);
    let images: Vec<u8> = (0..n * size).map(|_| rng.random()).collect();
    let labels: Vec<u8> = (0..n).map(|_| rng.random_range(0..10)).collect();
    let order: Vec<u32> = vec![12, 0, 5, 7, 3, 11, 1, 2, 4, 6, 8, 9, 10];
    let mut packed = images.clone();
    packed.resize(packed.len().next_multiple_of(4), 0);
    let packed: Vec<u32> = bytemuck::cast_slice::<u8, u32>(&packed).to_vec();
    let labels32: Vec<u32> = labels.iter().map(|&l| l as u32).collect();

    let steps = StepSlots::new(&ctx, "steps", 3);
    steps.write_epoch(&ctx, n, rows);
    let images_buf = ctx.storage_init("images", &packed);
    let labels_buf = ctx.storage_init("labels", &labels32);
    let order_buf = ctx.storage_init("order", &order);
    let x_buf = ctx.storage_zeroed("x", rows * size);
    let y_buf = ctx.storage_zeroed("y", rows);
    let d = kernels.gather(
        &ctx,
        &steps.buffer,
        size,
        rows,
        Binding::whole(&images_buf),
        Binding::whole(&labels_buf),
        Binding::whole(&order_buf),
        Binding::whole(&x_buf),
        Binding::whole(&y_buf),
    );
    for step in 0..3 {
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            d.record(&mut pass, step);
        }
        ctx.queue.submit([encoder.finish()]);
        let indices = &order[step * rows..((step + 1) * rows).min(n)];
        let mut want_x = vec![0.0; rows * size];
        let mut want_y = vec![0u32; rows];
        ops::gather(&images, &labels, size, indices, &mut want_x, &mut want_y);
        let got_x: Vec<f32> = ctx.read(&x_buf, 0, rows * size).unwrap();
        let got_y: Vec<u32> = ctx.read(&y_buf, 0, rows).unwrap();
        assert_close(&format!("step {step} pixels"), &got_x, &want_x, 0.0, 1e-6);
        assert_eq!(got_y, want_y, "step {step} labels");
    }
}
