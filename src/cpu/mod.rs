//! `--device cpu`: the network walked on the CPU with each op's reference
//! (`src/ops/<op>/reference.rs`), and the trainer built on it.

pub mod network;
mod trainer;

pub use trainer::CpuTrainer;
