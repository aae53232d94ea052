//! Launchers of add.wgsl.

use crate::gpu::{elementwise_groups, Binding, Dispatch, GpuContext, Kernels, Shader, Slot::*};

pub const ADD: Shader = Shader {
    name: "add",
    parts: &[include_str!("../../../shaders/add.wgsl")],
};

/// Mirrors `AddParams` in add.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AddParams {
    len: u32,
    _pad: [u32; 3],
}

impl Kernels {
    fn add_params(ctx: &GpuContext, len: usize) -> wgpu::Buffer {
        let params = AddParams {
            len: len as u32,
            _pad: [0; 3],
        };
        ctx.uniform("add params", &params)
    }

    /// y = a + b over `len` elements.
    pub fn add_forward(
        &self,
        ctx: &GpuContext,
        len: usize,
        a: Binding,
        b: Binding,
        y: Binding,
    ) -> Dispatch {
        let uniform = Self::add_params(ctx, len);
        self.get(ctx, &ADD, "add_forward", &[Uniform, Read, Read, ReadWrite])
            .dispatch(
                ctx,
                &[Binding::whole(&uniform), a, b, y],
                elementwise_groups(len),
            )
    }

    /// dst = src over `len` elements.
    pub fn copy(&self, ctx: &GpuContext, len: usize, src: Binding, dst: Binding) -> Dispatch {
        let uniform = Self::add_params(ctx, len);
        self.get(ctx, &ADD, "copy", &[Uniform, Read, ReadWrite])
            .dispatch(
                ctx,
                &[Binding::whole(&uniform), src, dst],
                elementwise_groups(len),
            )
    }

    /// total += part over `len` elements.
    pub fn accumulate(
        &self,
        ctx: &GpuContext,
        len: usize,
        part: Binding,
        total: Binding,
    ) -> Dispatch {
        let uniform = Self::add_params(ctx, len);
        self.get(ctx, &ADD, "accumulate", &[Uniform, Read, ReadWrite])
            .dispatch(
                ctx,
                &[Binding::whole(&uniform), part, total],
                elementwise_groups(len),
            )
    }
}
