//! Learning-rate schedules, evaluated on the host for every step; the
//! optimiser kernels read each step's rate from its step slot.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// The same rate throughout.
    Constant,
    /// Multiplied by `gamma` every `step_epochs` epochs.
    Step,
    /// Half a cosine from the rate down to zero over the run.
    Cosine,
}

/// The name `--lr-schedule` takes: "constant", "step", "cosine".
impl std::fmt::Display for ScheduleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            ScheduleKind::Constant => "constant",
            ScheduleKind::Step => "step",
            ScheduleKind::Cosine => "cosine",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub base_lr: f32,
    /// Linear warm-up from base_lr/warmup_steps to base_lr over these steps.
    pub warmup_steps: usize,
    pub step_epochs: usize,
    pub gamma: f32,
    pub steps_per_epoch: usize,
    pub total_steps: usize,
}

impl Schedule {
    /// The rate of step `step` (0-based, counted over the whole run).
    pub fn lr_at(&self, step: usize) -> f32 {
        let base = match self.kind {
            ScheduleKind::Constant => self.base_lr,
            ScheduleKind::Step => {
                let epoch = step / self.steps_per_epoch.max(1);
                self.base_lr * self.gamma.powi((epoch / self.step_epochs.max(1)) as i32)
            }
            ScheduleKind::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
                let t = step.saturating_sub(self.warmup_steps).min(span) as f32 / span as f32;
                self.base_lr * 0.5 * (1.0 + (std::f32::consts::PI * t).cos())
            }
        };
        if step < self.warmup_steps {
            base * (step + 1) as f32 / self.warmup_steps as f32
        } else {
            base
        }
    }

    /// The rates of `count` steps starting at `first`.
    pub fn lrs(&self, first: usize, count: usize) -> Vec<f32> {
        (first..first + count).map(|s| self.lr_at(s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind, warmup_steps: usize) -> Schedule {
        Schedule {
            kind,
            base_lr: 1.0,
            warmup_steps,
            step_epochs: 2,
            gamma: 0.1,
            steps_per_epoch: 10,
            total_steps: 100,
        }
    }

    #[test]
    fn schedules_follow_their_formulas() {
        let c = schedule(ScheduleKind::Constant, 0);
        assert_eq!(c.lrs(0, 3), vec![1.0; 3]);
        let s = schedule(ScheduleKind::Step, 0);
        assert_eq!(s.lr_at(19), 1.0);
        assert!((s.lr_at(20) - 0.1).abs() < 1e-7);
        assert!((s.lr_at(45) - 0.01).abs() < 1e-8);
        let cos = schedule(ScheduleKind::Cosine, 0);
        assert_eq!(cos.lr_at(0), 1.0);
        assert!((cos.lr_at(50) - 0.5).abs() < 1e-6);
        assert!(cos.lr_at(100).abs() < 1e-6);
        let warm = schedule(ScheduleKind::Cosine, 10);
        assert!((warm.lr_at(0) - 0.1).abs() < 1e-7);
        assert!((warm.lr_at(9) - 1.0).abs() < 1e-6);
        assert!((warm.lr_at(55) - 0.5).abs() < 1e-6);
    }
}
