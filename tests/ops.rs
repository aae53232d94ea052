//! Every layer op through the one trait the engine uses, in the spirit of
//! tinygrad's `helper_test_op`: `check_op` gives an op random inputs,
//! parameters and output gradient, and checks
//!   1. its CPU backward against central finite differences of its CPU
//!      forward (every input and parameter gradient), and
//!   2. its GPU forward and backward against the CPU ones, and the buffers
//!      the forward updates, where an adapter exists.
//!
//! A new op's test is then one call per shape; `check_op_at` runs the same
//! checks in a given mode, at a given training step and run seed (what
//! dropout's masks depend on; the GPU side reads the step from a real step
//! slot, as training binds it).
//! Dropout's masks are also compared bit for bit across devices, and their
//! rates measured over 2²⁰ values.
//!
//! Tolerances. Finite differences: f32 with h = 1e-2 on values of order 1,
//! as in gradients.rs (2e-3 + 2e-2·|g|); coordinates whose ±h probes change
//! a ReLU's sign or a pool's winner straddle a kink and are skipped, and
//! at most 40 coordinates per tensor are probed to keep the test fast.
//! GPU against CPU: sums over up to `fan_in` products of values in [-1, 1]
//! rounded differently, 1e-5·(fan_in + 1) absolute and 1e-4 relative.

mod common;

use common::{assert_close, gpu, random_vec, rng};
use gpunet::gpu::{Binding, GpuContext, Kernels, StepSlots};
use gpunet::graph::Shape;
use gpunet::ops::activation::ActivationOp;
use gpunet::ops::add::Add;
use gpunet::ops::bn::BatchNorm;
use gpunet::ops::conv2d::Conv2d;
use gpunet::ops::dense::Dense;
use gpunet::ops::dropout::reference::dropout_forward;
use gpunet::ops::dropout::Dropout;
use gpunet::ops::gap::GlobalAvgPool;
use gpunet::ops::pool::MaxPool;
use gpunet::ops::{
    Activation, CpuBackward, CpuForward, Dtype, GpuBackward, GpuForward, Init, Mode, Op, Saved,
};
use rand_chacha::ChaCha8Rng;

const H: f32 = 1e-2;
const PROBES: usize = 40;

/// When an op runs: its mode, the training step's number in the run and
/// the run's seed.
#[derive(Debug, Clone, Copy)]
struct At {
    mode: Mode,
    step: u64,
    seed: u64,
}

/// The first training step of a run with seed 0 (what `check_op` uses).
const TRAIN_STEP_0: At = At {
    mode: Mode::Train,
    step: 0,
    seed: 0,
};

/// Evaluation (no step: dropout is the identity, bn uses its running
/// statistics).
const EVAL: At = At {
    mode: Mode::Eval,
    step: 0,
    seed: 0,
};

/// An op's tensors for one check, all on the CPU.
struct Case {
    at: At,
    rows: usize,
    inputs: Vec<Vec<f32>>,
    params: Vec<Vec<f32>>,
    /// The non-trainable buffers before the forward pass.
    buffers: Vec<Vec<f32>>,
    grad_output: Vec<f32>,
}

/// The starting values of an op's non-trainable buffers (running statistics).
fn initial_buffers(op: &dyn Op) -> Vec<Vec<f32>> {
    op.buffers()
        .iter()
        .map(|d| {
            let len = d.shape.iter().product();
            match d.init {
                Init::Zeros => vec![0.0; len],
                Init::Ones => vec![1.0; len],
                Init::Uniform(_) => panic!("{}: buffers start as constants", d.name),
            }
        })
        .collect()
}

/// The CPU forward at `at`, updating `buffers`: output and saved tensors.
fn forward_in(
    op: &dyn Op,
    at: At,
    rows: usize,
    inputs: &[Vec<f32>],
    params: &[Vec<f32>],
    buffers: &mut [Vec<f32>],
) -> (Vec<f32>, Vec<Saved>) {
    let mut output = vec![0.0; rows * op.output().len()];
    let mut saved: Vec<Saved> = op.saved().iter().map(|d| Saved::zeros(d, rows)).collect();
    op.forward_cpu(CpuForward {
        mode: at.mode,
        rows,
        step: at.step,
        seed: at.seed,
        inputs: inputs.iter().map(Vec::as_slice).collect(),
        params: params.iter().map(Vec::as_slice).collect(),
        buffers: buffers.iter_mut().map(Vec::as_mut_slice).collect(),
        output: &mut output,
        saved: &mut saved,
    });
    (output, saved)
}

