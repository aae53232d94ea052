//! Every layer of a graph through the one trait the engine runs it by: the
//! GPU forward (training mode) and backward, with the kernels and versions
//! this adapter's planner picks, against the CPU reference on the same
//! random inputs — tests/ops.rs's `check_gpu`, reporting instead of
//! asserting.
//!
//! Tolerances (tests/ops.rs): sums over up to `fan_in` products of values in
//! [-1, 1] rounded differently, 1e-5·(fan_in + 1) absolute and 1e-4
//! relative; parameter gradients sum over the batch too, so `rows` times that.

use super::Runner;
use crate::gpu::{Binding, StepSlots};
use crate::graph::{Graph, Shape, Value};
use crate::ops::bn::BatchNorm;
use crate::ops::conv2d::Conv2d;
use crate::ops::dense::Dense;
use crate::ops::{CpuBackward, CpuForward, GpuBackward, GpuForward, Init, Mode, Op, Saved};
use anyhow::Result;

/// The kind of layer a label names: `conv16k3p1, relu` → `conv`; standalone
/// activations are `activation`.
fn kind(label: &str) -> &str {
    let end = label
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(label.len());
    match &label[..end] {
        "relu" | "tanh" | "sigmoid" | "identity" => "activation",
        other => other,
    }
}

/// The products summed into one output, for the tolerance.
fn fan_in(op: &dyn Op, rows: usize) -> usize {
    let any = op.as_any();
    if let Some(d) = any.downcast_ref::<Dense>() {
        d.inputs
    } else if let Some(c) = any.downcast_ref::<Conv2d>() {
        c.input.c * c.kernel * c.kernel
    } else if let Some(b) = any.downcast_ref::<BatchNorm>() {
        rows * b.shape.h * b.shape.w
    } else {
        2
    }
}

fn initial_buffers(op: &dyn Op) -> Vec<Vec<f32>> {
    op.buffers()
        .iter()
        .map(|d| {
            let len = d.shape.iter().product();
            match d.init {
                Init::Zeros => vec![0.0; len],
                Init::Ones => vec![1.0; len],
                Init::Uniform(bound) => vec![bound; len],
            }
        })
        .collect()
}

/// Checks every node of `graph` on `rows` random examples; `name` says
/// which graph in the report.
pub fn check_graph(run: &mut Runner, name: &str, graph: &Graph, rows: usize) -> Result<()> {
    let shape_of = |v: Value| -> Shape {
        match v {
            Value::Input => graph.input,
            Value::Node(i) => graph.nodes[i].op.output(),
        }
    };
    for node in &graph.nodes {
        let shapes: Vec<Shape> = node.inputs.iter().map(|&v| shape_of(v)).collect();
        let label = node.op.label();
        let kernel = format!("layer {}", kind(&label));
        let case = format!("{name} {} ({label}), {rows} rows", node.name);
        check_op(run, &kernel, &case, node.op.as_ref(), &shapes, rows)?;
    }
    Ok(())
}

