//! Launchers of dense.wgsl (the dense layer's products are matmul's).

use crate::gpu::{Binding, Dispatch, GpuContext, Kernels, Shader, Slot::*};

pub const DENSE: Shader = Shader {
    name: "dense",
    parts: &[include_str!("../../../shaders/dense.wgsl")],
};

/// Mirrors `BiasGradParams` in dense.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BiasGradParams {
    rows: u32,
    cols: u32,
    _pad: [u32; 2],
}

impl Kernels {
    /// db[n] = Σ_r dz[r, n]; dz is (rows, cols).
    pub fn bias_grad(
        &self,
        ctx: &GpuContext,
        rows: usize,
        cols: usize,
        dz: Binding,
        db: Binding,
    ) -> Dispatch {
        let params = BiasGradParams {
            rows: rows as u32,
            cols: cols as u32,
            _pad: [0; 2],
        };
        let uniform = ctx.uniform("bias grad params", &params);
        self.get(ctx, &DENSE, "bias_grad", &[Uniform, Read, ReadWrite])
            .dispatch(
                ctx,
                &[Binding::whole(&uniform), dz, db],
                [cols.div_ceil(64).max(1) as u32, 1, 1],
            )
    }
}