/// The CPU forward at `at` from fresh buffers: output and saved tensors.
fn forward(
    op: &dyn Op,
    at: At,
    rows: usize,
    inputs: &[Vec<f32>],
    params: &[Vec<f32>],
) -> (Vec<f32>, Vec<Saved>) {
    let mut buffers = initial_buffers(op);
    forward_in(op, at, rows, inputs, params, &mut buffers)
}

/// What makes the loss non-smooth near a point: saved indices (a pool's
/// winners) and the sign of every ReLU output.
fn kinks(op: &dyn Op, output: &[f32], saved: &[Saved]) -> Vec<u32> {
    let mut pattern: Vec<u32> = saved
        .iter()
        .flat_map(|s| match s {
            Saved::U32(v) => v.clone(),
            Saved::F32(_) => Vec::new(),
        })
        .collect();
    if op.activation() == Activation::Relu || op.label() == "relu" {
        pattern.extend(output.iter().map(|&y| u32::from(y > 0.0)));
    }
    pattern
}

/// The CPU backward after a forward at the case's `at`: (parameter
/// gradients, input gradients).
fn backward(op: &dyn Op, case: &Case) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut buffers = case.buffers.clone();
    let (output, saved) = forward_in(
        op,
        case.at,
        case.rows,
        &case.inputs,
        &case.params,
        &mut buffers,
    );
    let mut grad_output = case.grad_output.clone();
    let mut grad_params: Vec<Vec<f32>> = case
        .params
        .iter()
        .map(|p| vec![f32::NAN; p.len()])
        .collect();
    let mut grad_inputs: Vec<Vec<f32>> = case
        .inputs
        .iter()
        .map(|x| vec![f32::NAN; x.len()])
        .collect();
    op.backward_cpu(CpuBackward {
        rows: case.rows,
        inputs: case.inputs.iter().map(Vec::as_slice).collect(),
        output: &output,
        saved: &saved,
        params: case.params.iter().map(Vec::as_slice).collect(),
        grad_output: &mut grad_output,
        skip_activation: false,
        grad_params: grad_params.iter_mut().map(Vec::as_mut_slice).collect(),
        grad_inputs: grad_inputs
            .iter_mut()
            .map(|g| Some(g.as_mut_slice()))
            .collect(),
    });
    (grad_params, grad_inputs)
}

/// The loss Σ dy ⊙ op(...) with one tensor replaced, and the kinks there.
type LossAt<'a> = dyn Fn(&[f32]) -> (f32, Vec<u32>) + 'a;

/// Checks `analytic` (the gradient of Σ dy ⊙ op(...) with respect to one
/// tensor) against central differences, through `loss_at(tensor)`.
fn check_against_differences(what: &str, at: &[f32], analytic: &[f32], loss_at: &LossAt) -> usize {
    let step = at.len().div_ceil(PROBES).max(1);
    let mut probe = at.to_vec();
    let mut checked = 0;
    for i in (0..at.len()).step_by(step) {
        probe[i] = at[i] + H;
        let (up, up_kinks) = loss_at(&probe);
        probe[i] = at[i] - H;
        let (down, down_kinks) = loss_at(&probe);
        probe[i] = at[i];
        if up_kinks != down_kinks {
            continue;
        }
        let numeric = (up - down) / (2.0 * H);
        let tol = 2e-3 + 2e-2 * numeric.abs();
        assert!(
            (numeric - analytic[i]).abs() <= tol,
            "{what}[{i}]: analytic {} vs numeric {numeric}",
            analytic[i]
        );
        checked += 1;
    }
    checked
}

/// The reference against finite differences, for every input and parameter.
fn check_reference(op: &dyn Op, case: &Case) {
    let (grad_params, grad_inputs) = backward(op, case);
    let loss = |inputs: &[Vec<f32>], params: &[Vec<f32>]| {
        let (y, saved) = forward(op, case.at, case.rows, inputs, params);
        let l: f32 = y.iter().zip(&case.grad_output).map(|(a, b)| a * b).sum();
        (l, kinks(op, &y, &saved))
    };
    let mut checked = 0;
    let mut probed = 0;
    for (k, grad) in grad_inputs.iter().enumerate() {
        let at = |x: &[f32]| {
            let mut inputs = case.inputs.clone();
            inputs[k] = x.to_vec();
            loss(&inputs, &case.params)
        };
        let what = format!("{}: d/d input {k}", op.label());
        checked += check_against_differences(&what, &case.inputs[k], grad, &at);
        probed += case.inputs[k].len().min(PROBES);
    }
    for (k, (grad, decl)) in grad_params.iter().zip(op.params()).enumerate() {
        let at = |p: &[f32]| {
            let mut params = case.params.clone();
            params[k] = p.to_vec();
            loss(&case.inputs, &params)
        };
        let what = format!("{}: d/d {}", op.label(), decl.name);
        checked += check_against_differences(&what, &case.params[k], grad, &at);
        probed += case.params[k].len().min(PROBES);
    }
    assert!(
        checked * 2 >= probed,
        "{}: only {checked} of {probed} probes were away from a kink",
        op.label()
    );
}

