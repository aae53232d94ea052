//! Launchers of gap.wgsl.

use super::GlobalAvgPool;
use crate::gpu::{elementwise_groups, Binding, Dispatch, GpuContext, Kernels, Shader, Slot::*};

pub const GAP: Shader = Shader {
    name: "gap",
    parts: &[include_str!("../../../shaders/gap.wgsl")],
};

/// Mirrors `GapParams` in gap.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GapParams {
    planes: u32,
    area: u32,
    inv_area: f32,
    _pad: u32,
}

impl Kernels {
    fn gap_params(ctx: &GpuContext, op: &GlobalAvgPool, batch: usize) -> wgpu::Buffer {
        let params = GapParams {
            planes: (batch * op.input.c) as u32,
            area: op.area() as u32,
            inv_area: op.inv_area(),
            _pad: 0,
        };
        ctx.uniform("gap params", &params)
    }

    /// y[n,c] = the mean of x[n,c,·,·].
    pub fn gap_forward(
        &self,
        ctx: &GpuContext,
        op: &GlobalAvgPool,
        batch: usize,
        x: Binding,
        y: Binding,
    ) -> Dispatch {
        let uniform = Self::gap_params(ctx, op, batch);
        self.get(ctx, &GAP, "gap_forward", &[Uniform, Read, ReadWrite])
            .dispatch(
                ctx,
                &[Binding::whole(&uniform), x, y],
                elementwise_groups(batch * op.input.c),
            )
    }

    /// dx[n,c,·,·] = dy[n,c] / area.
    pub fn gap_backward(
        &self,
        ctx: &GpuContext,
        op: &GlobalAvgPool,
        batch: usize,
        dy: Binding,
        dx: Binding,
    ) -> Dispatch {
        let uniform = Self::gap_params(ctx, op, batch);
        self.get(ctx, &GAP, "gap_backward", &[Uniform, Read, ReadWrite])
            .dispatch(
                ctx,
                &[Binding::whole(&uniform), dy, dx],
                elementwise_groups(batch * op.input.len()),
            )
    }
}
