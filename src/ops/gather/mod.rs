//! A batch gathered from the resident dataset by the epoch's order, u8
//! pixels → f32 on the way: `reference.rs` on the CPU, gather.wgsl on the GPU.

mod launch;
pub mod reference;