/// The GPU forward at the case's `at` and backward against the CPU ones,
/// and the buffers the forward updates. With `padding` > 0 (training only)
/// the GPU batch has that many rows past the case's (the step's batch_len
/// stays the case's rows), filled with values far from the real ones: an op
/// with batch statistics must leave them out, and pass them no gradient.
fn check_gpu(
    ctx: &GpuContext,
    kernels: &Kernels,
    op: &dyn Op,
    case: &Case,
    fan_in: usize,
    padding: usize,
) {
    let mode = case.at.mode;
    assert!(
        padding == 0 || mode == Mode::Train,
        "padding rows are a training batch's"
    );
    let (rows, batch) = (case.rows, case.rows + padding);
    let mut want_buffers = case.buffers.clone();
    let (want_y, _) = forward_in(
        op,
        case.at,
        rows,
        &case.inputs,
        &case.params,
        &mut want_buffers,
    );
    let (want_grad_params, want_grad_inputs) = backward(op, case);
    let padded = |v: &[f32]| {
        let per_row = v.len() / rows;
        let mut v = v.to_vec();
        v.extend((0..padding * per_row).map(|i| 5.0 + (i % 7) as f32));
        v
    };

    let inputs: Vec<wgpu::Buffer> = case
        .inputs
        .iter()
        .map(|x| ctx.storage_init("x", &padded(x)))
        .collect();
    let params: Vec<wgpu::Buffer> = case
        .params
        .iter()
        .map(|p| ctx.storage_init("p", p))
        .collect();
    let buffers: Vec<wgpu::Buffer> = case
        .buffers
        .iter()
        .map(|b| ctx.storage_init("buffer", b))
        .collect();
    let output = ctx.storage_zeroed("y", batch * op.output().len());
    let saved: Vec<wgpu::Buffer> = op
        .saved()
        .iter()
        .map(|d| {
            assert!(
                matches!(d.dtype, Dtype::F32 | Dtype::U32),
                "4-byte elements"
            );
            ctx.storage_zeroed(d.name, d.elements(batch))
        })
        .collect();
    let grad_output = ctx.storage_init("dy", &padded(&case.grad_output));
    let grad_params: Vec<wgpu::Buffer> = case
        .params
        .iter()
        .map(|p| ctx.storage_zeroed("dp", p.len()))
        .collect();
    let grad_inputs: Vec<wgpu::Buffer> = case
        .inputs
        .iter()
        .map(|x| ctx.storage_init("dx", &vec![f32::NAN; batch * x.len() / rows]))
        .collect();
    // One training step, numbered as the case's, whose batch holds `rows`
    // real examples.
    let steps = StepSlots::new(ctx, "steps", 1);
    steps.write_epoch(ctx, rows, batch, case.at.step as usize, &[]);
    fn whole(bufs: &[wgpu::Buffer]) -> Vec<Binding<'_>> {
        bufs.iter().map(Binding::whole).collect()
    }

    let mut list = op.forward_gpu(GpuForward {
        ctx,
        kernels,
        mode,
        batch,
        steps: (mode == Mode::Train).then_some(&steps.buffer),
        seed: case.at.seed,
        inputs: whole(&inputs),
        params: whole(&params),
        buffers: whole(&buffers),
        output: Binding::whole(&output),
        saved: whole(&saved),
    });
    list.extend(
        op.backward_gpu(GpuBackward {
            ctx,
            kernels,
            batch,
            inputs: whole(&inputs),
            output: Binding::whole(&output),
            saved: whole(&saved),
            params: whole(&params),
            grad_output: Binding::whole(&grad_output),
            skip_activation: false,
            grad_params: whole(&grad_params),
            grad_inputs: grad_inputs
                .iter()
                .map(|b| Some(Binding::whole(b)))
                .collect(),
        }),
    );
    ctx.run(&list);

    let tol = 1e-5 * (fan_in as f32 + 1.0);
    let label = op.label();
    let got_y: Vec<f32> = ctx.read(&output, 0, want_y.len()).unwrap();
    assert_close(&format!("{label}: GPU forward"), &got_y, &want_y, tol, 1e-4);
    for ((buf, want), decl) in buffers.iter().zip(&want_buffers).zip(op.buffers()) {
        let got: Vec<f32> = ctx.read(buf, 0, want.len()).unwrap();
        let what = format!("{label}: GPU {} after the forward", decl.name);
        assert_close(&what, &got, want, tol, 1e-4);
    }
    for (k, (buf, want)) in grad_params.iter().zip(&want_grad_params).enumerate() {
        let got: Vec<f32> = ctx.read(buf, 0, want.len()).unwrap();
        let what = format!("{label}: GPU d/d {}", op.params()[k].name);
        assert_close(&what, &got, want, tol * rows as f32, 1e-4);
    }
    for (k, (buf, want)) in grad_inputs.iter().zip(&want_grad_inputs).enumerate() {
        let got: Vec<f32> = ctx.read(buf, 0, batch * want.len() / rows).unwrap();
        let (real, pad) = got.split_at(want.len());
        let what = format!("{label}: GPU d/d input {k}");
        assert_close(&what, real, want, tol, 1e-4);
        assert!(
            pad.iter().all(|&g| g == 0.0),
            "{what}: the padding rows get {pad:?}, not zeros"
        );
    }
}

