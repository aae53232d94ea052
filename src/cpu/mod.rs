//! The CPU reference implementation (and `--device cpu`).

pub mod mlp;
pub mod ops;
mod trainer;

pub use trainer::CpuTrainer;
