//! The matmul launchers: one parameter struct (mirroring `MatmulParams` in
//! matmul.wgsl) and the choice of kernel version per launch.

use super::{MatmulForm, MatmulShape, MatmulVersion};
use crate::gpu::{Binding, Dispatch, GpuContext, Kernels, Shader, Slot};
use crate::ops::Activation;

const MATMUL_WGSL: &str = include_str!("../../../shaders/matmul.wgsl");
const REGISTERS_WGSL: &str = include_str!("../../../shaders/software/matmul_registers.wgsl");

/// Versions 1 and 2: the reference and the hardware path.
pub const MATMUL: Shader = Shader {
    name: "matmul",
    parts: &[MATMUL_WGSL],
};

/// Version 3, for adapters that run on the CPU.
pub const MATMUL_REGISTERS: Shader = Shader {
    name: "matmul_registers",
    parts: &[MATMUL_WGSL, REGISTERS_WGSL],
};

/// Version 4, built on version 3's helpers; only devices with subgroups
/// can compile it, so it is a module of its own.
pub const MATMUL_SUBGROUP: Shader = Shader {
    name: "matmul_subgroup",
    parts: &[
        MATMUL_WGSL,
        REGISTERS_WGSL,
        include_str!("../../../shaders/software/matmul_subgroup.wgsl"),
    ],
};

/// uniform params, A, B, bias, C
const SLOTS: [Slot; 5] = [
    Slot::Uniform,
    Slot::Read,
    Slot::Read,
    Slot::Read,
    Slot::ReadWrite,
];

/// The entry point of a version (by its prefix) for a form.
fn entry_point(prefix: &str, form: MatmulForm) -> &'static str {
    match (prefix, form) {
        ("matmul_naive", MatmulForm::NN) => "matmul_naive_nn",
        ("matmul_naive", MatmulForm::TN) => "matmul_naive_tn",
        ("matmul_naive", MatmulForm::NT) => "matmul_naive_nt",
        ("matmul", MatmulForm::NN) => "matmul_nn",
        ("matmul", MatmulForm::TN) => "matmul_tn",
        ("matmul", MatmulForm::NT) => "matmul_nt",
        ("matmul_reg", MatmulForm::NN) => "matmul_reg_nn",
        ("matmul_reg", MatmulForm::TN) => "matmul_reg_tn",
        ("matmul_reg", MatmulForm::NT) => "matmul_reg_nt",
        ("matmul_sub", MatmulForm::NN) => "matmul_sub_nn",
        ("matmul_sub", MatmulForm::TN) => "matmul_sub_tn",
        ("matmul_sub", MatmulForm::NT) => "matmul_sub_nt",
        _ => unreachable!("no matmul version {prefix}"),
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    epilogue: u32,
}

impl Kernels {
    /// c = act(op(a)·op(b) + bias), with the version that runs this shape
    /// fastest on this adapter (measured now, or found in the tuning cache).
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        ctx: &GpuContext,
        form: MatmulForm,
        shape: MatmulShape,
        a: Binding,
        b: Binding,
        bias: Option<Binding>,
        act: Activation,
        c: Binding,
    ) -> Dispatch {
        // Today's version first (kept on a tie), then every other that this
        // adapter runs and the self-test did not refuse; the naive
        // reference only when nothing else is left.
        let mut versions = vec![self.matmul_default];
        versions.extend(MatmulVersion::available(ctx).into_iter().filter(|&v| {
            v != self.matmul_default
                && v != MatmulVersion::Naive
                && !self.refused.matmul.contains(&v)
        }));
        let key = format!("matmul {form:?} {}x{}x{}", shape.m, shape.n, shape.k);
        crate::gpu::choose(ctx, self, &key, &versions, |version| {
            self.matmul_version(ctx, version, form, shape, a, b, bias, act, c)
        })
    }

    /// c = act(op(a)·op(b) + bias), with the kernel `version`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_version(
        &self,
        ctx: &GpuContext,
        version: MatmulVersion,
        form: MatmulForm,
        shape: MatmulShape,
        a: Binding,
        b: Binding,
        bias: Option<Binding>,
        act: Activation,
        c: Binding,
    ) -> Dispatch {
        let params = MatmulParams {
            m: shape.m as u32,
            n: shape.n as u32,
            k: shape.k as u32,
            epilogue: u32::from(bias.is_some()) | (act.code() << 8),
        };
        let uniform = ctx.uniform("matmul params", &params);
        let version = match version {
            MatmulVersion::Subgroup if !MatmulVersion::subgroup_fits(form, shape) => {
                MatmulVersion::Registers
            }
            version => version,
        };
        // Each kernel's block of C per workgroup: (rows, columns).
        assert!(
            version.is_available(ctx),
            "matmul {version:?} needs subgroups of 8 lanes, which this device lacks"
        );
        // Each version's file, entry-point prefix and block of C per
        // workgroup: (rows, columns).
        let (shader, prefix, tile) = match version {
            MatmulVersion::Naive => (&MATMUL, "matmul_naive", (16, 16)),
            MatmulVersion::Tiled => (&MATMUL, "matmul", (64, 64)),
            MatmulVersion::Registers => (&MATMUL_REGISTERS, "matmul_reg", (32, 64)),
            MatmulVersion::Subgroup => (&MATMUL_SUBGROUP, "matmul_sub", (32, 32)),
        };
        let entry = entry_point(prefix, form);
        let kernel = self.get(ctx, shader, entry, &SLOTS);
        let bias = bias.unwrap_or(Binding::whole(&self.placeholder));
        let groups = [
            shape.n.div_ceil(tile.1).max(1) as u32,
            shape.m.div_ceil(tile.0).max(1) as u32,
            1,
        ];
        kernel.dispatch(ctx, &[Binding::whole(&uniform), a, b, bias, c], groups)
    }
}