fn case(rng: &mut ChaCha8Rng, op: &dyn Op, input_shapes: &[Shape], rows: usize) -> Case {
    Case {
        at: TRAIN_STEP_0,
        rows,
        inputs: input_shapes
            .iter()
            .map(|s| random_vec(rng, rows * s.len(), 1.0))
            .collect(),
        params: op
            .params()
            .iter()
            .map(|d| random_vec(rng, d.shape.iter().product(), 0.5))
            .collect(),
        buffers: initial_buffers(op),
        grad_output: random_vec(rng, rows * op.output().len(), 1.0),
    }
}

/// Checks `op` on `rows` random examples of `input_shapes`: the reference
/// against finite differences, then the GPU against the reference.
/// `fan_in` bounds the products summed into one output (for the GPU
/// tolerance).
fn check_op(op: &dyn Op, input_shapes: &[Shape], rows: usize, fan_in: usize) {
    check_op_at(op, input_shapes, rows, fan_in, TRAIN_STEP_0);
}

/// `check_op` in `at`'s mode, at its step and seed.
fn check_op_at(op: &dyn Op, input_shapes: &[Shape], rows: usize, fan_in: usize, at: At) {
    let mut rng = rng(input_shapes.len() as u64 * 1000 + rows as u64);
    let case = Case {
        at,
        ..case(&mut rng, op, input_shapes, rows)
    };
    check_reference(op, &case);
    if let Some(ctx) = gpu() {
        let kernels = Kernels::new(&ctx);
        check_gpu(&ctx, &kernels, op, &case, fan_in, 0);
    }
}

fn flat(n: usize) -> Shape {
    Shape { c: n, h: 1, w: 1 }
}

const ACTIVATIONS: [Activation; 4] = [
    Activation::Identity,
    Activation::Relu,
    Activation::Tanh,
    Activation::Sigmoid,
];

#[test]
fn dense() {
    for act in ACTIVATIONS {
        for (inputs, outputs, rows) in [(7, 5, 3), (65, 17, 2)] {
            let op = Dense {
                inputs,
                outputs,
                activation: act,
            };
            check_op(&op, &[flat(inputs)], rows, inputs);
        }
    }
}

#[test]
fn conv2d() {
    // (in_c, h, w, out_c, k, s, p, act): odd sizes, strides 1 and 2,
    // paddings 0 to 2, channel counts past the implicit GEMM's blocks of 4
    // and the weight gradient's block of 16.
    for (in_c, h, w, out_c, k, s, p, act) in [
        (1, 5, 5, 2, 3, 1, 1, Activation::Relu),
        (3, 7, 6, 5, 3, 2, 0, Activation::Tanh),
        (2, 6, 5, 17, 5, 2, 2, Activation::Sigmoid),
        (5, 4, 4, 3, 1, 1, 0, Activation::Identity),
    ] {
        let op = Conv2d {
            activation: act,
            ..Conv2d::new(Shape { c: in_c, h, w }, out_c, k, s, p).unwrap()
        };
        check_op(&op, &[op.input], 2, in_c * k * k);
    }
}

#[test]
fn maxpool() {
    for (c, h, w, size, stride) in [(2, 6, 6, 2, 2), (3, 7, 5, 3, 2), (1, 5, 5, 2, 1)] {
        let op = MaxPool::new(Shape { c, h, w }, size, stride).unwrap();
        check_op(&op, &[op.input], 2, 1);
    }
}

