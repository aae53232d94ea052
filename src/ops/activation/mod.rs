//! Activations: fused into the dense or conv layer before them where they
//! can be (the matmul epilogue, the conv kernels), and a node of their own
//! where they cannot (after a pool or an add).
//!
//!   forward   y = f(x)
//!   backward  dx = dy ⊙ f'(x), with f' written in the output y:
//!             ReLU 1 if y > 0 else 0;  tanh 1 − y²;  sigmoid y·(1 − y)

mod launch;
pub mod reference;

use super::{CpuBackward, CpuForward, GpuBackward, GpuForward, Op};
use crate::gpu::Dispatch;
use crate::graph::Shape;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// A hidden layer's non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// f(x) = x (the output layer, whose logits go to softmax).
    #[value(skip)]
    Identity,
    Relu,
    Tanh,
    Sigmoid,
}

impl Activation {
    /// The code the shaders switch on (common.wgsl).
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Tanh => 2,
            Activation::Sigmoid => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
        }
    }

    /// The spec token of a hidden-layer activation.
    pub fn from_name(name: &str) -> Result<Activation> {
        match name {
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            "sigmoid" => Ok(Activation::Sigmoid),
            _ => bail!("unknown activation {name:?}"),
        }
    }

    /// A layer's token followed by this activation, as `inspect` and the
    /// errors name a layer with its activation fused: `conv16k3p1, relu`.
    pub fn append_to(self, token: String) -> String {
        match self {
            Activation::Identity => token,
            act => format!("{token}, {}", act.name()),
        }
    }

    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Relu => x.max(0.0),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        }
    }

    /// f'(x) written in terms of the output y = f(x).
    pub fn grad_from_output(self, y: f32) -> f32 {
        match self {
            Activation::Identity => 1.0,
            Activation::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Tanh => 1.0 - y * y,
            Activation::Sigmoid => y * (1.0 - y),
        }
    }
}

/// An activation that follows a node it cannot be fused into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivationOp {
    pub shape: Shape,
    pub act: Activation,
}

impl Op for ActivationOp {
    fn label(&self) -> String {
        self.act.name().to_string()
    }

    fn output(&self) -> Shape {
        self.shape
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn forward_cpu(&self, f: CpuForward) {
        reference::activation_forward(self.act, f.inputs[0], f.output);
    }

    // forward: y = f(x)  →  dx = dy ⊙ f'(y) (dy itself when the seed is
    // already with respect to the pre-activation x)
    fn backward_cpu(&self, b: CpuBackward) {
        if let Some(Some(dx)) = b.grad_inputs.into_iter().next() {
            dx.copy_from_slice(b.grad_output);
            if !b.skip_activation {
                reference::activation_backward(self.act, b.output, dx);
            }
        }
    }

    fn forward_gpu(&self, f: GpuForward) -> Vec<Dispatch> {
        let len = f.batch * self.shape.len();
        vec![f
            .kernels
            .activation_forward(f.ctx, self.act, len, f.inputs[0], f.output)]
    }

    fn backward_gpu(&self, b: GpuBackward) -> Vec<Dispatch> {
        let Some(dx) = b.grad_inputs[0] else {
            return Vec::new();
        };
        let len = b.batch * self.shape.len();
        if b.skip_activation {
            vec![b.kernels.copy(b.ctx, len, b.grad_output, dx)]
        } else {
            vec![b.kernels.activation_backward_input(
                b.ctx,
                self.act,
                len,
                b.output,
                b.grad_output,
                dx,
            )]
        }
    }
}
