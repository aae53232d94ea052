//! The ops that depend on the training step and the run's seed (dropout),
//! and global average pooling, through the same checks as tests/ops.rs:
//! `check_op_at` is `check_op` at a given mode, step and seed, the GPU side
//! with a real step slot. (Its helpers mirror ops.rs's; folding the two
//! into one helper with buffers, padding rows and a step is left to do.)
//!
//! Tolerances as in ops.rs: finite differences with h = 1e-2 in f32
//! (2e-3 + 2e-2·|g|), GPU against CPU 1e-5·(fan_in + 1) absolute and 1e-4
//! relative; dropout's masks are compared exactly.

mod common;

use common::{assert_close, gpu, random_vec, rng};
use gpunet::gpu::{Binding, GpuContext, Kernels, StepSlots};
use gpunet::graph::Shape;
use gpunet::ops::dropout::reference::dropout_forward;
use gpunet::ops::dropout::Dropout;
use gpunet::ops::gap::GlobalAvgPool;
use gpunet::ops::{
    Activation, CpuBackward, CpuForward, Dtype, GpuBackward, GpuForward, Mode, Op, Saved,
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

const TRAIN_STEP_0: At = At {
    mode: Mode::Train,
    step: 0,
    seed: 0,
};

/// An op's tensors for one check, all on the CPU.
struct Case {
    at: At,
    rows: usize,
    inputs: Vec<Vec<f32>>,
    params: Vec<Vec<f32>>,
    grad_output: Vec<f32>,
}

/// The CPU forward: output and saved tensors.
fn forward(
    op: &dyn Op,
    at: At,
    rows: usize,
    inputs: &[Vec<f32>],
    params: &[Vec<f32>],
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
        buffers: Vec::new(),
        output: &mut output,
        saved: &mut saved,
    });
    (output, saved)
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

/// The CPU backward: (parameter gradients, input gradients).
fn backward(op: &dyn Op, case: &Case) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let (output, saved) = forward(op, case.at, case.rows, &case.inputs, &case.params);
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

/// The GPU forward and backward against the CPU ones.
fn check_gpu(ctx: &GpuContext, kernels: &Kernels, op: &dyn Op, case: &Case, fan_in: usize) {
    let rows = case.rows;
    let (want_y, _) = forward(op, case.at, rows, &case.inputs, &case.params);
    let (want_grad_params, want_grad_inputs) = backward(op, case);

    let inputs: Vec<wgpu::Buffer> = case
        .inputs
        .iter()
        .map(|x| ctx.storage_init("x", x))
        .collect();
    let params: Vec<wgpu::Buffer> = case
        .params
        .iter()
        .map(|p| ctx.storage_init("p", p))
        .collect();
    let output = ctx.storage_zeroed("y", want_y.len());
    let saved: Vec<wgpu::Buffer> = op
        .saved()
        .iter()
        .map(|d| {
            assert!(
                matches!(d.dtype, Dtype::F32 | Dtype::U32),
                "4-byte elements"
            );
            ctx.storage_zeroed(d.name, d.elements(rows))
        })
        .collect();
    let grad_output = ctx.storage_init("dy", &case.grad_output);
    let grad_params: Vec<wgpu::Buffer> = case
        .params
        .iter()
        .map(|p| ctx.storage_zeroed("dp", p.len()))
        .collect();
    let grad_inputs: Vec<wgpu::Buffer> = case
        .inputs
        .iter()
        .map(|x| ctx.storage_zeroed("dx", x.len()))
        .collect();
    fn whole(bufs: &[wgpu::Buffer]) -> Vec<Binding<'_>> {
        bufs.iter().map(Binding::whole).collect()
    }

    // One step slot holding the step's number, as training binds it.
    let slots = StepSlots::new(ctx, "steps", 1);
    slots.write_epoch(ctx, rows, rows, case.at.step as usize, &[]);
    let mut list = op.forward_gpu(GpuForward {
        ctx,
        kernels,
        mode: case.at.mode,
        batch: rows,
        steps: (case.at.mode == Mode::Train).then_some(&slots.buffer),
        seed: case.at.seed,
        inputs: whole(&inputs),
        params: whole(&params),
        buffers: Vec::new(),
        output: Binding::whole(&output),
        saved: whole(&saved),
    });
    list.extend(
        op.backward_gpu(GpuBackward {
            ctx,
            kernels,
            batch: rows,
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
    for (k, (buf, want)) in grad_params.iter().zip(&want_grad_params).enumerate() {
        let got: Vec<f32> = ctx.read(buf, 0, want.len()).unwrap();
        let what = format!("{label}: GPU d/d {}", op.params()[k].name);
        assert_close(&what, &got, want, tol * rows as f32, 1e-4);
    }
    for (k, (buf, want)) in grad_inputs.iter().zip(&want_grad_inputs).enumerate() {
        let got: Vec<f32> = ctx.read(buf, 0, want.len()).unwrap();
        assert_close(
            &format!("{label}: GPU d/d input {k}"),
            &got,
            want,
            tol,
            1e-4,
        );
    }
}

fn case(rng: &mut ChaCha8Rng, op: &dyn Op, input_shapes: &[Shape], rows: usize, at: At) -> Case {
    Case {
        at,
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

/// `check_op` in `at`'s mode, step and seed.
fn check_op_at(op: &dyn Op, input_shapes: &[Shape], rows: usize, fan_in: usize, at: At) {
    let mut rng = rng(input_shapes.len() as u64 * 1000 + rows as u64);
    let case = case(&mut rng, op, input_shapes, rows, at);
    check_reference(op, &case);
    if let Some(ctx) = gpu() {
        let kernels = Kernels::new(&ctx);
        check_gpu(&ctx, &kernels, op, &case, fan_in);
    }
}

fn flat(n: usize) -> Shape {
    Shape { c: n, h: 1, w: 1 }
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