#[test]
fn standalone_activation() {
    for act in ACTIVATIONS {
        let shape = Shape { c: 3, h: 5, w: 7 };
        check_op(&ActivationOp { shape, act }, &[shape], 2, 1);
    }
}

#[test]
fn add() {
    let shape = Shape { c: 4, h: 3, w: 5 };
    check_op(&Add { shape }, &[shape, shape], 3, 2);
}

/// Batch norm in training mode, after a conv layer (BatchNorm2d) and after
/// a dense one (BatchNorm1d: C×1×1). The reductions run a 256-wide
/// workgroup per channel: m = rows·H·W values per channel below 256, past
/// it and past twice it; the eval kernel covers 64 channels per workgroup:
/// channel counts past it; odd spatial sizes.
#[test]
fn batch_norm() {
    for (shape, rows, act) in [
        (Shape { c: 3, h: 5, w: 7 }, 3, Activation::Identity), // m = 105
        (Shape { c: 5, h: 11, w: 13 }, 2, Activation::Relu),   // m = 286
        (Shape { c: 2, h: 13, w: 15 }, 3, Activation::Tanh),   // m = 585
        (flat(70), 9, Activation::Identity),
        (flat(300), 12, Activation::Sigmoid),
    ] {
        let op = BatchNorm {
            activation: act,
            ..BatchNorm::new(shape)
        };
        check_op(&op, &[shape], rows, rows * shape.h * shape.w);
    }
}

/// The GPU's last batch of an epoch may be short: its statistics, running
/// statistics and gradients cover the step's real rows only, and the
/// padding rows get no gradient.
#[test]
fn batch_norm_on_the_gpu_leaves_the_padding_rows_out() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    for (shape, rows, padding) in [(Shape { c: 4, h: 3, w: 5 }, 5, 3), (flat(33), 7, 57)] {
        let op = BatchNorm {
            activation: Activation::Relu,
            ..BatchNorm::new(shape)
        };
        let case = case(&mut rng(rows as u64), &op, &[shape], rows);
        let m = rows * shape.h * shape.w;
        check_gpu(&ctx, &kernels, &op, &case, m, padding);
    }
}

/// An evaluation case for `op` whose running statistics have been trained
/// away from their starting values.
fn trained_bn_case(op: &BatchNorm, rows: usize, seed: u64) -> Case {
    let mut rng = rng(seed);
    let mut case = case(&mut rng, op, &[op.shape], rows);
    case.at = EVAL;
    let c = op.shape.c;
    case.buffers = vec![
        random_vec(&mut rng, c, 2.0),
        random_vec(&mut rng, c, 1.0)
            .into_iter()
            .map(|v| 1.5 + v)
            .collect(),
        vec![7.0],
    ];
    case
}

/// Evaluation normalises with the running statistics:
/// y = γ·(x − running_mean)/√(running_var + eps) + β, here in f64; the
/// buffers are left as they were; the backward treats the statistics as
/// constants (dx = γ·dy/√(running_var + eps)), against finite differences
/// and on the GPU.
#[test]
fn batch_norm_eval_uses_the_running_statistics() {
    let shape = Shape { c: 3, h: 2, w: 3 };
    let op = BatchNorm::new(shape);
    let rows = 4;
    let case = trained_bn_case(&op, rows, 11);
    let mut buffers = case.buffers.clone();
    let (y, _) = forward_in(&op, EVAL, rows, &case.inputs, &case.params, &mut buffers);
    assert_eq!(buffers, case.buffers, "eval leaves the running statistics");
    let (x, gamma, beta) = (&case.inputs[0], &case.params[0], &case.params[1]);
    let (running_mean, running_var) = (&case.buffers[0], &case.buffers[1]);
    let spatial = shape.h * shape.w;
    let mut dx = vec![0.0; x.len()];
    for (i, (&got, &xi)) in y.iter().zip(x).enumerate() {
        let c = i / spatial % shape.c;
        let inv_std = 1.0 / (f64::from(running_var[c]) + 1e-5).sqrt();
        let scale = f64::from(gamma[c]) * inv_std;
        let want = scale * (f64::from(xi) - f64::from(running_mean[c])) + f64::from(beta[c]);
        assert!(
            (f64::from(got) - want).abs() < 1e-5,
            "y[{i}]: {got} vs {want}"
        );
        dx[i] = (scale * f64::from(case.grad_output[i])) as f32;
    }
    let (grad_params, grad_inputs) = backward(&op, &case);
    assert_close("eval dx", &grad_inputs[0], &dx, 1e-6, 1e-5);
    // The reference's eval backward against differences of its eval forward.
    let loss = |inputs: &[Vec<f32>], params: &[Vec<f32>]| {
        let mut buffers = case.buffers.clone();
        let (y, _) = forward_in(&op, EVAL, rows, inputs, params, &mut buffers);
        let l: f32 = y.iter().zip(&case.grad_output).map(|(a, b)| a * b).sum();
        (l, Vec::new())
    };
    let at_x = |x: &[f32]| loss(&[x.to_vec()], &case.params);
    check_against_differences("eval d/dx", x, &grad_inputs[0], &at_x);
    for k in 0..2 {
        let at = |p: &[f32]| {
            let mut params = case.params.clone();
            params[k] = p.to_vec();
            loss(&case.inputs, &params)
        };
        check_against_differences("eval d/dparam", &case.params[k], &grad_params[k], &at);
    }
    if let Some(ctx) = gpu() {
        let kernels = Kernels::new(&ctx);
        let relu = BatchNorm {
            activation: Activation::Relu,
            ..BatchNorm::new(Shape { c: 70, h: 3, w: 1 })
        };
        for (op, case) in [(op, case), (relu, trained_bn_case(&relu, 5, 12))] {
            let m = case.rows * op.shape.h * op.shape.w;
            check_gpu(&ctx, &kernels, &op, &case, m, 0);
        }
    }
}

