//! The kernels with several versions, and those below the layers, each
//! version this adapter can run against the CPU reference: matmul (every
//! version, form and fused epilogue), the conv passes (every version), and
//! softmax cross-entropy, the optimisers and the batch gather. Shapes and
//! tolerances are tests/kernels.rs's.

use super::{Level, Runner};
use crate::backend::Optimizer;
use crate::data::InputScale;
use crate::gpu::{Binding, ConvPass, MatmulForm, MatmulShape, MatmulVersion};
use crate::graph::{Graph, Shape};
use crate::ops::activation::reference::bias_activation;
use crate::ops::conv2d::reference as conv_ref;
use crate::ops::conv2d::Conv2d;
use crate::ops::dense::Dense;
use crate::ops::gather::reference::{gather, GatherSettings};
use crate::ops::gather::{Augment, GatherInput};
use crate::ops::matmul::reference as mm;
use crate::ops::optim::{reference as optim, AdamConfig};
use crate::ops::softmax_xent::reference::softmax_xent_smoothed;
use crate::ops::Activation;
use anyhow::Result;
use rand::Rng;

const ACTIVATIONS: [Activation; 4] = [
    Activation::Identity,
    Activation::Relu,
    Activation::Tanh,
    Activation::Sigmoid,
];
const FORMS: [MatmulForm; 3] = [MatmulForm::NN, MatmulForm::TN, MatmulForm::NT];

fn cpu_matmul(form: MatmulForm, a: &[f32], b: &[f32], s: MatmulShape) -> Vec<f32> {
    let mut c = vec![0.0; s.m * s.n];
    match form {
        MatmulForm::NN => mm::matmul_nn(a, b, &mut c, s.m, s.k, s.n),
        MatmulForm::TN => mm::matmul_tn(a, b, &mut c, s.m, s.k, s.n),
        MatmulForm::NT => mm::matmul_nt(a, b, &mut c, s.m, s.k, s.n),
    }
    c
}

/// The three products of every dense layer of `graph` at batch `rows`.
pub fn dense_shapes(graph: &Graph, rows: usize) -> Vec<(MatmulForm, MatmulShape)> {
    let mut shapes = Vec::new();
    for node in &graph.nodes {
        if let Some(d) = node.op.as_any().downcast_ref::<Dense>() {
            let (i, o) = (d.inputs, d.outputs);
            let s = |m, n, k| MatmulShape { m, n, k };
            shapes.push((MatmulForm::NT, s(rows, o, i)));
            shapes.push((MatmulForm::TN, s(o, i, rows)));
            shapes.push((MatmulForm::NN, s(rows, i, o)));
        }
    }
    shapes
}

