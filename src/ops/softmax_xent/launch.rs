//! Launcher of softmax_xent.wgsl.

use crate::gpu::{Binding, Dispatch, GpuContext, Kernels, Shader, Slot::*};

pub const SOFTMAX_XENT: Shader = Shader {
    name: "softmax_xent",
    parts: &[include_str!("../../../shaders/softmax_xent.wgsl")],
};

/// Mirrors `XentParams` in softmax_xent.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct XentParams {
    rows: u32,
    cols: u32,
    smoothing: f32,
    _pad: u32,
}

/// Size of the device-side `Metrics` struct of softmax_xent.wgsl, in u32s.
pub const METRICS_WORDS: usize = 4;

impl Kernels {
    /// Loss, correct count and logit gradient of a (rows, cols) batch.
    #[allow(clippy::too_many_arguments)]
    pub fn softmax_xent(
        &self,
        ctx: &GpuContext,
        steps: &wgpu::Buffer,
        rows: usize,
        cols: usize,
        logits: Binding,
        labels: Binding,
        grad: Binding,
        metrics: Binding,
    ) -> Dispatch {
        let (r, c) = (rows, cols);
        self.softmax_xent_smoothed(ctx, steps, r, c, logits, labels, grad, metrics, 0.0)
    }

    /// The same against labels smoothed by `smoothing` (softmax_xent.wgsl).
    #[allow(clippy::too_many_arguments)]
    pub fn softmax_xent_smoothed(
        &self,
        ctx: &GpuContext,
        steps: &wgpu::Buffer,
        rows: usize,
        cols: usize,
        logits: Binding,
        labels: Binding,
        grad: Binding,
        metrics: Binding,
        smoothing: f32,
    ) -> Dispatch {
        let params = XentParams {
            rows: rows as u32,
            cols: cols as u32,
            smoothing,
            _pad: 0,
        };
        let uniform = ctx.uniform("xent params", &params);
        self.get(
            ctx,
            &SOFTMAX_XENT,
            "softmax_xent",
            &[Step, Uniform, Read, Read, ReadWrite, ReadWrite],
        )
        .dispatch(
            ctx,
            &[
                Binding::step(steps),
                Binding::whole(&uniform),
                logits,
                labels,
                grad,
                metrics,
            ],
            [1, 1, 1],
        )
    }
}