/// After a training forward the running statistics are PyTorch's:
/// running_mean = 0.9·running_mean + 0.1·μ, running_var = 0.9·running_var
/// plus 0.1·(the unbiased variance), num_batches_tracked + 1. The figures
/// are what `torch.nn.BatchNorm1d(2)` (and `BatchNorm2d(1)`) hold after one
/// and two calls in training mode on these batches, worked out by hand.
#[test]
fn batch_norm_running_statistics_follow_pytorch() {
    let bn1d = BatchNorm::new(flat(2));
    // Channel 0: 1, 2, 3, 4 → μ 2.5, σ² 1.25 (biased), 5/3 (unbiased).
    // Channel 1: −2, 0, 2, 4 → μ 1, σ² 5, 20/3.
    let x = vec![1.0, -2.0, 2.0, 0.0, 3.0, 2.0, 4.0, 4.0];
    let bn2d = BatchNorm::new(Shape { c: 1, h: 1, w: 3 });
    // 2 rows × 3 positions: μ 3.5, σ² 35/12, unbiased 3.5.
    let x2d = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    for (op, x, rows, after_one, after_two) in [
        (
            bn1d,
            x,
            4,
            [vec![0.25, 0.1], vec![0.9 + 1.0 / 6.0, 0.9 + 2.0 / 3.0]],
            [
                vec![0.475, 0.19],
                vec![
                    0.9 * (0.9 + 1.0 / 6.0) + 1.0 / 6.0,
                    0.9 * (0.9 + 2.0 / 3.0) + 2.0 / 3.0,
                ],
            ],
        ),
        (
            bn2d,
            x2d,
            2,
            [vec![0.35], vec![1.25]],
            [vec![0.665], vec![0.9 * 1.25 + 0.35]],
        ),
    ] {
        let params = vec![vec![1.0; op.shape.c], vec![0.0; op.shape.c]];
        let inputs = vec![x.clone()];
        let mut buffers = initial_buffers(&op);
        let (y, _) = forward_in(&op, TRAIN_STEP_0, rows, &inputs, &params, &mut buffers);
        assert_close("running_mean, 1", &buffers[0], &after_one[0], 1e-6, 1e-6);
        assert_close("running_var, 1", &buffers[1], &after_one[1], 1e-6, 1e-6);
        assert_eq!(buffers[2], [1.0], "num_batches_tracked, 1");
        if op.shape.c == 2 {
            let want = [
                -1.5 / (1.25f32 + 1e-5).sqrt(),
                -3.0 / (5.0f32 + 1e-5).sqrt(),
            ];
            assert_close("y, first row", &y[..2], &want, 1e-6, 1e-6);
        }
        forward_in(&op, TRAIN_STEP_0, rows, &inputs, &params, &mut buffers);
        assert_close("running_mean, 2", &buffers[0], &after_two[0], 1e-6, 1e-6);
        assert_close("running_var, 2", &buffers[1], &after_two[1], 1e-6, 1e-6);
        assert_eq!(buffers[2], [2.0], "num_batches_tracked, 2");
        // The GPU's forward updates them alike.
        if let Some(ctx) = gpu() {
            let case = Case {
                at: TRAIN_STEP_0,
                rows,
                inputs,
                params,
                buffers: initial_buffers(&op),
                grad_output: vec![0.5; x.len()],
            };
            check_gpu(&ctx, &Kernels::new(&ctx), &op, &case, x.len(), 0);
        }
    }
}

