//! The optimisers' updates: SGD with momentum, Adam and AdamW, on the CPU
//! (`reference.rs`) and in optim.wgsl (`launch.rs`). Their host side (the
//! learning-rate schedule, the state vectors) is `train.rs`'s and
//! `backend.rs`'s.

mod launch;
pub mod reference;

pub use reference::AdamConfig;
