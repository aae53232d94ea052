//! Launchers of pool.wgsl.

use super::MaxPool;
use crate::gpu::{elementwise_groups, Binding, Dispatch, GpuContext, Kernels, Shader, Slot::*};

pub const POOL: Shader = Shader {
    name: "pool",
    parts: &[include_str!("../../../shaders/pool.wgsl")],
};

/// Mirrors `PoolParams` in pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PoolParams {
    batch: u32,
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    size: u32,
    stride: u32,
}

impl Kernels {
    fn pool_params(pool: &MaxPool, batch: usize) -> PoolParams {
        PoolParams {
            batch: batch as u32,
            channels: pool.input.c as u32,
            in_h: pool.input.h as u32,
            in_w: pool.input.w as u32,
            out_h: pool.output.h as u32,
            out_w: pool.output.w as u32,
            size: pool.size as u32,
            stride: pool.stride as u32,
        }
    }

    /// y and argmax of max-pooling x.
    pub fn maxpool_forward(
        &self,
        ctx: &GpuContext,
        pool: &MaxPool,
        batch: usize,
        x: Binding,
        y: Binding,
        argmax: Binding,
    ) -> Dispatch {
        let uniform = ctx.uniform("pool params", &Self::pool_params(pool, batch));
        self.get(
            ctx,
            &POOL,
            "maxpool_forward",
            &[Uniform, Read, ReadWrite, ReadWrite],
        )
        .dispatch(
            ctx,
            &[Binding::whole(&uniform), x, y, argmax],
            elementwise_groups(batch * pool.output.len()),
        )
    }

    /// dx from dy through the recorded winners.
    pub fn maxpool_backward(
        &self,
        ctx: &GpuContext,
        pool: &MaxPool,
        batch: usize,
        dy: Binding,
        argmax: Binding,
        dx: Binding,
    ) -> Dispatch {
        let uniform = ctx.uniform("pool params", &Self::pool_params(pool, batch));
        self.get(
            ctx,
            &POOL,
            "maxpool_backward",
            &[Uniform, Read, Read, ReadWrite],
        )
        .dispatch(
            ctx,
            &[Binding::whole(&uniform), dy, argmax, dx],
            elementwise_groups(batch * pool.input.len()),
        )
    }
}