#[test]
fn a_wrong_gradient_is_caught() {
    // The helper itself must fail on a wrong backward: a dense layer whose
    // reference gradient is scaled by 2 here.
    let op = Dense {
        inputs: 4,
        outputs: 3,
        activation: Activation::Tanh,
    };
    let mut rng = rng(5);
    let case = case(&mut rng, &op, &[flat(4)], 2);
    let (mut grad_params, _) = backward(&op, &case);
    for g in &mut grad_params[0] {
        *g *= 2.0;
    }
    let loss = |w: &[f32]| {
        let params = vec![w.to_vec(), case.params[1].clone()];
        let (y, saved) = forward(&op, TRAIN_STEP_0, 2, &case.inputs, &params);
        let l: f32 = y.iter().zip(&case.grad_output).map(|(a, b)| a * b).sum();
        (l, kinks(&op, &y, &saved))
    };
    let caught = std::panic::catch_unwind(|| {
        check_against_differences("doubled dW", &case.params[0], &grad_params[0], &loss)
    });
    assert!(caught.is_err(), "a doubled gradient must fail the check");
}

#[test]
fn gap() {
    for (c, h, w, rows) in [(3, 5, 7, 2), (4, 1, 1, 3), (17, 8, 8, 2)] {
        let op = GlobalAvgPool {
            input: Shape { c, h, w },
        };
        check_op(&op, &[op.input], rows, h * w);
    }
}

fn dropout_op(shape: Shape, p: f32, stream: u32) -> Dropout {
    Dropout { shape, p, stream }
}

/// Training mode at a late step and a seed with its high bits set: the
/// reference against finite differences with the step's mask fixed, and the
/// GPU against the reference. Evaluation mode: the identity.
#[test]
fn dropout() {
    for (shape, p, rows) in [
        (Shape { c: 3, h: 5, w: 7 }, 0.5, 2),
        (flat(65), 0.2, 3),
        (flat(9), 0.0, 1),
    ] {
        let op = dropout_op(shape, p, 3);
        for mode in [Mode::Train, Mode::Eval] {
            let at = At {
                mode,
                step: 1_000_003,
                seed: 0xfeed_beef_0000_0007,
            };
            check_op_at(&op, &[shape], rows, 1, at);
        }
    }
}

/// The GPU's forward of `op` at `at` on one input: its output and its saved
/// tensors, as raw 32-bit words.
fn gpu_forward_words(
    ctx: &GpuContext,
    kernels: &Kernels,
    op: &dyn Op,
    at: At,
    rows: usize,
    x: &[f32],
) -> (Vec<u32>, Vec<Vec<u32>>) {
    let input = ctx.storage_init("x", x);
    let output = ctx.storage_zeroed("y", rows * op.output().len());
    let saved: Vec<wgpu::Buffer> = op
        .saved()
        .iter()
        .map(|d| ctx.storage_zeroed(d.name, d.elements(rows)))
        .collect();
    let slots = StepSlots::new(ctx, "steps", 1);
    slots.write_epoch(ctx, rows, rows, at.step as usize, &[]);
    let list = op.forward_gpu(GpuForward {
        ctx,
        kernels,
        mode: at.mode,
        batch: rows,
        steps: (at.mode == Mode::Train).then_some(&slots.buffer),
        seed: at.seed,
        inputs: vec![Binding::whole(&input)],
        params: Vec::new(),
        buffers: Vec::new(),
        output: Binding::whole(&output),
        saved: saved.iter().map(Binding::whole).collect(),
    });
    ctx.run(&list);
    let y = ctx.read(&output, 0, rows * op.output().len()).unwrap();
    let saved = saved
        .iter()
        .zip(op.saved())
        .map(|(b, d)| ctx.read(b, 0, d.elements(rows)).unwrap())
        .collect();
    (y, saved)
}

