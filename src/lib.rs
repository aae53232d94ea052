//! gpunet: train small neural networks on any GPU with WGSL compute
//! shaders, checked against a plain CPU reference.

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod cpu;
pub mod data;
pub mod explain;
pub mod export;
pub mod gpu;
pub mod graph;
pub mod infer;
pub mod inspect;
pub mod llm;
pub mod memory;
pub mod model_file;
pub mod ops;
pub mod output;
pub mod plot;
pub mod preprocess;
pub mod schedule;
pub mod selftest;
pub mod spec;
pub mod status;
pub mod train;
