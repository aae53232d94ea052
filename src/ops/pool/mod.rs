//! Max-pooling over size×size windows moved by stride (no padding):
//! y[n,c,i,j] = max_{u,v < size} x[n, c, i·s + u, j·s + v].
//! The winners (`argmax`, each one's index within its input plane) are
//! saved for the backward pass, which routes each dy to its window's winner.

mod launch;
pub mod reference;

use super::{CpuBackward, CpuForward, Dtype, GpuBackward, GpuForward, Op, SavedDecl};
use crate::gpu::Dispatch;
use crate::graph::Shape;
use anyhow::{bail, Result};
use std::any::Any;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool {
    pub input: Shape,
    pub output: Shape,
    pub size: usize,
    pub stride: usize,
}

impl MaxPool {
    /// The shape rule: (h − size)/stride + 1 per side, or an error naming
    /// the sizes when the window does not fit.
    pub fn new(input: Shape, size: usize, stride: usize) -> Result<MaxPool> {
        if size > input.h || size > input.w {
            bail!(
                "the {size}×{size} pool window is larger than the {}×{} feature map",
                input.h,
                input.w
            );
        }
        Ok(MaxPool {
            input,
            output: Shape {
                c: input.c,
                h: (input.h - size) / stride + 1,
                w: (input.w - size) / stride + 1,
            },
            size,
            stride,
        })
    }
}

impl Op for MaxPool {
    fn label(&self) -> String {
        if self.stride == self.size {
            format!("pool{}", self.size)
        } else {
            format!("pool{}s{}", self.size, self.stride)
        }
    }

    fn output(&self) -> Shape {
        self.output
    }

    fn saved(&self) -> Vec<SavedDecl> {
        vec![SavedDecl {
            name: "argmax",
            len: self.output.len(),
            per_example: true,
            dtype: Dtype::U32,
        }]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn forward_cpu(&self, f: CpuForward) {
        let argmax = f.saved[0].u32s_mut();
        reference::maxpool_forward(f.inputs[0], f.output, argmax, f.rows, self);
    }

    // forward: y[n,c,i,j] = x[n,c,argmax[n,c,i,j]]  →  dx[n,c,a] = Σ_{(i,j): argmax = a} dy[n,c,i,j]
    fn backward_cpu(&self, b: CpuBackward) {
        if let Some(Some(dx)) = b.grad_inputs.into_iter().next() {
            reference::maxpool_backward(b.grad_output, b.saved[0].u32s(), dx, b.rows, self);
        }
    }

    fn forward_gpu(&self, f: GpuForward) -> Vec<Dispatch> {
        vec![f
            .kernels
            .maxpool_forward(f.ctx, self, f.batch, f.inputs[0], f.output, f.saved[0])]
    }

    fn backward_gpu(&self, b: GpuBackward) -> Vec<Dispatch> {
        match b.grad_inputs[0] {
            Some(dx) => vec![b.kernels.maxpool_backward(
                b.ctx,
                self,
                b.batch,
                b.grad_output,
                b.saved[0],
                dx,
            )],
            None => Vec::new(),
        }
    }
}
