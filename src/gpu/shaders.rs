//! Shader modules and pipelines, compiled on first use and kept for the
//! device's lifetime. Each op declares its WGSL file as a [`Shader`] beside
//! its launchers (`src/ops/<op>/launch.rs`); nothing here knows an op.

use super::kernel::{Kernel, Slot};
use super::GpuContext;
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
    /// The matmul version the dense layer launches on this adapter.
    pub matmul_default: MatmulVersion,
    /// Bound where a kernel's optional input is absent (e.g. no bias).
    pub placeholder: wgpu::Buffer,
}

impl Kernels {
    pub fn new(ctx: &GpuContext) -> Kernels {
        Kernels {
            modules: Mutex::default(),
            kernels: Mutex::default(),
            matmul_default: MatmulVersion::for_adapter(ctx),
            placeholder: ctx.storage_zeroed("placeholder", 64),
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
