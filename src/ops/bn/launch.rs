//! Launchers of bn.wgsl.

use super::BatchNorm;
use crate::gpu::{elementwise_groups, Binding, Dispatch, GpuContext, Kernels, Shader, Slot::*};

pub const BN: Shader = Shader {
    name: "bn",
    parts: &[include_str!("../../../shaders/bn.wgsl")],
};

/// Mirrors `BnParams` in bn.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BnParams {
    batch: u32,
    channels: u32,
    spatial: u32,
    act: u32,
    momentum: f32,
    eps: f32,
    act_grad: u32,
    _pad: u32,
}

/// Workgroups for the kernels that reduce over a channel: one per channel.
fn per_channel(bn: &BatchNorm) -> [u32; 3] {
    assert!(
        bn.shape.c <= 65535,
        "bn: {} channels, more than one dispatch row of workgroups (65535)",
        bn.shape.c
    );
    [bn.shape.c as u32, 1, 1]
}

impl Kernels {
    fn bn_params(ctx: &GpuContext, bn: &BatchNorm, batch: usize, act_grad: bool) -> wgpu::Buffer {
        let params = BnParams {
            batch: batch as u32,
            channels: bn.shape.c as u32,
            spatial: (bn.shape.h * bn.shape.w) as u32,
            act: bn.activation.code(),
            momentum: bn.momentum,
            eps: bn.eps,
            act_grad: u32::from(act_grad),
            _pad: 0,
        };
        ctx.uniform("bn params", &params)
    }

    /// Training: the batch's mean and inverse std per channel over the
    /// step's real rows (`steps` slot's batch_len) into `stats`, the rows
    /// into `rows`, and the running statistics updated.
    #[allow(clippy::too_many_arguments)]
    pub fn bn_stats(
        &self,
        ctx: &GpuContext,
        bn: &BatchNorm,
        batch: usize,
        steps: &wgpu::Buffer,
        x: Binding,
        stats: Binding,
        rows: Binding,
        running: [Binding; 3],
    ) -> Dispatch {
        let uniform = Self::bn_params(ctx, bn, batch, false);
        let [running_mean, running_var, tracked] = running;
        self.get(
            ctx,
            &BN,
            "bn_stats",
            &[
                Uniform, Step, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite,
            ],
        )
        .dispatch(
            ctx,
            &[
                Binding::whole(&uniform),
                Binding::step(steps),
                x,
                stats,
                rows,
                running_mean,
                running_var,
                tracked,
            ],
            per_channel(bn),
        )
    }

    /// Evaluation: the running statistics as `stats`, all `batch` rows.
    #[allow(clippy::too_many_arguments)]
    pub fn bn_eval_stats(
        &self,
        ctx: &GpuContext,
        bn: &BatchNorm,
        batch: usize,
        running_mean: Binding,
        running_var: Binding,
        stats: Binding,
        rows: Binding,
    ) -> Dispatch {
        let uniform = Self::bn_params(ctx, bn, batch, false);
        self.get(
            ctx,
            &BN,
            "bn_eval_stats",
            &[Uniform, Read, Read, ReadWrite, ReadWrite],
        )
        .dispatch(
            ctx,
            &[
                Binding::whole(&uniform),
                running_mean,
                running_var,
                stats,
                rows,
            ],
            [bn.shape.c.div_ceil(64) as u32, 1, 1],
        )
    }

    /// y = act(γ·(x − μ)·inv_std + β) over the whole batch.
    #[allow(clippy::too_many_arguments)]
    pub fn bn_normalise(
        &self,
        ctx: &GpuContext,
        bn: &BatchNorm,
        batch: usize,
        x: Binding,
        stats: Binding,
        gamma: Binding,
        beta: Binding,
        y: Binding,
    ) -> Dispatch {
        let uniform = Self::bn_params(ctx, bn, batch, false);
        self.get(
            ctx,
            &BN,
            "bn_normalise",
            &[Uniform, Read, Read, Read, Read, ReadWrite],
        )
        .dispatch(
            ctx,
            &[Binding::whole(&uniform), x, stats, gamma, beta, y],
            elementwise_groups(batch * bn.shape.len()),
        )
    }

    /// dz = dy ⊙ f'(y) in place over dy (when `act_grad`), dγ = Σ dz·x̂,
    /// dβ = Σ dz per channel over the rows the statistics covered.
    #[allow(clippy::too_many_arguments)]
    pub fn bn_backward_reduce(
        &self,
        ctx: &GpuContext,
        bn: &BatchNorm,
        batch: usize,
        act_grad: bool,
        x: Binding,
        y: Binding,
        dy: Binding,
        stats: Binding,
        rows: Binding,
        grad_gamma: Binding,
        grad_beta: Binding,
    ) -> Dispatch {
        let uniform = Self::bn_params(ctx, bn, batch, act_grad);
        self.get(
            ctx,
            &BN,
            "bn_backward_reduce",
            &[
                Uniform, Read, Read, ReadWrite, Read, Read, ReadWrite, ReadWrite,
            ],
        )
        .dispatch(
            ctx,
            &[
                Binding::whole(&uniform),
                x,
                y,
                dy,
                stats,
                rows,
                grad_gamma,
                grad_beta,
            ],
            per_channel(bn),
        )
    }

    /// dx from dz and the sums `bn_backward_reduce` left in dγ and dβ; zero
    /// on the padding rows.
    #[allow(clippy::too_many_arguments)]
    pub fn bn_backward_apply(
        &self,
        ctx: &GpuContext,
        bn: &BatchNorm,
        batch: usize,
        x: Binding,
        dz: Binding,
        stats: Binding,
        rows: Binding,
        gamma: Binding,
        grad_gamma: Binding,
        grad_beta: Binding,
        dx: Binding,
    ) -> Dispatch {
        let uniform = Self::bn_params(ctx, bn, batch, false);
        self.get(
            ctx,
            &BN,
            "bn_backward_apply",
            &[Uniform, Read, Read, Read, Read, Read, Read, Read, ReadWrite],
        )
        .dispatch(
            ctx,
            &[
                Binding::whole(&uniform),
                x,
                dz,
                stats,
                rows,
                gamma,
                grad_gamma,
                grad_beta,
                dx,
            ],
            elementwise_groups(batch * bn.shape.len()),
        )
    }
}
