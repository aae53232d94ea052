//! The loss: softmax, cross-entropy against the labels and its gradient
//! with respect to the logits in one pass (softmax_xent.wgsl), with the
//! epoch's loss and correct count accumulated on the device.

mod launch;
pub mod reference;

pub use launch::METRICS_WORDS;