fn words(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The GPU draws the CPU's mask bit for bit (the same Philox on both), so
/// the outputs are equal too: over 37 rows of 3×11×13 (not a multiple of
/// the workgroup), at several steps, seeds (high words included) and streams.
#[test]
fn dropout_masks_are_the_same_on_both_devices() {
    let Some(ctx) = gpu() else { return };
    let kernels = Kernels::new(&ctx);
    let shape = Shape { c: 3, h: 11, w: 13 };
    let rows = 37;
    let x = random_vec(&mut rng(40), rows * shape.len(), 1.0);
    for (p, step, seed, stream, mode) in [
        (0.5, 0, 0, 0, Mode::Train),
        (0.1, 7, u64::MAX - 5, 2, Mode::Train),
        (0.9, 123_456, 0xdead_beef_0000_0001, 17, Mode::Train),
        (0.5, 3, 1, 0, Mode::Eval),
    ] {
        let op = dropout_op(shape, p, stream);
        let at = At { mode, step, seed };
        let (want_y, want_saved) = forward(&op, at, rows, std::slice::from_ref(&x), &[]);
        let (got_y, got_saved) = gpu_forward_words(&ctx, &kernels, &op, at, rows, &x);
        let what = format!("p {p}, step {step}, seed {seed:#x}, stream {stream}, {mode:?}");
        assert_eq!(got_saved[0], words(want_saved[0].f32s()), "{what}: mask");
        assert_eq!(got_y, words(&want_y), "{what}: output");
        let dropped = want_saved[0].f32s().iter().filter(|&&m| m == 0.0).count();
        match mode {
            Mode::Train => assert!(dropped > 0 && dropped < x.len(), "{what}: some dropped"),
            Mode::Eval => assert_eq!(want_y, x, "{what}: the identity"),
        }
    }
}

/// The mask's statistics over n = 2²⁰ values of the reference (which the
/// GPU matches bit for bit, above): the kept fraction is 1 − p, the mean of
/// an input of ones stays 1 (inverted scaling), and masks of neighbouring
/// values, of consecutive steps, of two streams and of two seeds are
/// independent (both kept with probability (1 − p)²). Each estimate is a
/// mean of n Bernoulli (or bounded) draws, so it must lie within 5 standard
/// deviations of its expectation: a false failure has probability below
/// 6·10⁻⁷ per comparison.
#[test]
fn dropout_keeps_one_minus_p_of_the_values() {
    let n = 1 << 20;
    let ones = vec![1.0f32; n];
    let mask = |p: f32, seed: u64, step: u32, stream: u32| -> Vec<bool> {
        let op = dropout_op(flat(n), p, stream);
        let (mut y, mut m) = (vec![0.0; n], vec![0.0; n]);
        dropout_forward(
            &ones,
            &mut y,
            &mut m,
            op.threshold(),
            op.scale(),
            seed,
            step,
            stream,
        );
        m.iter().map(|&v| v != 0.0).collect()
    };
    let within = |what: &str, got: f64, want: f64, sd: f64| {
        assert!(
            (got - want).abs() <= 5.0 * sd,
            "{what}: {got} vs {want} (5 standard deviations: {})",
            5.0 * sd
        );
    };
    let fraction = |hits: usize| hits as f64 / n as f64;
    let both =
        |a: &[bool], b: &[bool]| fraction(a.iter().zip(b).filter(|(x, y)| **x && **y).count());
    for p in [0.1f32, 0.5, 0.8] {
        let keep = 1.0 - f64::from(p);
        let sd = |q: f64| (q * (1.0 - q) / n as f64).sqrt();
        let m = mask(p, 42, 9, 1);
        let kept = fraction(m.iter().filter(|&&k| k).count());
        within(&format!("p {p}: kept fraction"), kept, keep, sd(keep));
        // y = mask·1: mean 1, variance (1 − keep)/keep.
        let op = dropout_op(flat(n), p, 1);
        let (mut y, mut scratch) = (vec![0.0; n], vec![0.0; n]);
        dropout_forward(
            &ones,
            &mut y,
            &mut scratch,
            op.threshold(),
            op.scale(),
            42,
            9,
            1,
        );
        let mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        within(
            &format!("p {p}: mean of y"),
            mean,
            1.0,
            ((1.0 - keep) / keep / n as f64).sqrt(),
        );
        let pair = keep * keep;
        within(
            &format!("p {p}: neighbours"),
            both(&m[1..], &m[..n - 1]) * n as f64 / (n - 1) as f64,
            pair,
            sd(pair) * 1.01,
        );
        within(
            &format!("p {p}: next step"),
            both(&m, &mask(p, 42, 10, 1)),
            pair,
            sd(pair),
        );
        within(
            &format!("p {p}: other stream"),
            both(&m, &mask(p, 42, 9, 2)),
            pair,
            sd(pair),
        );
        within(
            &format!("p {p}: other seed"),
            both(&m, &mask(p, 43, 9, 1)),
            pair,
            sd(pair),
        );
    }
    // p = 0 keeps everything.
    assert!(mask(0.0, 1, 2, 3).iter().all(|&k| k));
}
