//! The GPU backend: the wgpu device, pipelines and recorded launches, the
//! planner and the trainer. wgpu is touched here and in the ops' launchers
//! (`src/ops/<op>/launch.rs`), nowhere else.

mod context;
pub mod kernel;
pub mod planner;
pub mod shaders;
mod timing;
mod trainer;
mod tune;
/// Writes out the software shaders' unrolled blocks; used by its test only.
#[cfg(test)]
mod unrolled;

pub use crate::ops::conv2d::{ConvPass, ConvVersion};
pub use crate::ops::matmul::{MatmulForm, MatmulShape, MatmulVersion};
pub use context::{
    best_adapter, describe, list_adapters, AdapterChoice, GpuContext, NO_ADAPTER_HELP,
};
pub use kernel::{elementwise_groups, Binding, Dispatch, Slot, StepInfo, StepSlots};
pub use shaders::{Kernels, Shader};
pub use timing::{GpuTimer, TimingSource};
pub use trainer::GpuTrainer;
pub use tune::fastest;

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
