//! Softmax cross-entropy with its gradient (one kernel on the GPU), beside
//! the CPU reference: time per batch and the bytes it moves per second.

use super::measure::{self, giga_per_second, Timing};
use super::report::{rate, ratio, times, Figure, Reporter, Table};
use super::{test_values, Gpu, Settings};
use crate::gpu::{Binding, StepSlots};
use crate::ops::softmax_xent::reference as ops;
use crate::ops::softmax_xent::METRICS_WORDS;
use anyhow::Result;
use serde::Serialize;

/// One batch shape.
#[derive(Debug, Serialize)]
pub struct SoftmaxRow {
    pub rows: usize,
    pub classes: usize,
    /// Logits and labels read plus the gradient written, per batch.
    pub bytes: usize,
    pub gpu_us: Figure,
    pub gpu_gbps: Figure,
    pub cpu_us: Figure,
    pub cpu_gbps: Figure,
    /// CPU time over GPU time.
    pub gpu_over_cpu: Option<f64>,
}

impl SoftmaxRow {
    fn cells(&self) -> Vec<String> {
        vec![
            format!("{} × {}", self.rows, self.classes),
            self.gpu_us.cell(rate),
            self.gpu_gbps.cell(rate),
            self.cpu_us.cell(rate),
            self.cpu_gbps.cell(rate),
            times(self.gpu_over_cpu),
        ]
    }
}

const TABLE: Table = Table {
    columns: &[
        ("rows × classes", 14),
        ("GPU µs", 8),
        ("GPU GB/s", 8),
        ("CPU µs", 8),
        ("CPU GB/s", 8),
        ("GPU/CPU", 8),
    ],
};

/// Measures each (rows, classes) case of `settings`.
pub fn run(settings: &Settings, gpu: Option<&Gpu>, out: &mut Reporter) -> Result<Vec<SoftmaxRow>> {
    out.section(
        "softmax cross-entropy + gradient, per batch (bytes: logits and labels read, gradient written)",
        &TABLE,
    )?;
    let mut rows = Vec::new();
    for &(batch_rows, classes) in &settings.softmax_cases {
        out.working_on(format!("softmax {batch_rows}×{classes}"));
        let inputs = Inputs::new(batch_rows, classes);
        let gpu_timing = match gpu {
            Some(gpu) => Some(time_gpu(settings, gpu, &inputs)?),
            None => None,
        };
        let cpu_timing = time_cpu(settings, &inputs)?;
        let row = row(&inputs, gpu_timing, cpu_timing);
        out.row(&TABLE, &row.cells())?;
        rows.push(row);
    }
    Ok(rows)
}

/// Logits and labels of one batch.
struct Inputs {
    rows: usize,
    classes: usize,
    logits: Vec<f32>,
    labels: Vec<u32>,
}

impl Inputs {
    fn new(rows: usize, classes: usize) -> Inputs {
        Inputs {
            rows,
            classes,
            logits: test_values(rows * classes, 5),
            labels: (0..rows).map(|r| (r % classes) as u32).collect(),
        }
    }

    fn bytes(&self) -> usize {
        4 * (2 * self.rows * self.classes + self.rows)
    }
}

fn time_gpu(settings: &Settings, gpu: &Gpu, inputs: &Inputs) -> Result<Timing> {
    let ctx = &gpu.ctx;
    // The kernel reads its batch length from a step slot: one step, all rows.
    let steps = StepSlots::new(ctx, "bench xent step", 1);
    steps.write_epoch(ctx, inputs.rows, inputs.rows, 0, &[]);
    let logits = ctx.storage_init("bench logits", &inputs.logits);
    let labels = ctx.storage_init("bench labels", &inputs.labels);
    let grad = ctx.storage_zeroed("bench grad", inputs.rows * inputs.classes);
    let metrics = ctx.storage_zeroed("bench metrics", METRICS_WORDS);
    let dispatch = gpu.kernels.softmax_xent(
        ctx,
        &steps.buffer,
        inputs.rows,
        inputs.classes,
        Binding::whole(&logits),
        Binding::whole(&labels),
        Binding::whole(&grad),
        Binding::whole(&metrics),
    );
    measure::gpu(gpu, settings.budget, &[dispatch])
}

fn time_cpu(settings: &Settings, inputs: &Inputs) -> Result<Timing> {
    let mut grad = vec![0.0f32; inputs.rows * inputs.classes];
    measure::cpu(settings.budget, || {
        ops::softmax_xent(
            &inputs.logits,
            &inputs.labels,
            &mut grad,
            inputs.rows,
            inputs.classes,
        );
    })
}

fn row(inputs: &Inputs, gpu: Option<Timing>, cpu: Timing) -> SoftmaxRow {
    let bytes = inputs.bytes();
    let micros = |t: Timing| Figure::Value(t.seconds * 1e6);
    let gbps = |t: Timing| Figure::Value(giga_per_second(bytes as f64, t));
    let (gpu_us, gpu_gbps) = match gpu {
        Some(t) => (micros(t), gbps(t)),
        None => (Figure::NoGpu, Figure::NoGpu),
    };
    SoftmaxRow {
        rows: inputs.rows,
        classes: inputs.classes,
        bytes,
        gpu_us,
        gpu_gbps,
        cpu_us: micros(cpu),
        cpu_gbps: gbps(cpu),
        gpu_over_cpu: ratio(micros(cpu), gpu_us),
    }
}
