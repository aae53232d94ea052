//! Shader modules and pipelines, compiled on first use and kept for the
//! device's lifetime. Each op declares its WGSL file as a [`Shader`] beside
//! its launchers (`src/ops/<op>/launch.rs`); nothing here knows an op.

use super::kernel::{Kernel, Slot};
use super::tune_cache::TuneCache;
use super::GpuContext;
use crate::ops::conv2d::{ConvPass, ConvVersion};
use crate::ops::matmul::MatmulVersion;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Definitions every shader file shares, prepended to each.
pub const COMMON: &str = include_str!("../../shaders/common.wgsl");

/// One compiled module: common.wgsl followed by `parts` (a variant's file
/// comes after the file whose bindings and helpers it builds on).
#[derive(Debug, Clone, Copy)]
pub struct Shader {
    pub name: &'static str,
    pub parts: &'static [&'static str],
}

impl Shader {
    /// The WGSL text the device compiles.
    pub fn source(&self) -> String {
        let mut text = String::from(COMMON);
        for part in self.parts {
            text.push('\n');
            text.push_str(part);
        }
        text
    }
}

/// Every pipeline the engine has built on one device, by entry point.
pub struct Kernels {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    kernels: Mutex<HashMap<&'static str, Arc<Kernel>>>,
    /// The matmul version the dense layer launches on this adapter before
    /// (or without) measuring the others.
    pub matmul_default: MatmulVersion,
    /// Bound where a kernel's optional input is absent (e.g. no bias).
    pub placeholder: wgpu::Buffer,
    /// Versions the self-test found wrong on this adapter: never launched
    /// by the engine's own choices.
    pub refused: Refused,
    /// The tuner's measured choices per shape (see tune.rs).
    pub tuning: Mutex<TuneCache>,
}

/// Kernel versions the engine must not choose (see `selftest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refused {
    pub matmul: Vec<MatmulVersion>,
    pub conv: Vec<(ConvPass, ConvVersion)>,
}

impl Refused {
    pub fn is_empty(&self) -> bool {
        self.matmul.is_empty() && self.conv.is_empty()
    }
}

impl Kernels {
    pub fn new(ctx: &GpuContext) -> Kernels {
        Kernels::with_refused(ctx, Refused::default())
    }

    /// The kernels, choosing no version in `refused`: the dense layer's
    /// matmul is the adapter's preferred version, else the first of the
    /// others that is not refused (the naive reference last).
    pub fn with_refused(ctx: &GpuContext, refused: Refused) -> Kernels {
        Kernels::tuned(ctx, refused, TuneCache::in_memory(ctx))
    }

    /// The kernels without the `refused` versions, choosing between the
    /// others through `tuning` (see `with_refused`).
    pub fn tuned(ctx: &GpuContext, refused: Refused, tuning: TuneCache) -> Kernels {
        let preferred = MatmulVersion::for_adapter(ctx);
        let fallbacks = [
            MatmulVersion::Registers,
            MatmulVersion::Tiled,
            MatmulVersion::Naive,
        ];
        let matmul_default = std::iter::once(preferred)
            .chain(fallbacks)
            .find(|v| v.is_available(ctx) && !refused.matmul.contains(v))
            .unwrap_or(MatmulVersion::Naive);
        Kernels {
            modules: Mutex::default(),
            kernels: Mutex::default(),
            matmul_default,
            placeholder: ctx.storage_zeroed("placeholder", 64),
            refused,
            tuning: Mutex::new(tuning),
        }
    }

    /// The pipeline of `entry` in `shader` with bindings `slots`, built the
    /// first time it is asked for. Entry points are unique across files.
    pub fn get(
        &self,
        ctx: &GpuContext,
        shader: &Shader,
        entry: &'static str,
        slots: &[Slot],
    ) -> Arc<Kernel> {
        let mut kernels = self.kernels.lock().expect("kernel cache poisoned");
        if let Some(kernel) = kernels.get(entry) {
            return kernel.clone();
        }
        crate::status::set(|| format!("compiling the {} kernel {entry}", shader.name));
        let mut modules = self.modules.lock().expect("module cache poisoned");
        let module = modules.entry(shader.name).or_insert_with(|| {
            ctx.device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(shader.name),
                    source: wgpu::ShaderSource::Wgsl(shader.source().into()),
                })
        });
        let kernel = Arc::new(Kernel::new(ctx, module, entry, slots));
        kernels.insert(entry, kernel.clone());
        kernel
    }
}
