//! Launcher of gather.wgsl.

use crate::gpu::{elementwise_groups, Binding, Dispatch, GpuContext, Kernels, Shader, Slot::*};

pub const GATHER: Shader = Shader {
    name: "gather",
    parts: &[include_str!("../../../shaders/gather.wgsl")],
};

/// Mirrors `GatherParams` in gather.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GatherParams {
    input_size: u32,
    rows: u32,
    _pad: [u32; 2],
}

impl Kernels {
    /// Gathers a batch of `rows` images of `input_size` pixels by the order.
    #[allow(clippy::too_many_arguments)]
    pub fn gather(
        &self,
        ctx: &GpuContext,
        steps: &wgpu::Buffer,
        input_size: usize,
        rows: usize,
        images: Binding,
        labels: Binding,
        order: Binding,
        batch_x: Binding,
        batch_labels: Binding,
    ) -> Dispatch {
        let params = GatherParams {
            input_size: input_size as u32,
            rows: rows as u32,
            _pad: [0; 2],
        };
        let uniform = ctx.uniform("gather params", &params);
        // Whole packed words per invocation where every image starts on one.
        let (entry, per_invocation) = if input_size.is_multiple_of(4) {
            ("gather4", 4)
        } else {
            ("gather", 1)
        };
        let kernel = self.get(
            ctx,
            &GATHER,
            entry,
            &[Step, Uniform, Read, Read, Read, ReadWrite, ReadWrite],
        );
        kernel.dispatch(
            ctx,
            &[
                Binding::step(steps),
                Binding::whole(&uniform),
                images,
                labels,
                order,
                batch_x,
                batch_labels,
            ],
            elementwise_groups(rows * input_size / per_invocation),
        )
    }
}
