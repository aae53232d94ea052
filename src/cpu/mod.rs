//! The CPU reference implementation (and `--device cpu`).

pub mod conv;
pub mod network;
pub mod ops;
pub mod optim;
mod trainer;

pub use trainer::CpuTrainer;
