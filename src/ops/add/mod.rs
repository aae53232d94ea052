//! The sum of two values of one shape: y = a + b (a residual connection's
//! join). Its backward passes dy to both inputs unchanged:
//!   forward  y = a + b  →  da = dy, db = dy.
//! add.wgsl also holds `copy` and `accumulate`, which the planner uses to
//! sum the gradients of a value that several nodes read.

mod launch;
pub mod reference;

use super::{CpuBackward, CpuForward, GpuBackward, GpuForward, Op};
use crate::gpu::Dispatch;
use crate::graph::Shape;
use std::any::Any;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Add {
    pub shape: Shape,
}

impl Op for Add {
    fn label(&self) -> String {
        "add".into()
    }

    fn output(&self) -> Shape {
        self.shape
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn forward_cpu(&self, f: CpuForward) {
        reference::add_forward(f.inputs[0], f.inputs[1], f.output);
    }

    fn backward_cpu(&self, b: CpuBackward) {
        for dx in b.grad_inputs.into_iter().flatten() {
            dx.copy_from_slice(b.grad_output);
        }
    }

    fn forward_gpu(&self, f: GpuForward) -> Vec<Dispatch> {
        let len = f.batch * self.shape.len();
        vec![f
            .kernels
            .add_forward(f.ctx, len, f.inputs[0], f.inputs[1], f.output)]
    }

    fn backward_gpu(&self, b: GpuBackward) -> Vec<Dispatch> {
        let len = b.batch * self.shape.len();
        b.grad_inputs
            .iter()
            .flatten()
            .map(|&dx| b.kernels.copy(b.ctx, len, b.grad_output, dx))
            .collect()
    }
}
