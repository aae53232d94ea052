//! C = op(A)·op(B) with an optional bias + activation epilogue: the kernels
//! the dense layer is built on (`shaders/matmul.wgsl`, and the variants for
//! software adapters in `shaders/software/`). Not a layer of its own.
//!
//! Version 2 (tiled) is the hardware path; versions 3 and 4 are written for
//! adapters that run on the CPU; version 1 (naive) is the GPU reference the
//! others are checked against, and `reference.rs` the CPU one.

mod launch;
pub mod reference;

use crate::gpu::limits::{self, WorkgroupNeeds};
use crate::gpu::GpuContext;

/// Which operands of C = op(A)·op(B) are transposed (see shaders/matmul.wgsl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulForm {
    /// C = A·B
    NN,
    /// C = Aᵀ·B
    TN,
    /// C = A·Bᵀ
    NT,
}

/// Which matmul kernel a launch uses (see shaders/matmul.wgsl).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MatmulVersion {
    /// Version 1: one invocation per output, the reference.
    Naive,
    /// Version 2: 64×64 workgroup tiles, 4×4 outputs per invocation.
    Tiled,
    /// Version 3: 4×8 outputs per invocation from registers alone.
    Registers,
    /// Version 4: 32×4 outputs per lane, a subgroup of 8 lanes sharing its
    /// loads of A (shaders/software/matmul_subgroup.wgsl). Needs subgroups of exactly 8, and
    /// runs shapes whose vec4 loads it cannot make as version 3.
    Subgroup,
}

impl MatmulVersion {
    /// Every version, in the order the bench and the tests list them.
    pub const ALL: [MatmulVersion; 4] = [
        MatmulVersion::Naive,
        MatmulVersion::Tiled,
        MatmulVersion::Registers,
        MatmulVersion::Subgroup,
    ];

    /// What one workgroup of the version needs (see shaders/matmul.wgsl
    /// and shaders/software/).
    pub fn needs(self) -> WorkgroupNeeds {
        let (invocations, storage_bytes) = match self {
            MatmulVersion::Naive => (256, 0),
            // Two 16×64 tiles of f32.
            MatmulVersion::Tiled => (256, 2 * 1024 * 4),
            MatmulVersion::Registers => (64, 0),
            MatmulVersion::Subgroup => (8, 0),
        };
        WorkgroupNeeds {
            invocations,
            storage_bytes,
        }
    }

    /// Whether this device can run the version: it fits the device's
    /// workgroup limits, and version 4 is written for subgroups of 8 lanes
    /// (one workgroup is one subgroup).
    pub fn is_available(self, ctx: &GpuContext) -> bool {
        let subgroups = match self {
            MatmulVersion::Subgroup => ctx.fixed_subgroup_size() == Some(8),
            _ => true,
        };
        subgroups && limits::fits(ctx, self.needs())
    }

    /// The versions this device can run.
    pub fn available(ctx: &GpuContext) -> Vec<MatmulVersion> {
        MatmulVersion::ALL
            .into_iter()
            .filter(|v| v.is_available(ctx))
            .collect()
    }

    /// Whether version 4's vec4 loads fit the shape: they run along n for
    /// A·B and Aᵀ·B and along k for A·Bᵀ, which must be multiples of 4.
    fn subgroup_fits(form: MatmulForm, shape: MatmulShape) -> bool {
        match form {
            MatmulForm::NN | MatmulForm::TN => shape.n.is_multiple_of(4),
            MatmulForm::NT => shape.k.is_multiple_of(4),
        }
    }

    /// The faster version on this adapter: workgroup tiles on hardware GPUs;
    /// on adapters that run on the CPU, shared subgroup loads where there
    /// are subgroups of 8, else registers alone (see the shaders' headers).
    pub fn for_adapter(ctx: &GpuContext) -> MatmulVersion {
        if ctx.is_hardware() {
            MatmulVersion::Tiled
        } else if MatmulVersion::Subgroup.is_available(ctx) {
            MatmulVersion::Subgroup
        } else {
            MatmulVersion::Registers
        }
    }
}

/// C is (m, n); the shared dimension is k.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    epilogue: u32,
}
