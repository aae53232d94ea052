//! Launcher of gather.wgsl.

use super::Augment;
use crate::data::{InputScale, MAX_CHANNELS};
use crate::gpu::{elementwise_groups, Binding, Dispatch, GpuContext, Kernels, Shader, Slot::*};
use crate::graph::Shape;
use std::ops::Range;

pub const GATHER: Shader = Shader {
    name: "gather",
    parts: &[
        include_str!("../../../shaders/philox.wgsl"),
        include_str!("../../../shaders/gather.wgsl"),
    ],
};

/// Mirrors `GatherParams` in gather.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GatherParams {
    input_size: u32,
    rows: u32,
    width: u32,
    height: u32,
    plane: u32,
    first_image: u32,
    end_image: u32,
    crop: u32,
    flip: u32,
    seed_lo: u32,
    seed_hi: u32,
    _pad: u32,
    mean: [f32; MAX_CHANNELS],
    inv_std: [f32; MAX_CHANNELS],
}

/// What the gather makes of each image (see `reference::GatherSettings`;
/// the step comes from the step slot).
#[derive(Debug, Clone)]
pub struct GatherInput<'a> {
    pub shape: Shape,
    pub scale: &'a InputScale,
    pub augment: Augment,
    pub seed: u64,
}

impl Kernels {
    /// Gathers the rows of a batch of `rows` whose images lie in `chunk`
    /// (image indices) from `images`, that chunk's pixels; the dispatch of
    /// the chunk starting at image 0 also zeroes the padding rows.
    #[allow(clippy::too_many_arguments)]
    pub fn gather(
        &self,
        ctx: &GpuContext,
        steps: &wgpu::Buffer,
        input: &GatherInput,
        rows: usize,
        chunk: Range<usize>,
        images: Binding,
        labels: Binding,
        order: Binding,
        batch_x: Binding,
        batch_labels: Binding,
    ) -> Dispatch {
        let Shape { c, h, w } = input.shape;
        assert!(
            c <= MAX_CHANNELS,
            "the gather normalises at most {MAX_CHANNELS} channels"
        );
        let mut mean = [0.0; MAX_CHANNELS];
        let mut inv_std = [1.0; MAX_CHANNELS];
        mean[..c].copy_from_slice(&input.scale.mean);
        inv_std[..c].copy_from_slice(&input.scale.inv_std);
        let input_size = c * h * w;
        let params = GatherParams {
            input_size: input_size as u32,
            rows: rows as u32,
            width: w as u32,
            height: h as u32,
            plane: (h * w) as u32,
            first_image: chunk.start as u32,
            end_image: chunk.end as u32,
            crop: input.augment.crop,
            flip: u32::from(input.augment.flip),
            seed_lo: input.seed as u32,
            seed_hi: (input.seed >> 32) as u32,
            _pad: 0,
            mean,
            inv_std,
        };
        let uniform = ctx.uniform("gather params", &params);
        // Whole packed words per invocation where every image starts on one,
        // a word never straddles two channels, and nothing moves pixels.
        let words = input_size.is_multiple_of(4) && (h * w).is_multiple_of(4);
        let (entry, per_invocation) = if words && input.augment.is_off() {
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
