//! The conv2d launchers: `ConvParams` (mirrored in conv2d.wgsl), one
//! launcher per pass and version, and the per-shape choice between versions
//! by measurement.

use super::{Conv2d, ConvPass, ConvVersion};
use crate::gpu::{
    choose, elementwise_groups, Binding, Dispatch, GpuContext, Kernels, Shader, Slot::*,
};
use crate::graph::Shape;

const CONV2D_WGSL: &str = include_str!("../../../shaders/conv2d.wgsl");

/// The direct kernels (the GPU reference) and the implicit GEMMs.
pub const CONV2D: Shader = Shader {
    name: "conv2d",
    parts: &[CONV2D_WGSL],
};

/// The subgroup versions for software adapters, built on conv2d.wgsl.
pub const CONV2D_SUBGROUP: Shader = Shader {
    name: "conv2d_subgroup",
    parts: &[
        CONV2D_WGSL,
        include_str!("../../../shaders/software/conv2d_subgroup.wgsl"),
    ],
};

/// The fastest of `launch(version)` over every conv version the device has
/// (and the self-test did not refuse) for `pass`, measured now on the buffers it will run on (the versions
/// agree bit for bit, so the choice changes only the time a step takes).
pub fn fastest_conv(
    ctx: &GpuContext,
    kernels: &Kernels,
    pass: ConvPass,
    conv: &Conv2d,
    batch: usize,
    launch: impl Fn(ConvVersion) -> Dispatch,
) -> Dispatch {
    // Versions the self-test refused are left out; the direct kernel, the
    // GPU reference, stays if every version was.
    let mut versions: Vec<ConvVersion> = ConvVersion::available(ctx, pass)
        .into_iter()
        .filter(|&v| !kernels.refused.conv.contains(&(pass, v)))
        .collect();
    if versions.is_empty() {
        versions.push(ConvVersion::Direct);
    }
    let shape = format!(
        "conv2d {pass:?} batch {batch} {}→{} k{} s{} p{}",
        conv.input, conv.output, conv.kernel, conv.stride, conv.padding
    );
    crate::status::set(|| {
        let pass = match pass {
            ConvPass::Forward => "forward",
            ConvPass::BackwardInput => "input-gradient",
            ConvPass::BackwardWeight => "weight-gradient",
        };
        format!(
            "tuning {} on {}: timing {} versions of its {pass} pass",
            crate::ops::Op::label(conv),
            conv.input,
            versions.len()
        )
    });
    choose(ctx, kernels, &shape, &versions, launch)
}

/// Workgroups of an implicit-GEMM conv kernel writing `batch` maps of
/// shape `out`: 4 pixels × 4 channels per invocation, 64 invocations per
/// group. None when the pixels need more groups than one dispatch allows
/// (the direct kernel then runs instead).
fn gemm_groups(batch: usize, out: Shape) -> Option<[u32; 3]> {
    let pixel_groups = (batch * out.h * out.w).div_ceil(4 * 64);
    (pixel_groups <= 65535).then(|| [pixel_groups as u32, out.c.div_ceil(4) as u32, 1])
}

/// Workgroups of a subgroup conv kernel writing `batch` maps of shape
/// `out`: 32 pixels × `channels` channels per group of 8 lanes. None when
/// the pixels need more groups than one dispatch allows.
fn subgroup_groups(batch: usize, out: Shape, channels: usize) -> Option<[u32; 3]> {
    let pixel_groups = (batch * out.h * out.w).div_ceil(32);
    (pixel_groups <= 65535).then(|| [pixel_groups as u32, out.c.div_ceil(channels) as u32, 1])
}

/// Mirrors `ConvParams` in conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ConvParams {
    batch: u32,
    in_c: u32,
    in_h: u32,
    in_w: u32,
    out_c: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    stride: u32,
    padding: u32,
    act: u32,
    _pad: u32,
}

impl ConvParams {
    fn new(conv: &Conv2d, batch: usize) -> ConvParams {
        ConvParams {
            batch: batch as u32,
            in_c: conv.input.c as u32,
            in_h: conv.input.h as u32,
            in_w: conv.input.w as u32,
            out_c: conv.output.c as u32,
            out_h: conv.output.h as u32,
            out_w: conv.output.w as u32,
            kernel: conv.kernel as u32,
            stride: conv.stride as u32,
            padding: conv.padding as u32,
            act: conv.activation.code(),
            _pad: 0,
        }
    }
}

impl Kernels {
    /// y = act(conv(x, W) + b) over a batch, with whichever version runs
    /// this shape faster on this adapter, measured now on these buffers
    /// (see tune.rs; the versions agree bit for bit).
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_forward(
        &self,
        ctx: &GpuContext,
        conv: &Conv2d,
        batch: usize,
        x: Binding,
        w: Binding,
        b: Binding,
        y: Binding,
    ) -> Dispatch {
        fastest_conv(ctx, self, ConvPass::Forward, conv, batch, |version| {
            self.conv2d_forward_version(ctx, version, conv, batch, x, w, b, y)
        })
    }

