//! A batch gathered from the resident dataset by the epoch's order, u8
//! pixels → normalised f32 on the way (`data::Normalization`), randomly
//! cropped and flipped when training asks for it (`augment.rs`):
//! `reference.rs` on the CPU, gather.wgsl on the GPU.

pub mod augment;
mod launch;
pub mod reference;

pub use augment::{Augment, Draw};
pub use launch::GatherInput;
