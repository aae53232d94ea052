//! Batch normalisation, PyTorch's BatchNorm2d after a conv layer and
//! BatchNorm1d after a dense one (whose output is C×1×1: a feature is a
//! channel), with an activation fused into its output:
//!
//!   y = act(γ·(x − μ)/√(σ² + eps) + β)      per channel c, over rows × H × W
//!
//! Training: μ and σ² are the batch's (σ² biased), over its real rows only
//! (the GPU's last batch of an epoch may carry padding rows); the running
//! statistics follow PyTorch's definitions, momentum 0.1 and eps 1e-5:
//!   running_mean ← 0.9·running_mean + 0.1·μ
//!   running_var  ← 0.9·running_var + 0.1·σ²·m/(m − 1)   (unbiased, m values)
//!   num_batches_tracked += 1
//! Evaluation: μ and σ² are running_mean and running_var.
//!
//! Parameters `weight` (γ, ones) and `bias` (β, zeros); buffers
//! `running_mean` (zeros), `running_var` (ones), `num_batches_tracked` (a
//! scalar, 0: f32 in the flat buffer vector, int64 in model files, as
//! PyTorch keeps it). Saved for backward: `stats` (μ, then 1/√(σ² + eps),
//! per channel) and `rows` (the rows the statistics cover, and 1 if they
//! are the batch's, 0 if the running ones).

mod launch;
pub mod reference;

use super::activation::reference::activation_backward;
use super::{
    Activation, CpuBackward, CpuForward, Dtype, GpuBackward, GpuForward, Init, Mode, Op, SavedDecl,
    TensorDecl,
};
use crate::gpu::Dispatch;
use crate::graph::Shape;
use std::any::Any;

/// PyTorch's defaults.
pub const MOMENTUM: f32 = 0.1;
pub const EPS: f32 = 1e-5;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNorm {
    /// Its input's shape, which is its output's.
    pub shape: Shape,
    pub momentum: f32,
    pub eps: f32,
    pub activation: Activation,
}

impl BatchNorm {
    /// Batch norm over `shape`'s channels with PyTorch's momentum and eps.
    pub fn new(shape: Shape) -> BatchNorm {
        BatchNorm {
            shape,
            momentum: MOMENTUM,
            eps: EPS,
            activation: Activation::Identity,
        }
    }

    fn channel_tensor(&self, name: &'static str, init: Init) -> TensorDecl {
        TensorDecl {
            name,
            shape: vec![self.shape.c],
            init,
        }
    }
}

impl Op for BatchNorm {
    fn label(&self) -> String {
        self.activation.append_to("bn".into())
    }

    fn output(&self) -> Shape {
        self.shape
    }

    fn params(&self) -> Vec<TensorDecl> {
        vec![
            self.channel_tensor("weight", Init::Ones),
            self.channel_tensor("bias", Init::Zeros),
        ]
    }

    fn buffers(&self) -> Vec<TensorDecl> {
        vec![
            self.channel_tensor("running_mean", Init::Zeros),
            self.channel_tensor("running_var", Init::Ones),
            TensorDecl {
                name: "num_batches_tracked",
                shape: Vec::new(),
                init: Init::Zeros,
            },
        ]
    }

