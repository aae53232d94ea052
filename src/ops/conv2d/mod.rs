//! 2-D convolution over NCHW activations, with its activation fused:
//! y[n,o,i,j] = act(b[o] + Σ_{c,u,v} W[o,c,u,v] · x[n, c, i·s + u − p, j·s + v − p]),
//! x zero outside the image; W is (out_c, in_c, k, k), b is (out_c).
//!
//! `reference.rs` is the CPU reference of every pass; `launch.rs` launches
//! conv2d.wgsl's direct kernels (the GPU reference) and implicit GEMMs, and
//! the subgroup versions written for software adapters
//! (shaders/software/conv2d_subgroup.wgsl), choosing per shape by measurement.

mod launch;
pub mod reference;

pub use launch::fastest_conv;

use super::activation::reference::activation_backward;
use super::{Activation, CpuBackward, CpuForward, GpuBackward, GpuForward, Init, Op, TensorDecl};
use crate::gpu::{Dispatch, GpuContext};
use crate::graph::Shape;
use anyhow::{bail, Result};
use std::any::Any;

/// A convolution's shapes and hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    pub input: Shape,
    pub output: Shape,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub activation: Activation,
}

impl Conv2d {
    /// The shape rule: `channels` maps of (h + 2p − k)/s + 1 squared, or an
    /// error naming the sizes when the kernel does not fit.
    pub fn new(
        input: Shape,
        channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Conv2d> {
        let padded = |side: usize| padding.checked_mul(2).and_then(|p| p.checked_add(side));
        let (Some(ph), Some(pw)) = (padded(input.h), padded(input.w)) else {
            bail!("the padding {padding} makes a feature map too large to count in 64 bits");
        };
        if kernel > ph || kernel > pw {
            bail!("the {kernel}×{kernel} kernel is larger than the {ph}×{pw} padded feature map");
        }
        Ok(Conv2d {
            input,
            output: Shape {
                c: channels,
                h: (ph - kernel) / stride + 1,
                w: (pw - kernel) / stride + 1,
            },
            kernel,
            stride,
            padding,
            activation: Activation::Identity,
        })
    }
}

/// How a conv2d forward is computed (see shaders/conv2d.wgsl).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConvVersion {
    /// One invocation per output value, walking its receptive field.
    Direct,
    /// The pass as a GEMM over im2col(x) without materialising it: blocks of
    /// 4 channels × 4 pixels per invocation (16 channels × 4 taps for dW).
    ImplicitGemm,
    /// The implicit GEMM shaped like matmul version 4: a subgroup of 8 lanes
    /// shares its weight loads (shaders/software/conv2d_subgroup.wgsl). Forward and backward
    /// to input only, on devices with subgroups of exactly 8.
    Subgroup,
}

impl ConvVersion {
    /// Every version, in the order the bench and the tests list them.
    pub const ALL: [ConvVersion; 3] = [
        ConvVersion::Direct,
        ConvVersion::ImplicitGemm,
        ConvVersion::Subgroup,
    ];

    /// Whether this device can run the version for `pass`.
    pub fn is_available(self, ctx: &GpuContext, pass: ConvPass) -> bool {
        match self {
            ConvVersion::Subgroup => {
                pass != ConvPass::BackwardWeight && ctx.fixed_subgroup_size() == Some(8)
            }
            _ => true,
        }
    }

    /// The versions this device can run for `pass`.
    pub fn available(ctx: &GpuContext, pass: ConvPass) -> Vec<ConvVersion> {
        ConvVersion::ALL
            .into_iter()
            .filter(|v| v.is_available(ctx, pass))
            .collect()
    }
}

/// The conv2d passes that have several versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConvPass {
    Forward,
    BackwardInput,
    BackwardWeight,
}

impl Op for Conv2d {
    fn label(&self) -> String {
        let mut token = format!("conv{}k{}", self.output.c, self.kernel);
        if self.stride != 1 {
            token += &format!("s{}", self.stride);
        }
        if self.padding != 0 {
            token += &format!("p{}", self.padding);
        }
        self.activation.append_to(token)
    }

    fn output(&self) -> Shape {
        self.output
    }

    /// PyTorch's default: uniform in ±1/√fan_in, fan_in = in_c·k·k.
    fn params(&self) -> Vec<TensorDecl> {
        let k = self.kernel;
        let bound = Init::Uniform(1.0 / ((self.input.c * k * k) as f32).sqrt());
        vec![
            TensorDecl {
                name: "weight",
                shape: vec![self.output.c, self.input.c, k, k],
                init: bound,
            },
            TensorDecl {
                name: "bias",
                shape: vec![self.output.c],
                init: bound,
            },
        ]
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn fused_with(&self, act: Activation) -> Option<Box<dyn Op>> {
        (self.activation == Activation::Identity).then(|| {
            Box::new(Conv2d {
                activation: act,
                ..*self
            }) as Box<dyn Op>
        })
    }

    fn units(&self) -> Option<usize> {
        Some(self.output.c)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn forward_cpu(&self, f: CpuForward) {
        let (w, b) = (f.params[0], f.params[1]);
        reference::conv2d_forward(f.inputs[0], w, b, f.output, f.rows, self);
    }

    // forward: y = act(b[o] + Σ W[o,c,u,v]·x[n,c,i·s+u−p,j·s+v−p])
    //   → dz = dy ⊙ f'(y); dW, db and dx as in reference.rs.
    fn backward_cpu(&self, b: CpuBackward) {
        if !b.skip_activation {
            activation_backward(self.activation, b.output, b.grad_output);
        }
        let dy = &*b.grad_output;
        let [grad_weight, grad_bias] = <[&mut [f32]; 2]>::try_from(b.grad_params)
            .unwrap_or_else(|_| panic!("conv2d has a weight and a bias"));
        reference::conv2d_backward_weight(dy, b.inputs[0], grad_weight, b.rows, self);
        reference::conv2d_backward_bias(dy, grad_bias, b.rows, self);
        if let Some(Some(dx)) = b.grad_inputs.into_iter().next() {
            reference::conv2d_backward_input(dy, b.params[0], dx, b.rows, self);
        }
    }

    fn forward_gpu(&self, f: GpuForward) -> Vec<Dispatch> {
        vec![f.kernels.conv2d_forward(
            f.ctx,
            self,
            f.batch,
            f.inputs[0],
            f.params[0],
            f.params[1],
            f.output,
        )]
    }

    fn backward_gpu(&self, b: GpuBackward) -> Vec<Dispatch> {
        let mut list = Vec::new();
        if !b.skip_activation && self.activation != Activation::Identity {
            list.push(b.kernels.activation_backward(
                b.ctx,
                self.activation,
                b.batch * self.output.len(),
                b.output,
                b.grad_output,
            ));
        }
        let (dy, x) = (b.grad_output, b.inputs[0]);
        list.push(
            b.kernels
                .conv2d_backward_weight(b.ctx, self, b.batch, dy, x, b.grad_params[0]),
        );
        list.push(
            b.kernels
                .conv2d_backward_bias(b.ctx, self, b.batch, dy, b.grad_params[1]),
        );
        if let Some(dx) = b.grad_inputs[0] {
            list.push(
                b.kernels
                    .conv2d_backward_input(b.ctx, self, b.batch, dy, b.params[0], dx),
            );
        }
        list
    }
}
