//! The GPU backend: the only place that touches wgpu.

mod context;
pub mod kernel;
pub mod launch;
pub mod shaders;
mod timing;
mod trainer;
mod tune;

pub use context::{
    best_adapter, describe, list_adapters, AdapterChoice, GpuContext, NO_ADAPTER_HELP,
};
pub use kernel::{Binding, Dispatch, StepInfo, StepSlots};
pub use launch::{ConvPass, ConvVersion, MatmulForm, MatmulShape, MatmulVersion};
pub use shaders::Kernels;
pub use timing::{GpuTimer, TimingSource};
pub use trainer::GpuTrainer;

impl GpuContext {
    /// Records `dispatches` (step slot 0) into one encoder and submits it.
    pub fn run(&self, dispatches: &[Dispatch]) {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("run") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("run"),
                timestamp_writes: None,
            });
            for d in dispatches {
                d.record(&mut pass, 0);
            }
        }
        self.queue.submit([encoder.finish()]);
    }
}
