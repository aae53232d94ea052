//! Launchers of dropout.wgsl.

use super::Dropout;
use crate::gpu::{elementwise_groups, Binding, Dispatch, GpuContext, Kernels, Shader, Slot::*};

pub const DROPOUT: Shader = Shader {
    name: "dropout",
    parts: &[
        include_str!("../../../shaders/philox.wgsl"),
        include_str!("../../../shaders/dropout.wgsl"),
    ],
};

/// Mirrors `DropoutParams` in dropout.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct DropoutParams {
    len: u32,
    threshold: u32,
    scale: f32,
    stream: u32,
    seed_lo: u32,
    seed_hi: u32,
    _pad: [u32; 2],
}

impl Kernels {
    fn dropout_params(ctx: &GpuContext, op: &Dropout, len: usize, seed: u64) -> wgpu::Buffer {
        let params = DropoutParams {
            len: len as u32,
            threshold: op.threshold(),
            scale: op.scale(),
            stream: op.stream,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            _pad: [0; 2],
        };
        ctx.uniform("dropout params", &params)
    }

    /// y = x ⊙ mask with a fresh mask for the step in `steps`' slot.
    #[allow(clippy::too_many_arguments)]
    pub fn dropout_train(
        &self,
        ctx: &GpuContext,
        op: &Dropout,
        len: usize,
        steps: &wgpu::Buffer,
        seed: u64,
        x: Binding,
        y: Binding,
        mask: Binding,
    ) -> Dispatch {
        let uniform = Self::dropout_params(ctx, op, len, seed);
        self.get(
            ctx,
            &DROPOUT,
            "dropout_train",
            &[Step, Uniform, Read, ReadWrite, ReadWrite],
        )
        .dispatch(
            ctx,
            &[Binding::step(steps), Binding::whole(&uniform), x, y, mask],
            elementwise_groups(len),
        )
    }

    /// y = x and mask = 1 (evaluation).
    pub fn dropout_eval(
        &self,
        ctx: &GpuContext,
        op: &Dropout,
        len: usize,
        x: Binding,
        y: Binding,
        mask: Binding,
    ) -> Dispatch {
        let uniform = Self::dropout_params(ctx, op, len, 0);
        self.get(
            ctx,
            &DROPOUT,
            "dropout_eval",
            &[Uniform, Read, ReadWrite, ReadWrite],
        )
        .dispatch(
            ctx,
            &[Binding::whole(&uniform), x, y, mask],
            elementwise_groups(len),
        )
    }

    /// dx = dy ⊙ mask.
    pub fn dropout_backward(
        &self,
        ctx: &GpuContext,
        op: &Dropout,
        len: usize,
        dy: Binding,
        mask: Binding,
        dx: Binding,
    ) -> Dispatch {
        let uniform = Self::dropout_params(ctx, op, len, 0);
        self.get(
            ctx,
            &DROPOUT,
            "dropout_backward",
            &[Uniform, Read, Read, ReadWrite],
        )
        .dispatch(
            ctx,
            &[Binding::whole(&uniform), dy, mask, dx],
            elementwise_groups(len),
        )
    }
}