    fn saved(&self) -> Vec<SavedDecl> {
        vec![
            SavedDecl {
                name: "stats",
                len: 2 * self.shape.c,
                per_example: false,
                dtype: Dtype::F32,
            },
            SavedDecl {
                name: "rows",
                len: 2,
                per_example: false,
                dtype: Dtype::U32,
            },
        ]
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn fused_with(&self, act: Activation) -> Option<Box<dyn Op>> {
        (self.activation == Activation::Identity).then(|| {
            Box::new(BatchNorm {
                activation: act,
                ..*self
            }) as Box<dyn Op>
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn forward_cpu(&self, f: CpuForward) {
        let (x, rows) = (f.inputs[0], f.rows);
        let [stats, saved_rows] = f.saved else {
            panic!("bn saves its statistics and rows")
        };
        let [running_mean, running_var, tracked] = <[&mut [f32]; 3]>::try_from(f.buffers)
            .unwrap_or_else(|_| panic!("bn has three buffers"));
        let batch_stats = f.mode == Mode::Train;
        if batch_stats {
            let (mean, variance) = reference::batch_statistics(self, x, rows);
            reference::stats_of(self, &mean, &variance, stats.f32s_mut());
            let m = rows * self.shape.h * self.shape.w;
            let tracked = &mut tracked[0];
            reference::update_running(
                self,
                &mean,
                &variance,
                m,
                running_mean,
                running_var,
                tracked,
            );
        } else {
            reference::stats_of(self, running_mean, running_var, stats.f32s_mut());
        }
        saved_rows
            .u32s_mut()
            .copy_from_slice(&[rows as u32, u32::from(batch_stats)]);
        let (gamma, beta) = (f.params[0], f.params[1]);
        reference::normalise(self, x, stats.f32s(), gamma, beta, f.output, rows);
    }

    // forward: y = act(z), z = γ·x̂ + β, x̂ = (x − μ)·inv_std, μ and σ² over
    // the m = rows·H·W values of each channel
    //   → dz = dy ⊙ f'(y);  dγ = Σ dz·x̂;  dβ = Σ dz;
    //     dx = γ·inv_std·(dz − Σdz/m − x̂·Σ(dz·x̂)/m)  (μ, σ² the batch's)
    //     dx = γ·inv_std·dz                          (running: constants)
    fn backward_cpu(&self, b: CpuBackward) {
        if !b.skip_activation {
            activation_backward(self.activation, b.output, b.grad_output);
        }
        let dz = &*b.grad_output;
        let stats = b.saved[0].f32s();
        let &[rows, batch_stats] = b.saved[1].u32s() else {
            panic!("bn saves two row facts")
        };
        let rows = rows as usize;
        let [grad_gamma, grad_beta] = <[&mut [f32]; 2]>::try_from(b.grad_params)
            .unwrap_or_else(|_| panic!("bn has a weight and a bias"));
        let x = b.inputs[0];
        reference::backward_reduce(self, x, dz, stats, grad_gamma, grad_beta, rows);
        if let Some(Some(dx)) = b.grad_inputs.into_iter().next() {
            reference::backward_apply(
                self,
                x,
                dz,
                stats,
                b.params[0],
                grad_gamma,
                grad_beta,
                dx,
                rows,
                batch_stats == 1,
            );
        }
    }

    fn forward_gpu(&self, f: GpuForward) -> Vec<Dispatch> {
        let (ctx, kernels, batch) = (f.ctx, f.kernels, f.batch);
        let (x, stats, rows) = (f.inputs[0], f.saved[0], f.saved[1]);
        let [running_mean, running_var, tracked] =
            <[_; 3]>::try_from(f.buffers).unwrap_or_else(|_| panic!("bn has three buffers"));
        let statistics = match f.mode {
            Mode::Train => {
                let steps = f.steps.expect(
                    "bn's training forward needs the step slots: its statistics cover the step's real rows",
                );
                let running = [running_mean, running_var, tracked];
                kernels.bn_stats(ctx, self, batch, steps, x, stats, rows, running)
            }
            Mode::Eval => {
                kernels.bn_eval_stats(ctx, self, batch, running_mean, running_var, stats, rows)
            }
        };
        let (gamma, beta) = (f.params[0], f.params[1]);
        vec![
            statistics,
            kernels.bn_normalise(ctx, self, batch, x, stats, gamma, beta, f.output),
        ]
    }

    fn backward_gpu(&self, b: GpuBackward) -> Vec<Dispatch> {
        let (ctx, kernels, batch) = (b.ctx, b.kernels, b.batch);
        let (x, stats, rows) = (b.inputs[0], b.saved[0], b.saved[1]);
        let (grad_gamma, grad_beta) = (b.grad_params[0], b.grad_params[1]);
        let act_grad = !b.skip_activation && self.activation != Activation::Identity;
        let mut list = vec![kernels.bn_backward_reduce(
            ctx,
            self,
            batch,
            act_grad,
            x,
            b.output,
            b.grad_output,
            stats,
            rows,
            grad_gamma,
            grad_beta,
        )];
        if let Some(dx) = b.grad_inputs[0] {
            list.push(kernels.bn_backward_apply(
                ctx,
                self,
                batch,
                x,
                b.grad_output,
                stats,
                rows,
                b.params[0],
                grad_gamma,
                grad_beta,
                dx,
            ));
        }
        list
    }
}
