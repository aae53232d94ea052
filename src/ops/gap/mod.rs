//! Global average pooling: each channel's mean over its positions,
//! C×H×W → C×1×1 (PyTorch's `nn.AdaptiveAvgPool2d(1)`).
//!   forward   y[n,c] = (1/(H·W)) Σ_{i,j} x[n,c,i,j]
//!   backward  dx[n,c,i,j] = dy[n,c] / (H·W)

mod launch;
pub mod reference;

use super::{CpuBackward, CpuForward, GpuBackward, GpuForward, Op};
use crate::gpu::Dispatch;
use crate::graph::Shape;
use std::any::Any;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalAvgPool {
    pub input: Shape,
}

impl GlobalAvgPool {
    /// Positions per channel, H·W.
    pub fn area(&self) -> usize {
        self.input.h * self.input.w
    }

    /// 1/(H·W), rounded once on the host for both devices.
    pub fn inv_area(&self) -> f32 {
        1.0 / self.area() as f32
    }
}

impl Op for GlobalAvgPool {
    fn label(&self) -> String {
        "gap".into()
    }

    fn output(&self) -> Shape {
        Shape {
            c: self.input.c,
            h: 1,
            w: 1,
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn forward_cpu(&self, f: CpuForward) {
        reference::gap_forward(f.inputs[0], f.output, self.area(), self.inv_area());
    }

    // forward: y[n,c] = Σ x[n,c,i,j] / (H·W)  →  dx[n,c,i,j] = dy[n,c] / (H·W)
    fn backward_cpu(&self, b: CpuBackward) {
        if let Some(Some(dx)) = b.grad_inputs.into_iter().next() {
            reference::gap_backward(b.grad_output, dx, self.area(), self.inv_area());
        }
    }

    fn forward_gpu(&self, f: GpuForward) -> Vec<Dispatch> {
        vec![f
            .kernels
            .gap_forward(f.ctx, self, f.batch, f.inputs[0], f.output)]
    }

    fn backward_gpu(&self, b: GpuBackward) -> Vec<Dispatch> {
        match b.grad_inputs[0] {
            Some(dx) => vec![b
                .kernels
                .gap_backward(b.ctx, self, b.batch, b.grad_output, dx)],
            None => Vec::new(),
        }
    }
}
