//! conv2d forward, backward to the input and backward to the weights on the
//! default CNN's conv layers, GPU beside the CPU reference.

use super::measure::{self, giga_per_second};
use super::report::{rate, ratio, times, Figure, Reporter, Table};
use super::{test_values, Gpu, Settings};
use crate::gpu::{Binding, ConvPass as GpuPass, ConvVersion, Dispatch};
use crate::graph::{Graph, Shape};
use crate::ops::conv2d::reference as cpu_conv;
use crate::ops::conv2d::Conv2d;
use crate::spec::ModelSpec;
use anyhow::{Context as _, Result};
use serde::Serialize;

/// The passes measured per layer, in table order.
const PASSES: [ConvPass; 8] = [
    ConvPass::Forward(ConvVersion::Direct),
    ConvPass::Forward(ConvVersion::ImplicitGemm),
    ConvPass::Forward(ConvVersion::Subgroup),
    ConvPass::BackwardInput(ConvVersion::Direct),
    ConvPass::BackwardInput(ConvVersion::ImplicitGemm),
    ConvPass::BackwardInput(ConvVersion::Subgroup),
    ConvPass::BackwardWeight(ConvVersion::Direct),
    ConvPass::BackwardWeight(ConvVersion::ImplicitGemm),
];

/// The passes this run measures: the subgroup versions only on a GPU that
/// has them (on the CPU they would repeat the other rows).
fn passes(gpu: Option<&Gpu>) -> Vec<ConvPass> {
    PASSES
        .into_iter()
        .filter(|pass| {
            let (gpu_pass, version) = pass.split();
            match gpu {
                Some(gpu) => version.is_available(&gpu.ctx, gpu_pass),
                None => version != ConvVersion::Subgroup,
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum ConvPass {
    /// y = act(conv(x, W) + b), by one of the kernel versions
    Forward(ConvVersion),
    /// dx from dy and W, by one of the kernel versions
    BackwardInput(ConvVersion),
    /// dW from dy and x, by one of the kernel versions
    BackwardWeight(ConvVersion),
}

impl ConvPass {
    /// The engine's pass and the version measured.
    fn split(self) -> (GpuPass, ConvVersion) {
        match self {
            ConvPass::Forward(v) => (GpuPass::Forward, v),
            ConvPass::BackwardInput(v) => (GpuPass::BackwardInput, v),
            ConvPass::BackwardWeight(v) => (GpuPass::BackwardWeight, v),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ConvPass::Forward(ConvVersion::Direct) => "forward, direct",
            ConvPass::Forward(ConvVersion::ImplicitGemm) => "forward, implicit GEMM",
            ConvPass::Forward(ConvVersion::Subgroup) => "forward, subgroup",
            ConvPass::BackwardInput(ConvVersion::Direct) => "backward to input, direct",
            ConvPass::BackwardInput(ConvVersion::ImplicitGemm) => {
                "backward to input, implicit GEMM"
            }
            ConvPass::BackwardInput(ConvVersion::Subgroup) => "backward to input, subgroup",
            ConvPass::BackwardWeight(ConvVersion::Direct) => "backward to weights, direct",
            ConvPass::BackwardWeight(ConvVersion::ImplicitGemm) => {
                "backward to weights, implicit GEMM"
            }
            ConvPass::BackwardWeight(ConvVersion::Subgroup) => {
                unreachable!("no subgroup version of the weight gradient")
            }
        }
    }
}

/// One pass of one layer.
#[derive(Debug, Serialize)]
pub struct ConvRow {
    /// e.g. "16×14×14 → 32×14×14, 3×3"
    pub layer: String,
    /// "forward, direct", "forward, implicit GEMM", "backward to input" or
    /// "backward to weights".
    pub pass: &'static str,
    pub batch: usize,
    pub gpu_gflops: Figure,
    pub cpu_gflops: Figure,
    pub gpu_over_cpu: Option<f64>,
}

impl ConvRow {
    fn cells(&self) -> Vec<String> {
        vec![
            self.layer.clone(),
            self.pass.to_string(),
            self.gpu_gflops.cell(rate),
            self.cpu_gflops.cell(rate),
            times(self.gpu_over_cpu),
        ]
    }
}

const TABLE: Table = Table {
    columns: &[
        ("layer", 28),
        ("pass", 34),
        ("GPU", 8),
        ("CPU", 8),
        ("GPU/CPU", 8),
    ],
};

/// The conv layers of the default CNN on MNIST-sized input.
pub fn default_cnn_convs() -> Result<Vec<Conv2d>> {
    let spec = ModelSpec::parse("cnn")?;
    let graph =
        Graph::new(&spec, Shape { c: 1, h: 28, w: 28 }, 10).context("planning the default CNN")?;
    Ok(graph
        .nodes
        .iter()
        .filter_map(|node| node.op.as_any().downcast_ref::<Conv2d>().copied())
        .collect())
}

/// Rows this part prints.
pub fn row_count(gpu: Option<&Gpu>) -> usize {
    default_cnn_convs().map_or(0, |convs| convs.len() * passes(gpu).len())
}

/// The tensors of one layer at one batch size, on the host.
struct Tensors {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    y: Vec<f32>,
    dy: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
}

impl Tensors {
    fn new(conv: &Conv2d, batch: usize) -> Tensors {
        let weights = conv.output.c * conv.input.c * conv.kernel * conv.kernel;
        Tensors {
            x: test_values(batch * conv.input.len(), 1),
            w: test_values(weights, 2),
            b: test_values(conv.output.c, 3),
            y: vec![0.0; batch * conv.output.len()],
            dy: test_values(batch * conv.output.len(), 4),
            dx: vec![0.0; batch * conv.input.len()],
            dw: vec![0.0; weights],
        }
    }
}

/// The same tensors on the GPU.
struct GpuTensors {
    x: wgpu::Buffer,
    w: wgpu::Buffer,
    b: wgpu::Buffer,
    y: wgpu::Buffer,
    dy: wgpu::Buffer,
    dx: wgpu::Buffer,
    dw: wgpu::Buffer,
}

impl GpuTensors {
    fn upload(gpu: &Gpu, t: &Tensors) -> GpuTensors {
        let ctx = &gpu.ctx;
        GpuTensors {
            x: ctx.storage_init("bench x", &t.x),
            w: ctx.storage_init("bench w", &t.w),
            b: ctx.storage_init("bench b", &t.b),
            y: ctx.storage_init("bench y", &t.y),
            dy: ctx.storage_init("bench dy", &t.dy),
            dx: ctx.storage_init("bench dx", &t.dx),
            dw: ctx.storage_init("bench dw", &t.dw),
        }
    }
}

/// Measures every pass of every conv layer of the default CNN.
pub fn run(settings: &Settings, gpu: Option<&Gpu>, out: &mut Reporter) -> Result<Vec<ConvRow>> {
    let batch = settings.conv_batch;
    out.section(
        &format!(
            "conv2d on the default CNN's conv layers, batch {batch}, GFLOP/s \
             (2·batch·out_c·out_h·out_w·in_c·k·k per pass)"
        ),
        &TABLE,
    )?;
    let mut rows = Vec::new();
    for conv in default_cnn_convs()? {
        let layer = describe(&conv);
        let mut tensors = Tensors::new(&conv, batch);
        let gpu_tensors = gpu.map(|gpu| GpuTensors::upload(gpu, &tensors));
        for pass in passes(gpu) {
            out.working_on(format!("conv {layer} {}", pass.name()));
            let flop = pass_flop(&conv, batch);
            let gpu_figure = match (gpu, &gpu_tensors) {
                (Some(gpu), Some(buffers)) => {
                    let dispatch = gpu_dispatch(gpu, buffers, &conv, batch, pass);
                    let timing = measure::gpu(gpu, settings.budget, &[dispatch])?;
                    Figure::Value(giga_per_second(flop, timing))
                }
                _ => Figure::NoGpu,
            };
            let timing = measure::cpu(settings.budget, || {
                run_cpu(&mut tensors, &conv, batch, pass)
            })?;
            let cpu_figure = Figure::Value(giga_per_second(flop, timing));
            let row = ConvRow {
                layer: layer.clone(),
                pass: pass.name(),
                batch,
                gpu_gflops: gpu_figure,
                cpu_gflops: cpu_figure,
                gpu_over_cpu: ratio(gpu_figure, cpu_figure),
            };
            out.row(&TABLE, &row.cells())?;
            rows.push(row);
        }
    }
    Ok(rows)
}

/// "in → out, k×k", with stride and padding when they are not 1 and 0.
fn describe(conv: &Conv2d) -> String {
    let k = conv.kernel;
    let mut text = format!("{} → {}, {k}×{k}", conv.input, conv.output);
    if conv.stride != 1 {
        text.push_str(&format!(" s{}", conv.stride));
    }
    if conv.padding != 0 {
        text.push_str(&format!(" p{}", conv.padding));
    }
    text
}

/// 2·batch·out_c·out_h·out_w·in_c·k·k: every pass does one multiply-add per
/// (output value, weight tap) pair.
fn pass_flop(conv: &Conv2d, batch: usize) -> f64 {
    let taps = conv.input.c * conv.kernel * conv.kernel;
    2.0 * batch as f64 * conv.output.len() as f64 * taps as f64
}

fn gpu_dispatch(
    gpu: &Gpu,
    t: &GpuTensors,
    conv: &Conv2d,
    batch: usize,
    pass: ConvPass,
) -> Dispatch {
    let (ctx, kernels) = (&gpu.ctx, &gpu.kernels);
    let bind = Binding::whole;
    match pass {
        ConvPass::Forward(version) => kernels.conv2d_forward_version(
            ctx,
            version,
            conv,
            batch,
            bind(&t.x),
            bind(&t.w),
            bind(&t.b),
            bind(&t.y),
        ),
        ConvPass::BackwardInput(version) => kernels.conv2d_backward_input_version(
            ctx,
            version,
            conv,
            batch,
            bind(&t.dy),
            bind(&t.w),
            bind(&t.dx),
        ),
        ConvPass::BackwardWeight(version) => kernels.conv2d_backward_weight_version(
            ctx,
            version,
            conv,
            batch,
            bind(&t.dy),
            bind(&t.x),
            bind(&t.dw),
        ),
    }
}

fn run_cpu(t: &mut Tensors, conv: &Conv2d, batch: usize, pass: ConvPass) {
    match pass {
        ConvPass::Forward(_) => cpu_conv::conv2d_forward(&t.x, &t.w, &t.b, &mut t.y, batch, conv),
        ConvPass::BackwardInput(_) => {
            cpu_conv::conv2d_backward_input(&t.dy, &t.w, &mut t.dx, batch, conv)
        }
        ConvPass::BackwardWeight(_) => {
            cpu_conv::conv2d_backward_weight(&t.dy, &t.x, &mut t.dw, batch, conv)
        }
    }
}
