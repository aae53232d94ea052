//! Launchers of optim.wgsl.

use crate::backend::Optimizer;
use crate::gpu::{elementwise_groups, Binding, Dispatch, GpuContext, Kernels, Shader, Slot::*};

pub const OPTIM: Shader = Shader {
    name: "optim",
    parts: &[include_str!("../../../shaders/optim.wgsl")],
};

/// Mirror `SgdParams` and `AdamParams` in optim.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SgdParams {
    len: u32,
    momentum: f32,
    weight_decay: f32,
    nesterov: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AdamParams {
    len: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    decoupled: u32,
    _pad: [u32; 2],
}

impl Kernels {
    /// One optimiser update of `len` parameters (a multiple of 4, as the
    /// parameter layout guarantees); the learning rate and step
    /// number come from the step slot. `state` is the velocity (SGD) or the
    /// first and second moments (Adam).
    #[allow(clippy::too_many_arguments)]
    pub fn optimizer_update(
        &self,
        ctx: &GpuContext,
        steps: &wgpu::Buffer,
        optimizer: &Optimizer,
        len: usize,
        params: Binding,
        grads: Binding,
        state: &[Binding],
    ) -> Dispatch {
        // optim.wgsl updates four parameters per invocation.
        assert!(
            len.is_multiple_of(4),
            "optimizer_update: {len} parameters, not a multiple of 4"
        );
        let groups = elementwise_groups(len / 4);
        match (optimizer, state) {
            (
                Optimizer::Sgd {
                    momentum,
                    weight_decay,
                    nesterov,
                },
                [velocity],
            ) => {
                let uniform = ctx.uniform(
                    "sgd params",
                    &SgdParams {
                        len: len as u32,
                        momentum: *momentum,
                        weight_decay: *weight_decay,
                        nesterov: u32::from(*nesterov),
                    },
                );
                self.get(
                    ctx,
                    &OPTIM,
                    "sgd_momentum",
                    &[Step, Uniform, ReadWrite, Read, ReadWrite],
                )
                .dispatch(
                    ctx,
                    &[
                        Binding::step(steps),
                        Binding::whole(&uniform),
                        params,
                        grads,
                        *velocity,
                    ],
                    groups,
                )
            }
            (Optimizer::Adam(cfg), [m, v]) => {
                let uniform = ctx.uniform(
                    "adam params",
                    &AdamParams {
                        len: len as u32,
                        beta1: cfg.beta1,
                        beta2: cfg.beta2,
                        eps: cfg.eps,
                        weight_decay: cfg.weight_decay,
                        decoupled: u32::from(cfg.decoupled),
                        _pad: [0; 2],
                    },
                );
                self.get(
                    ctx,
                    &OPTIM,
                    "adam",
                    &[Step, Uniform, ReadWrite, Read, ReadWrite, ReadWrite],
                )
                .dispatch(
                    ctx,
                    &[
                        Binding::step(steps),
                        Binding::whole(&uniform),
                        params,
                        grads,
                        *m,
                        *v,
                    ],
                    groups,
                )
            }
            _ => panic!("optimizer_update: wrong number of state vectors"),
        }
    }
}
