//! Launchers of activation.wgsl.

use super::Activation;
use crate::gpu::{elementwise_groups, Binding, Dispatch, GpuContext, Kernels, Shader, Slot::*};

pub const ACTIVATION: Shader = Shader {
    name: "activation",
    parts: &[include_str!("../../../shaders/activation.wgsl")],
};

/// Mirrors `ActivationParams` in activation.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ActivationParams {
    len: u32,
    act: u32,
    _pad: [u32; 2],
}

impl Kernels {
    fn activation_params(ctx: &GpuContext, act: Activation, len: usize) -> wgpu::Buffer {
        let params = ActivationParams {
            len: len as u32,
            act: act.code(),
            _pad: [0; 2],
        };
        ctx.uniform("activation params", &params)
    }

    /// y = f(x) over `len` elements.
    pub fn activation_forward(
        &self,
        ctx: &GpuContext,
        act: Activation,
        len: usize,
        x: Binding,
        y: Binding,
    ) -> Dispatch {
        let uniform = Self::activation_params(ctx, act, len);
        self.get(
            ctx,
            &ACTIVATION,
            "activation_forward",
            &[Uniform, Read, ReadWrite],
        )
        .dispatch(
            ctx,
            &[Binding::whole(&uniform), x, y],
            elementwise_groups(len),
        )
    }

    /// dy ← dy ⊙ f'(y) over `len` elements.
    pub fn activation_backward(
        &self,
        ctx: &GpuContext,
        act: Activation,
        len: usize,
        y: Binding,
        dy: Binding,
    ) -> Dispatch {
        let params = ActivationParams {
            len: len as u32,
            act: act.code(),
            _pad: [0; 2],
        };
        let uniform = ctx.uniform("activation params", &params);
        self.get(
            ctx,
            &ACTIVATION,
            "activation_backward",
            &[Uniform, Read, ReadWrite],
        )
        .dispatch(
            ctx,
            &[Binding::whole(&uniform), y, dy],
            elementwise_groups(len),
        )
    }

    /// dx = dy ⊙ f'(y) over `len` elements, dy left as it is.
    pub fn activation_backward_input(
        &self,
        ctx: &GpuContext,
        act: Activation,
        len: usize,
        y: Binding,
        dy: Binding,
        dx: Binding,
    ) -> Dispatch {
        let uniform = Self::activation_params(ctx, act, len);
        self.get(
            ctx,
            &ACTIVATION,
            "activation_backward_input",
            &[Uniform, Read, Read, ReadWrite],
        )
        .dispatch(
            ctx,
            &[Binding::whole(&uniform), y, dy, dx],
            elementwise_groups(len),
        )
    }
}