    /// y = act(conv(x, W) + b) over a batch, computed by `version`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_forward_version(
        &self,
        ctx: &GpuContext,
        version: ConvVersion,
        conv: &Conv2d,
        batch: usize,
        x: Binding,
        w: Binding,
        b: Binding,
        y: Binding,
    ) -> Dispatch {
        let uniform = ctx.uniform("conv params", &ConvParams::new(conv, batch));
        let bindings = [Binding::whole(&uniform), x, w, b, y];
        let gemm = gemm_groups(batch, conv.output);
        let sub = subgroup_groups(batch, conv.output, 32);
        let subgroups = ConvVersion::Subgroup.is_available(ctx, ConvPass::Forward);
        let (shader, entry, groups) = match (version, gemm, sub) {
            (ConvVersion::ImplicitGemm, Some(groups), _) => {
                (&CONV2D, "conv2d_forward_gemm", groups)
            }
            (ConvVersion::Subgroup, _, Some(groups)) if subgroups => {
                (&CONV2D_SUBGROUP, "conv2d_forward_sub", groups)
            }
            _ => (
                &CONV2D,
                "conv2d_forward",
                elementwise_groups(batch * conv.output.len()),
            ),
        };
        self.get(ctx, shader, entry, &[Uniform, Read, Read, Read, ReadWrite])
            .dispatch(ctx, &bindings, groups)
    }

    /// dx from dy (already through the activation's derivative) and W.
    /// The faster version on this shape, measured as for `conv2d_forward`.
    pub fn conv2d_backward_input(
        &self,
        ctx: &GpuContext,
        conv: &Conv2d,
        batch: usize,
        dy: Binding,
        w: Binding,
        dx: Binding,
    ) -> Dispatch {
        fastest_conv(ctx, self, ConvPass::BackwardInput, conv, batch, |version| {
            self.conv2d_backward_input_version(ctx, version, conv, batch, dy, w, dx)
        })
    }

    /// dx from dy (already through the activation's derivative) and W,
    /// computed by `version`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_backward_input_version(
        &self,
        ctx: &GpuContext,
        version: ConvVersion,
        conv: &Conv2d,
        batch: usize,
        dy: Binding,
        w: Binding,
        dx: Binding,
    ) -> Dispatch {
        let uniform = ctx.uniform("conv params", &ConvParams::new(conv, batch));
        let bindings = [Binding::whole(&uniform), dy, w, dx];
        let gemm = gemm_groups(batch, conv.input);
        let sub = subgroup_groups(batch, conv.input, 16);
        let subgroups = ConvVersion::Subgroup.is_available(ctx, ConvPass::BackwardInput);
        let (shader, entry, groups) = match (version, gemm, sub) {
            (ConvVersion::ImplicitGemm, Some(groups), _) => {
                (&CONV2D, "conv2d_backward_input_gemm", groups)
            }
            (ConvVersion::Subgroup, _, Some(groups)) if subgroups => {
                (&CONV2D_SUBGROUP, "conv2d_backward_input_sub", groups)
            }
            _ => (
                &CONV2D,
                "conv2d_backward_input",
                elementwise_groups(batch * conv.input.len()),
            ),
        };
        self.get(ctx, shader, entry, &[Uniform, Read, Read, ReadWrite])
            .dispatch(ctx, &bindings, groups)
    }

    /// dW from dy and x, with the faster version on this shape, measured as
    /// for `conv2d_forward`.
    pub fn conv2d_backward_weight(
        &self,
        ctx: &GpuContext,
        conv: &Conv2d,
        batch: usize,
        dy: Binding,
        x: Binding,
        dw: Binding,
    ) -> Dispatch {
        fastest_conv(
            ctx,
            self,
            ConvPass::BackwardWeight,
            conv,
            batch,
            |version| self.conv2d_backward_weight_version(ctx, version, conv, batch, dy, x, dw),
        )
    }

    /// dW from dy and x, computed by `version`: one workgroup per weight
    /// (direct) or per 16 output channels × 4 taps of a kernel row
    /// (implicit GEMM).
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_backward_weight_version(
        &self,
        ctx: &GpuContext,
        version: ConvVersion,
        conv: &Conv2d,
        batch: usize,
        dy: Binding,
        x: Binding,
        dw: Binding,
    ) -> Dispatch {
        let uniform = ctx.uniform("conv params", &ConvParams::new(conv, batch));
        let taps = conv.input.c * conv.kernel * conv.kernel;
        let (entry, groups) = match version {
            // There is no subgroup version of this pass (see conv2d_subgroup.wgsl).
            ConvVersion::Direct | ConvVersion::Subgroup => {
                ("conv2d_backward_weight", conv.output.c * taps)
            }
            ConvVersion::ImplicitGemm => (
                "conv2d_backward_weight_gemm",
                conv.output.c.div_ceil(16) * conv.input.c * conv.kernel * conv.kernel.div_ceil(4),
            ),
        };
        let kernel = self.get(ctx, &CONV2D, entry, &[Uniform, Read, Read, ReadWrite]);
        let x_groups = groups.min(65535);
        kernel.dispatch(
            ctx,
            &[Binding::whole(&uniform), dy, x, dw],
            [x_groups as u32, groups.div_ceil(x_groups) as u32, 1],
        )
    }

    /// db from dy: one workgroup per output channel.
    pub fn conv2d_backward_bias(
        &self,
        ctx: &GpuContext,
        conv: &Conv2d,
        batch: usize,
        dy: Binding,
        db: Binding,
    ) -> Dispatch {
        let uniform = ctx.uniform("conv params", &ConvParams::new(conv, batch));
        self.get(
            ctx,
            &CONV2D,
            "conv2d_backward_bias",
            &[Uniform, Read, ReadWrite],
        )
        .dispatch(
            ctx,
            &[Binding::whole(&uniform), dy, db],
            [conv.output.c as u32, 1, 1],
        )
    }
}
