//! Matmul at square sizes in its three forms: the engine's kernel
//! (`Kernels::matmul`), the naive version 1, and the CPU reference.
//!
//! Sizes run from small to large per form, so each runner's last time
//! predicts its next (time grows as n³): a run expected to take longer than
//! `--max-run-time` is skipped rather than left to stall the bench on a slow
//! adapter.

use super::measure::{self, giga_per_second, Timing};
use super::report::{rate, ratio, times, Figure, Reporter, Table};
use super::{test_values, Gpu, Settings};
use crate::gpu::{Binding, Dispatch, MatmulForm, MatmulShape, MatmulVersion};
use crate::graph::Activation;
use crate::ops::matmul::reference as ops;
use anyhow::Result;
use serde::Serialize;

/// The forms measured, in table order.
pub const FORMS: [MatmulForm; 3] = [MatmulForm::NN, MatmulForm::TN, MatmulForm::NT];

/// One form at one size.
#[derive(Debug, Serialize)]
pub struct MatmulRow {
    /// "NN" (A·B), "TN" (Aᵀ·B) or "NT" (A·Bᵀ).
    pub form: String,
    /// m = n = k.
    pub size: usize,
    /// The engine's kernel: the version the tuner measured fastest for
    /// this shape (`chosen`).
    pub engine_gflops: Figure,
    pub chosen: Option<String>,
    /// The version the engine used before it measured (`matmul_default`),
    /// timed in the same run: the tuner must never do worse.
    pub untuned_gflops: Figure,
    /// Version 1, one invocation per output.
    pub naive_gflops: Figure,
    pub cpu_gflops: Figure,
    pub engine_over_naive: Option<f64>,
    pub engine_over_cpu: Option<f64>,
}

impl MatmulRow {
    fn cells(&self) -> Vec<String> {
        vec![
            self.form.clone(),
            self.size.to_string(),
            self.engine_gflops.cell(rate),
            self.chosen.clone().unwrap_or_else(|| "-".into()),
            self.untuned_gflops.cell(rate),
            self.naive_gflops.cell(rate),
            times(self.engine_over_naive),
            self.cpu_gflops.cell(rate),
            times(self.engine_over_cpu),
        ]
    }
}

const TABLE: Table = Table {
    columns: &[
        ("form", 4),
        ("size", 5),
        ("engine", 17),
        ("chosen", 9),
        ("untuned", 17),
        ("naive (v1)", 17),
        ("engine/naive", 12),
        ("CPU", 17),
        ("engine/CPU", 10),
    ],
};

/// The inputs of one size: A and B are both size×size, whatever the form.
struct Operands {
    size: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    gpu: Option<GpuOperands>,
}

struct GpuOperands {
    a: wgpu::Buffer,
    b: wgpu::Buffer,
    c: wgpu::Buffer,
}

impl Operands {
    fn new(size: usize, gpu: Option<&Gpu>) -> Operands {
        let a = test_values(size * size, 1);
        let b = test_values(size * size, 2);
        let gpu = gpu.map(|gpu| GpuOperands {
            a: gpu.ctx.storage_init("bench a", &a),
            b: gpu.ctx.storage_init("bench b", &b),
            c: gpu.ctx.storage_zeroed("bench c", size * size),
        });
        Operands { size, a, b, gpu }
    }
}

/// The last (size, seconds per run) measured for one runner in one form.
type LastRun = Option<(usize, f64)>;

/// Measures every form at every size of `settings`, printing each row.
pub fn run(settings: &Settings, gpu: Option<&Gpu>, out: &mut Reporter) -> Result<Vec<MatmulRow>> {
    out.section(
        "matmul, GFLOP/s (2·n³ per n×n product; engine: Kernels::matmul, the version the \
         tuner chose; untuned: the version used before measuring; naive: version 1)",
        &TABLE,
    )?;
    let mut sizes = settings.matmul_sizes.clone();
    sizes.sort_unstable();
    let mut rows = Vec::new();
    for form in FORMS {
        let mut last: [LastRun; 4] = [None; 4];
        for &size in &sizes {
            out.working_on(format!("matmul {form:?} {size}"));
            let operands = Operands::new(size, gpu);
            let row = measure_form(settings, gpu, &operands, form, &mut last)?;
            out.row(&TABLE, &row.cells())?;
            rows.push(row);
        }
    }
    Ok(rows)
}

