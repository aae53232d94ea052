//! The one boundary between the training loop and the devices: the same
//! operations on `Cpu` (the reference) and `Gpu` (wgpu + WGSL).

use anyhow::Result;

/// Optimiser settings for an epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyper {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
}

/// Loss and accuracy summed over an epoch (or an evaluation pass).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EpochStats {
    pub loss_sum: f64,
    pub correct: u64,
    pub count: u64,
    /// The first step (0-based) whose batch loss was NaN or infinite.
    pub bad_step: Option<usize>,
}

impl EpochStats {
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }

    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.count.max(1) as f64
    }
}

/// Calls back with the number of examples processed so far.
pub type Progress<'a> = &'a mut dyn FnMut(usize);

/// A network planned on a device, with the training and test sets resident.
pub trait Backend {
    /// "gpu" or "cpu".
    fn device(&self) -> &'static str;
    /// What runs the math: the adapter's name and API, or the CPU.
    fn adapter(&self) -> String;
    /// One pass of SGD over the training set in `order` (a permutation of
    /// its indices), in batches of the planned size.
    fn train_epoch(
        &mut self,
        order: &[u32],
        hyper: Hyper,
        progress: Progress,
    ) -> Result<EpochStats>;
    /// Loss and accuracy over the whole test set with the current weights.
    fn evaluate(&mut self, progress: Progress) -> Result<EpochStats>;
    /// The flat parameter vector (layout: `Graph::params`).
    fn params(&self) -> Result<Vec<f32>>;
}
