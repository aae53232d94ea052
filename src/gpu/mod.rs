//! The GPU backend: the wgpu device, pipelines and recorded launches, the
//! planner and the trainer. wgpu is touched here and in the ops' launchers
//! (`src/ops/<op>/launch.rs`), nowhere else.

mod context;
pub mod kernel;
pub mod limits;
pub mod planner;
pub mod shaders;
pub mod startup;
mod timing;
mod trainer;
mod tune;
pub mod tune_cache;
/// Writes out the software shaders' unrolled blocks; used by its test only.
#[cfg(test)]
mod unrolled;

pub use crate::ops::conv2d::{ConvPass, ConvVersion};
pub use crate::ops::matmul::{MatmulForm, MatmulShape, MatmulVersion};
pub use context::{
    best_adapter, describe, list_adapters, AdapterChoice, GpuContext, NO_ADAPTER_HELP,
};
pub use kernel::{elementwise_groups, Binding, Dispatch, Slot, StepInfo, StepSlots};
pub use shaders::{Kernels, Refused, Shader};
pub use startup::{open_trainer, open_trainer_in, Startup};
pub use timing::{GpuTimer, TimingSource};
pub use trainer::GpuTrainer;
pub use tune::{choose, fastest, fastest_index};
pub use tune_cache::TuneCache;

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

impl GpuContext {
    /// Records `dispatch` for step slot `step` alone and submits it.
    pub fn run_step(&self, dispatch: &Dispatch, step: usize) {
        self.run_steps_from(dispatch, step, 1);
    }

    /// Records `dispatch` for step slots 0..`steps`, in order, in one pass.
    pub fn run_steps(&self, dispatch: &Dispatch, steps: usize) {
        self.run_steps_from(dispatch, 0, steps);
    }

    fn run_steps_from(&self, dispatch: &Dispatch, first: usize, steps: usize) {
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for step in first..first + steps {
                dispatch.record(&mut pass, step);
            }
        }
        self.queue.submit([encoder.finish()]);
    }
}