/// One row: each runner at one size, unless a limit says to skip it.
/// `last` holds the engine's, naive kernel's and CPU's previous runs.
fn measure_form(
    settings: &Settings,
    gpu: Option<&Gpu>,
    operands: &Operands,
    form: MatmulForm,
    last: &mut [LastRun; 4],
) -> Result<MatmulRow> {
    let [engine_last, untuned_last, naive_last, cpu_last] = last;
    let engine = measure_runner(settings, operands, None, engine_last, || {
        time_gpu(settings, gpu, operands, form, None)
    })?;
    let n = operands.size;
    let chosen = gpu.and_then(|g| {
        let key = format!("matmul {form:?} {n}x{n}x{n}");
        let cache = g.kernels.tuning.lock().ok()?;
        Some(
            cache
                .choice(&key)
                .map(str::to_string)
                .unwrap_or_else(|| format!("{:?}", g.kernels.matmul_default)),
        )
    });
    let untuned = measure_runner(settings, operands, None, untuned_last, || {
        let default = gpu.map(|g| g.kernels.matmul_default);
        match default {
            Some(v) => time_gpu(settings, gpu, operands, form, Some(v)),
            None => Ok(None),
        }
    })?;
    let naive = measure_runner(
        settings,
        operands,
        Some(settings.naive_max_size),
        naive_last,
        || time_gpu(settings, gpu, operands, form, Some(MatmulVersion::Naive)),
    )?;
    let cpu = measure_runner(
        settings,
        operands,
        Some(settings.cpu_max_size),
        cpu_last,
        || time_cpu(settings, operands, form).map(Some),
    )?;
    Ok(MatmulRow {
        form: format!("{form:?}"),
        size: operands.size,
        engine_gflops: engine,
        chosen,
        untuned_gflops: untuned,
        naive_gflops: naive,
        cpu_gflops: cpu,
        engine_over_naive: ratio(engine, naive),
        engine_over_cpu: ratio(engine, cpu),
    })
}

/// Runs `time` (None: no GPU) unless the size is above `max_size` or the run
/// is expected, from `last`, to take longer than `--max-run-time`; records
/// the run in `last`.
fn measure_runner(
    settings: &Settings,
    operands: &Operands,
    max_size: Option<usize>,
    last: &mut LastRun,
    time: impl FnOnce() -> Result<Option<Timing>>,
) -> Result<Figure> {
    let size = operands.size;
    if let Some(limit) = max_size.filter(|&limit| size > limit) {
        return Ok(Figure::Skipped { above: limit });
    }
    if let Some((last_size, last_seconds)) = *last {
        let expected_seconds = last_seconds * (size as f64 / last_size as f64).powi(3);
        if expected_seconds > settings.max_run_seconds {
            return Ok(Figure::TooSlow { expected_seconds });
        }
    }
    let Some(timing) = time()? else {
        return Ok(Figure::NoGpu);
    };
    *last = Some((size, timing.seconds));
    Ok(Figure::Value(giga_per_second(flop(size), timing)))
}

/// 2·n³: one multiply and one add per term.
fn flop(size: usize) -> f64 {
    2.0 * (size as f64).powi(3)
}

/// The engine's kernel (`version` None) or the given version on the GPU;
/// None without a GPU.
fn time_gpu(
    settings: &Settings,
    gpu: Option<&Gpu>,
    operands: &Operands,
    form: MatmulForm,
    version: Option<MatmulVersion>,
) -> Result<Option<Timing>> {
    let (Some(gpu), Some(buffers)) = (gpu, &operands.gpu) else {
        return Ok(None);
    };
    let n = operands.size;
    let dispatch = matmul_dispatch(gpu, buffers, form, MatmulShape { m: n, n, k: n }, version);
    let timing = measure::gpu(gpu, settings.budget, std::slice::from_ref(&dispatch))?;
    Ok(Some(timing))
}

fn matmul_dispatch(
    gpu: &Gpu,
    buffers: &GpuOperands,
    form: MatmulForm,
    shape: MatmulShape,
    version: Option<MatmulVersion>,
) -> Dispatch {
    let (a, b, c) = (
        Binding::whole(&buffers.a),
        Binding::whole(&buffers.b),
        Binding::whole(&buffers.c),
    );
    let (ctx, kernels, identity) = (&gpu.ctx, &gpu.kernels, Activation::Identity);
    match version {
        None => kernels.matmul(ctx, form, shape, a, b, None, identity, c),
        Some(version) => kernels.matmul_version(ctx, version, form, shape, a, b, None, identity, c),
    }
}

fn time_cpu(settings: &Settings, operands: &Operands, form: MatmulForm) -> Result<Timing> {
    let n = operands.size;
    let (a, b) = (&operands.a, &operands.b);
    let mut c = vec![0.0f32; n * n];
    measure::cpu(settings.budget, || match form {
        MatmulForm::NN => ops::matmul_nn(a, b, &mut c, n, n, n),
        MatmulForm::TN => ops::matmul_tn(a, b, &mut c, n, n, n),
        MatmulForm::NT => ops::matmul_nt(a, b, &mut c, n, n, n),
    })
}