/// Every matmul version this adapter has, in every form, on the tests' odd
/// shapes and on `model_shapes`; then the fused bias + activation epilogue.
pub fn matmul(run: &mut Runner, model_shapes: &[(MatmulForm, MatmulShape)]) -> Result<()> {
    let odd: &[(usize, usize, usize)] = match run.level {
        Level::Quick => &[
            (1, 1, 1),
            (7, 5, 3),
            (63, 65, 129),
            (37, 44, 52),
            (65, 63, 7),
        ],
        Level::Full => &[
            (1, 1, 1),
            (7, 5, 3),
            (63, 65, 129),
            (65, 63, 7),
            (129, 17, 64),
            (2, 130, 1),
            (64, 64, 16),
            (128, 10, 200),
            (37, 44, 52),
            (130, 36, 20),
        ],
    };
    let mut cases: Vec<(MatmulForm, MatmulShape)> = Vec::new();
    for form in FORMS {
        cases.extend(odd.iter().map(|&(m, n, k)| (form, MatmulShape { m, n, k })));
    }
    cases.extend_from_slice(model_shapes);
    let versions = run.matmul_versions();
    for (form, s) in cases {
        let a = run.random(s.m * s.k, 1.0);
        let b = run.random(s.k * s.n, 1.0);
        let want = cpu_matmul(form, &a, &b, s);
        for &version in &versions {
            let got = run_matmul(run, version, form, s, &a, &b, None, Activation::Identity)?;
            let kernel = format!("matmul {version:?} {form:?}");
            let case = format!("{}x{}x{}", s.m, s.n, s.k);
            run.check(&kernel, &case, got, &want, 1e-5 * (s.k as f32 + 1.0), 1e-5);
        }
    }
    let epilogue_shapes: &[(usize, usize, usize)] = match run.level {
        Level::Quick => &[(65, 129, 63)],
        Level::Full => &[(7, 9, 13), (65, 129, 63), (33, 20, 64)],
    };
    for act in ACTIVATIONS {
        for &(m, n, k) in epilogue_shapes {
            let s = MatmulShape { m, n, k };
            let a = run.random(m * k, 1.0);
            let b = run.random(n * k, 1.0);
            let bias = run.random(n, 1.0);
            let mut want = cpu_matmul(MatmulForm::NT, &a, &b, s);
            bias_activation(&mut want, &bias, act, n);
            for &version in &versions {
                let nt = MatmulForm::NT;
                let got = run_matmul(run, version, nt, s, &a, &b, Some(&bias), act)?;
                let kernel = format!("matmul {version:?} NT + bias, activation");
                let case = format!("{m}x{n}x{k} {act:?}");
                run.check(&kernel, &case, got, &want, 1e-5 * (k as f32 + 1.0), 1e-5);
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_matmul(
    run: &Runner,
    version: MatmulVersion,
    form: MatmulForm,
    s: MatmulShape,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
) -> Result<Vec<f32>> {
    let ctx = run.ctx;
    let a_buf = ctx.storage_init("a", a);
    let b_buf = ctx.storage_init("b", b);
    let bias_buf = bias.map(|v| ctx.storage_init("bias", v));
    let c_buf = ctx.storage_zeroed("c", s.m * s.n);
    let d = run.kernels.matmul_version(
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
    ctx.read(&c_buf, 0, s.m * s.n)
}

/// The tests' odd convolutions: channels 1, 3, 5 (and 17, past the
/// weight gradient's block of 16); odd sizes; strides 1 and 2; paddings 0
/// to 2; kernels 1, 3, 5.
fn odd_convs(level: Level) -> Vec<(usize, Conv2d)> {
    let mut cases = Vec::new();
    let acts = [Activation::Identity, Activation::Relu, Activation::Tanh];
    let channels: &[(usize, usize)] = match level {
        Level::Quick => &[(3, 5), (2, 17)],
        Level::Full => &[(1, 3), (3, 5), (5, 1), (2, 17)],
    };
    let sizes: &[(usize, usize)] = match level {
        Level::Quick => &[(9, 6)],
        Level::Full => &[(7, 7), (9, 6)],
    };
    let mut i = 0;
    for &(in_c, out_c) in channels {
        for &(h, w) in sizes {
            for &(kernel, stride, padding) in
                &[(3, 1, 1), (3, 2, 0), (5, 2, 2), (1, 1, 0), (3, 1, 2)]
            {
                if let Ok(conv) =
                    Conv2d::new(Shape { c: in_c, h, w }, out_c, kernel, stride, padding)
                {
                    let conv = Conv2d {
                        activation: acts[i % 3],
                        ..conv
                    };
                    cases.push(([1, 2, 3][i % 3], conv));
                }
                i += 1;
            }
        }
    }
    cases
}

/// The conv layers of `graph`, at batch `rows`.
pub fn graph_convs(graph: &Graph, rows: usize) -> Vec<(usize, Conv2d)> {
    graph
        .nodes
        .iter()
        .filter_map(|n| n.op.as_any().downcast_ref::<Conv2d>())
        .map(|c| (rows, *c))
        .collect()
}

/// Every conv pass in every version this adapter has, on the odd shapes
/// and on `model_convs`. Tolerance 1e-5·(terms + 1), terms the products
/// summed into one output.
pub fn conv(run: &mut Runner, model_convs: &[(usize, Conv2d)]) -> Result<()> {
    let mut cases = odd_convs(run.level);
    cases.extend_from_slice(model_convs);
    for (batch, c) in cases {
        let ctx = run.ctx;
        let kernels = run.kernels;
        let case = format!(
            "batch {batch}, {}→{}, k{} s{} p{}",
            c.input, c.output, c.kernel, c.stride, c.padding
        );
        let k2 = c.kernel * c.kernel;
        let x = run.random(batch * c.input.len(), 1.0);
        let w = run.random(c.output.c * c.input.c * k2, 1.0);
        let b = run.random(c.output.c, 1.0);
        let dy = run.random(batch * c.output.len(), 1.0);
        let [xb, wb, bb, dyb] = [&x, &w, &b, &dy].map(|v| ctx.storage_init("conv input", v));
        let (x_, w_, b_, dy_) = (
            Binding::whole(&xb),
            Binding::whole(&wb),
            Binding::whole(&bb),
            Binding::whole(&dyb),
        );
        let tol = |terms: usize| 1e-5 * (terms as f32 + 1.0);

        let mut y = vec![0.0; batch * c.output.len()];
        conv_ref::conv2d_forward(&x, &w, &b, &mut y, batch, &c);
        let mut dx = vec![0.0; batch * c.input.len()];
        conv_ref::conv2d_backward_input(&dy, &w, &mut dx, batch, &c);
        let mut dw = vec![0.0; w.len()];
        conv_ref::conv2d_backward_weight(&dy, &x, &mut dw, batch, &c);
        let per_weight = batch * c.output.h * c.output.w;

        for pass in [
            ConvPass::Forward,
            ConvPass::BackwardInput,
            ConvPass::BackwardWeight,
        ] {
            let (want, terms, name) = match pass {
                ConvPass::Forward => (&y, c.input.c * k2, "forward"),
                ConvPass::BackwardInput => (&dx, c.output.c * k2, "backward to the input"),
                ConvPass::BackwardWeight => (&dw, per_weight, "backward to the weights"),
            };
            for version in run.conv_versions(pass) {
                let out = ctx.storage_zeroed("conv output", want.len());
                let o = Binding::whole(&out);
                let d =
                    match pass {
                        ConvPass::Forward => {
                            kernels.conv2d_forward_version(ctx, version, &c, batch, x_, w_, b_, o)
                        }
                        ConvPass::BackwardInput => kernels
                            .conv2d_backward_input_version(ctx, version, &c, batch, dy_, w_, o),
                        ConvPass::BackwardWeight => kernels
                            .conv2d_backward_weight_version(ctx, version, &c, batch, dy_, x_, o),
                    };
                ctx.run(&[d]);
                let got = ctx.read::<f32>(&out, 0, want.len())?;
                let kernel = format!("conv2d {version:?} {name}");
                run.check(&kernel, &case, got, want, tol(terms), 1e-5);
            }
        }
    }
    Ok(())
}

/// Softmax cross-entropy and its gradient, with and without label
/// smoothing, over rows past the 256-wide workgroup and a short batch;
/// twice, so the metrics accumulate.
pub fn softmax_xent(run: &mut Runner) -> Result<()> {
    let (ctx, kernels) = (run.ctx, run.kernels);
    for &(rows, real, cols) in &[(7, 7, 3), (300, 300, 10), (128, 100, 10), (65, 1, 5)] {
        for smoothing in [0.0, 0.1] {
            let logits = run.random(rows * cols, 8.0);
            let labels: Vec<u32> = (0..rows)
                .map(|_| run.rng.random_range(0..cols as u32))
                .collect();
            let mut want_grad = vec![0.0; rows * cols];
            let (want_loss, want_correct) =
                softmax_xent_smoothed(&logits, &labels, &mut want_grad, real, cols, smoothing);
            let steps = crate::gpu::StepSlots::new(ctx, "steps", 1);
            steps.write_epoch(ctx, real, rows, 0, &[]);
            let logits_buf = ctx.storage_init("logits", &logits);
            let labels_buf = ctx.storage_init("labels", &labels);
            let grad_buf = ctx.storage_init("grad", &vec![f32::NAN; rows * cols]);
            let metrics = ctx.storage_zeroed("metrics", 4);
            let d = kernels.softmax_xent_smoothed(
                ctx,
                &steps.buffer,
                rows,
                cols,
                Binding::whole(&logits_buf),
                Binding::whole(&labels_buf),
                Binding::whole(&grad_buf),
                Binding::whole(&metrics),
                smoothing,
            );
            ctx.run(&[d.clone(), d]);
            let case = format!("{real} of {rows} rows × {cols}, smoothing {smoothing}");
            let grad = ctx.read::<f32>(&grad_buf, 0, rows * cols)?;
            run.check("softmax_xent gradient", &case, grad, &want_grad, 1e-6, 1e-4);
            let m: Vec<u32> = ctx.read(&metrics, 0, 4)?;
            let loss = vec![f32::from_bits(m[0])];
            run.check(
                "softmax_xent loss",
                &case,
                loss,
                &[2.0 * want_loss],
                1e-4,
                1e-5,
            );
            let counts = [2 * want_correct, 0, 2 * real as u32];
            run.check_exact("softmax_xent counts", &case, &m[1..4], &counts);
        }
    }
    Ok(())
}

/// SGD (plain and Nesterov), Adam and AdamW over three steps, parameters
/// and state against the reference. SGD is a few multiply-adds: 1e-6;
/// Adam's bias corrections lose digits to cancellation: 1e-5.
pub fn optimizers(run: &mut Runner) -> Result<()> {
    let lens: &[usize] = match run.level {
        Level::Quick => &[4, 70_004],
        Level::Full => &[4, 260, 70_004],
    };
    let mut optimizers = Vec::new();
    for nesterov in [false, true] {
        optimizers.push(Optimizer::Sgd {
            momentum: 0.9,
            weight_decay: 1e-3,
            nesterov,
        });
    }
    for decoupled in [false, true] {
        optimizers.push(Optimizer::Adam(AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            decoupled,
        }));
    }
    for optimizer in optimizers {
        for &len in lens {
            check_optimizer(run, optimizer, len)?;
        }
    }
    Ok(())
}

fn check_optimizer(run: &mut Runner, optimizer: Optimizer, len: usize) -> Result<()> {
    let (ctx, kernels) = (run.ctx, run.kernels);
    let mut params = run.random(len, 1.0);
    let grads = run.random(len, 1.0);
    let mut state: Vec<Vec<f32>> = match optimizer {
        Optimizer::Sgd { .. } => vec![run.random(len, 1.0)],
        Optimizer::Adam(_) => vec![vec![0.0; len]; 2],
    };
    let lrs = [0.05f32, 0.02, 0.01];
    let steps = crate::gpu::StepSlots::new(ctx, "steps", lrs.len());
    steps.write_epoch(ctx, lrs.len(), 1, 0, &lrs);
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
    ctx.run_steps(&d, lrs.len());
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
            (Optimizer::Adam(cfg), [m, v]) => {
                optim::adam(&mut params, &grads, m, v, lr, step as u32 + 1, cfg)
            }
            _ => unreachable!("SGD keeps one state vector, Adam two"),
        }
    }
    let atol = if optimizer.state_vectors() == 1 {
        1e-6
    } else {
        1e-5
    };
    let kernel = match optimizer {
        Optimizer::Sgd {
            nesterov: false, ..
        } => "optim sgd",
        Optimizer::Sgd { nesterov: true, .. } => "optim nesterov",
        Optimizer::Adam(AdamConfig {
            decoupled: false, ..
        }) => "optim adam",
        Optimizer::Adam(_) => "optim adamw",
    };
    let case = format!("{len} parameters, 3 steps");
    let got = ctx.read::<f32>(&p_buf, 0, len)?;
    run.check(
        kernel,
        &format!("{case}: parameters"),
        got,
        &params,
        atol,
        1e-5,
    );
    for (buf, want) in s_bufs.iter().zip(&state) {
        let got = ctx.read::<f32>(buf, 0, len)?;
        run.check(kernel, &format!("{case}: state"), got, want, atol, 1e-5);
    }
    Ok(())
}

/// The batch gather: u8 pixels → normalised f32 and labels, for images
/// whose byte offsets straddle the packed u32 words (7 pixels) and align
/// (8), a digit, and a colour image with per-channel normalisation, random
/// crops and flips; over three steps with a short last batch.
pub fn gather_batches(run: &mut Runner) -> Result<()> {
    let (ctx, kernels) = (run.ctx, run.kernels);
    let plain = |c: usize| InputScale {
        mean: vec![0.0; c],
        inv_std: vec![1.0; c],
    };
    let cases = [
        (Shape { c: 1, h: 1, w: 7 }, plain(1), Augment::default()),
        (Shape { c: 1, h: 1, w: 8 }, plain(1), Augment::default()),
        (Shape { c: 1, h: 28, w: 28 }, plain(1), Augment::default()),
        (
            Shape { c: 3, h: 5, w: 6 },
            InputScale {
                mean: vec![0.49, 0.48, 0.45],
                inv_std: vec![1.0 / 0.25, 1.0 / 0.24, 1.0 / 0.26],
            },
            Augment {
                crop: 2,
                flip: true,
            },
        ),
    ];
    let seed = 0x5e1f_7e57;
    for (shape, scale, augment) in &cases {
        let size = shape.c * shape.h * shape.w;
        let (n, rows) = (13usize, 5usize);
        let images: Vec<u8> = (0..n * size).map(|_| run.rng.random()).collect();
        let labels: Vec<u8> = (0..n).map(|_| run.rng.random_range(0..10)).collect();
        let order: Vec<u32> = vec![12, 0, 5, 7, 3, 11, 1, 2, 4, 6, 8, 9, 10];
        let mut packed = images.clone();
        packed.resize(packed.len().next_multiple_of(4), 0);
        let packed: Vec<u32> = bytemuck::cast_slice::<u8, u32>(&packed).to_vec();
        let labels32: Vec<u32> = labels.iter().map(|&l| u32::from(l)).collect();
        let steps = crate::gpu::StepSlots::new(ctx, "steps", 3);
        steps.write_epoch(ctx, n, rows, 0, &[]);
        let images_buf = ctx.storage_init("images", &packed);
        let labels_buf = ctx.storage_init("labels", &labels32);
        let order_buf = ctx.storage_init("order", &order);
        let x_buf = ctx.storage_zeroed("x", rows * size);
        let y_buf = ctx.storage_zeroed("y", rows);
        let input = GatherInput {
            shape: *shape,
            scale,
            augment: *augment,
            seed,
        };
        let d = kernels.gather(
            ctx,
            &steps.buffer,
            &input,
            rows,
            0..n,
            Binding::whole(&images_buf),
            Binding::whole(&labels_buf),
            Binding::whole(&order_buf),
            Binding::whole(&x_buf),
            Binding::whole(&y_buf),
        );
        for step in 0..3 {
            ctx.run_step(&d, step);
            let indices = &order[step * rows..((step + 1) * rows).min(n)];
            let mut want_x = vec![0.0; rows * size];
            let mut want_y = vec![0u32; rows];
            let settings = GatherSettings {
                shape: *shape,
                scale,
                augment: *augment,
                seed,
                step: step as u32,
            };
            gather(
                &images,
                &labels,
                &settings,
                indices,
                &mut want_x,
                &mut want_y,
            );
            let case = format!("{shape} pixels, step {step}");
            let got_x = ctx.read::<f32>(&x_buf, 0, rows * size)?;
            run.check("gather pixels", &case, got_x, &want_x, 0.0, 1e-6);
            let got_y = ctx.read::<u32>(&y_buf, 0, rows)?;
            run.check_exact("gather labels", &case, &got_y, &want_y);
        }
    }
    Ok(())
}
