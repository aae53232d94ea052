//! A dense (fully connected) layer with its activation fused:
//! y = act(x · Wᵀ + b), x (batch, inputs) — whatever came before, flattened
//! — W (outputs, inputs), b (outputs). Its products are matmul's three
//! forms, none with a materialised transpose:
//!   forward   y  = act(x · Wᵀ + b)   matmul NT with the bias + activation epilogue
//!   backward  dW = dzᵀ · x           matmul TN
//!             dx = dz · W            matmul NN
//! and its bias gradient db = Σ_rows dz is dense.wgsl's `bias_grad`.

mod launch;
pub mod reference;

use super::activation::reference::{activation_backward, bias_activation};
use super::matmul::reference::{matmul_nn, matmul_nt, matmul_tn};
use super::matmul::{MatmulForm, MatmulShape};
use super::{Activation, CpuBackward, CpuForward, GpuBackward, GpuForward, Init, Op, TensorDecl};
use crate::gpu::Dispatch;
use crate::graph::Shape;
use std::any::Any;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dense {
    pub inputs: usize,
    pub outputs: usize,
    pub activation: Activation,
}

impl Op for Dense {
    fn label(&self) -> String {
        self.activation.append_to(format!("dense{}", self.outputs))
    }

    fn output(&self) -> Shape {
        Shape {
            c: self.outputs,
            h: 1,
            w: 1,
        }
    }

    /// PyTorch's default: uniform in ±1/√inputs for W and b.
    fn params(&self) -> Vec<TensorDecl> {
        let bound = Init::Uniform(1.0 / (self.inputs as f32).sqrt());
        vec![
            TensorDecl {
                name: "weight",
                shape: vec![self.outputs, self.inputs],
                init: bound,
            },
            TensorDecl {
                name: "bias",
                shape: vec![self.outputs],
                init: bound,
            },
        ]
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn fused_with(&self, act: Activation) -> Option<Box<dyn Op>> {
        (self.activation == Activation::Identity).then(|| {
            Box::new(Dense {
                activation: act,
                ..*self
            }) as Box<dyn Op>
        })
    }

    fn units(&self) -> Option<usize> {
        Some(self.outputs)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn forward_cpu(&self, f: CpuForward) {
        let (w, b) = (f.params[0], f.params[1]);
        matmul_nt(f.inputs[0], w, f.output, f.rows, self.inputs, self.outputs);
        bias_activation(f.output, b, self.activation, self.outputs);
    }

    // forward: y[n,o] = act(Σ_i x[n,i]·W[o,i] + b[o])
    //   → dz = dy ⊙ f'(y);  dW[o,i] = Σ_n dz[n,o]·x[n,i];  db[o] = Σ_n dz[n,o];
    //     dx[n,i] = Σ_o dz[n,o]·W[o,i]
    fn backward_cpu(&self, b: CpuBackward) {
        if !b.skip_activation {
            activation_backward(self.activation, b.output, b.grad_output);
        }
        let dz = &*b.grad_output;
        let [grad_weight, grad_bias] = <[&mut [f32]; 2]>::try_from(b.grad_params)
            .unwrap_or_else(|_| panic!("dense has a weight and a bias"));
        matmul_tn(
            dz,
            b.inputs[0],
            grad_weight,
            self.outputs,
            b.rows,
            self.inputs,
        );
        reference::bias_grad(dz, grad_bias, self.outputs);
        if let Some(Some(dx)) = b.grad_inputs.into_iter().next() {
            matmul_nn(dz, b.params[0], dx, b.rows, self.outputs, self.inputs);
        }
    }

    fn forward_gpu(&self, f: GpuForward) -> Vec<Dispatch> {
        let shape = MatmulShape {
            m: f.batch,
            n: self.outputs,
            k: self.inputs,
        };
        vec![f.kernels.matmul(
            f.ctx,
            MatmulForm::NT,
            shape,
            f.inputs[0],
            f.params[0],
            Some(f.params[1]),
            self.activation,
            f.output,
        )]
    }

    fn backward_gpu(&self, b: GpuBackward) -> Vec<Dispatch> {
        let mut list = Vec::new();
        let (ctx, kernels, dz) = (b.ctx, b.kernels, b.grad_output);
        if !b.skip_activation && self.activation != Activation::Identity {
            // dz = dy ⊙ f'(y), in place
            let len = b.batch * self.outputs;
            list.push(kernels.activation_backward(ctx, self.activation, len, b.output, dz));
        }
        // dW (out,in) = dzᵀ · x
        let grad_weight = MatmulShape {
            m: self.outputs,
            n: self.inputs,
            k: b.batch,
        };
        let identity = Activation::Identity;
        let (tn, nn) = (MatmulForm::TN, MatmulForm::NN);
        let (x, grad_w) = (b.inputs[0], b.grad_params[0]);
        list.push(kernels.matmul(ctx, tn, grad_weight, dz, x, None, identity, grad_w));
        // db = Σ_rows dz
        list.push(kernels.bias_grad(ctx, b.batch, self.outputs, dz, b.grad_params[1]));
        // dx (batch,in) = dz · W
        if let Some(dx) = b.grad_inputs[0] {
            let shape = MatmulShape {
                m: b.batch,
                n: self.inputs,
                k: self.outputs,
            };
            list.push(kernels.matmul(ctx, nn, shape, dz, b.params[0], None, identity, dx));
        }
        list
    }
}