/// One op on `rows` examples of `shapes`: forward output, updated buffers,
/// parameter and input gradients, GPU against CPU.
fn check_op(
    run: &mut Runner,
    kernel: &str,
    case: &str,
    op: &dyn Op,
    shapes: &[Shape],
    rows: usize,
) -> Result<()> {
    let (ctx, kernels) = (run.ctx, run.kernels);
    let inputs: Vec<Vec<f32>> = shapes
        .iter()
        .map(|s| run.random(rows * s.len(), 1.0))
        .collect();
    let params: Vec<Vec<f32>> = op
        .params()
        .iter()
        .map(|d| run.random(d.shape.iter().product(), 0.5))
        .collect();
    let grad_output = run.random(rows * op.output().len(), 1.0);
    let start_buffers = initial_buffers(op);

    // The CPU reference: forward in training mode, then backward.
    let mut want_buffers = start_buffers.clone();
    let mut want_y = vec![0.0; rows * op.output().len()];
    let mut saved: Vec<Saved> = op.saved().iter().map(|d| Saved::zeros(d, rows)).collect();
    op.forward_cpu(CpuForward {
        mode: Mode::Train,
        rows,
        step: 0,
        seed: 0,
        inputs: inputs.iter().map(Vec::as_slice).collect(),
        params: params.iter().map(Vec::as_slice).collect(),
        buffers: want_buffers.iter_mut().map(Vec::as_mut_slice).collect(),
        output: &mut want_y,
        saved: &mut saved,
    });
    let mut dy = grad_output.clone();
    let mut want_grad_params: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let mut want_grad_inputs: Vec<Vec<f32>> = inputs.iter().map(|x| vec![0.0; x.len()]).collect();
    op.backward_cpu(CpuBackward {
        rows,
        inputs: inputs.iter().map(Vec::as_slice).collect(),
        output: &want_y,
        saved: &saved,
        params: params.iter().map(Vec::as_slice).collect(),
        grad_output: &mut dy,
        skip_activation: false,
        grad_params: want_grad_params.iter_mut().map(Vec::as_mut_slice).collect(),
        grad_inputs: want_grad_inputs
            .iter_mut()
            .map(|g| Some(g.as_mut_slice()))
            .collect(),
    });

    // The same on the GPU, one training step of `rows` examples.
    let to_gpu = |label: &str, vs: &[Vec<f32>]| -> Vec<wgpu::Buffer> {
        vs.iter().map(|v| ctx.storage_init(label, v)).collect()
    };
    let x_bufs = to_gpu("x", &inputs);
    let p_bufs = to_gpu("param", &params);
    let b_bufs = to_gpu("buffer", &start_buffers);
    let y_buf = ctx.storage_zeroed("y", want_y.len());
    let saved_bufs: Vec<wgpu::Buffer> = op
        .saved()
        .iter()
        .map(|d| ctx.storage_zeroed(d.name, d.elements(rows)))
        .collect();
    let dy_buf = ctx.storage_init("dy", &grad_output);
    let dp_bufs: Vec<wgpu::Buffer> = params
        .iter()
        .map(|p| ctx.storage_zeroed("dp", p.len()))
        .collect();
    let dx_bufs: Vec<wgpu::Buffer> = inputs
        .iter()
        .map(|x| ctx.storage_init("dx", &vec![f32::NAN; x.len()]))
        .collect();
    let steps = StepSlots::new(ctx, "selftest step", 1);
    steps.write_epoch(ctx, rows, rows, 0, &[]);
    fn whole(bufs: &[wgpu::Buffer]) -> Vec<Binding<'_>> {
        bufs.iter().map(Binding::whole).collect()
    }
    let guard = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let mut list = op.forward_gpu(GpuForward {
        ctx,
        kernels,
        mode: Mode::Train,
        batch: rows,
        steps: Some(&steps.buffer),
        seed: 0,
        inputs: whole(&x_bufs),
        params: whole(&p_bufs),
        buffers: whole(&b_bufs),
        output: Binding::whole(&y_buf),
        saved: whole(&saved_bufs),
    });
    list.extend(op.backward_gpu(GpuBackward {
        ctx,
        kernels,
        batch: rows,
        inputs: whole(&x_bufs),
        output: Binding::whole(&y_buf),
        saved: whole(&saved_bufs),
        params: whole(&p_bufs),
        grad_output: Binding::whole(&dy_buf),
        skip_activation: false,
        grad_params: whole(&dp_bufs),
        grad_inputs: dx_bufs.iter().map(|b| Some(Binding::whole(b))).collect(),
    }));
    ctx.run(&list);
    ctx.check(guard)?;

    let tol = 1e-5 * (fan_in(op, rows) as f32 + 1.0);
    let got = ctx.read::<f32>(&y_buf, 0, want_y.len())?;
    run.check(kernel, &format!("{case}: forward"), got, &want_y, tol, 1e-4);
    for ((buf, want), decl) in b_bufs.iter().zip(&want_buffers).zip(op.buffers()) {
        let got = ctx.read::<f32>(buf, 0, want.len())?;
        let what = format!("{case}: {} after the forward", decl.name);
        run.check(kernel, &what, got, want, tol, 1e-4);
    }
    for ((buf, want), decl) in dp_bufs.iter().zip(&want_grad_params).zip(op.params()) {
        let got = ctx.read::<f32>(buf, 0, want.len())?;
        let what = format!("{case}: d/d {}", decl.name);
        run.check(kernel, &what, got, want, tol * rows as f32, 1e-4);
    }
    for (k, (buf, want)) in dx_bufs.iter().zip(&want_grad_inputs).enumerate() {
        let got = ctx.read::<f32>(buf, 0, want.len())?;
        let what = format!("{case}: d/d input {k}");
        run.check(kernel, &what, got, want, tol, 1e-4);
    }
    Ok(())
}
