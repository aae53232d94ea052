//! Inverted dropout: in training each value is dropped with probability p
//! and the kept ones are scaled by 1/(1−p), so that a value's expectation
//! is unchanged; in evaluation it is the identity.
//!   forward   mask[n,i] = 1/(1−p) with probability 1−p, else 0 (train), 1 (eval)
//!             y = x ⊙ mask
//!   backward  dx = dy ⊙ mask
//! The mask is saved for the backward pass (as the multiplier, so that the
//! backward of an evaluation forward, which `inspect` runs, is the identity).
//!
//! The mask comes from a counter-based generator, Philox4x32-10, keyed by
//! the run's seed and counting (value index in the batch, the step's number
//! in the run, the node's stream): a pure function of those, computed alike
//! by the CPU reference and by dropout.wgsl, so both devices draw the same
//! mask bit for bit, and a resumed run draws the uninterrupted run's masks.

mod launch;
pub mod reference;

use super::{CpuBackward, CpuForward, Dtype, GpuBackward, GpuForward, Mode, Op, SavedDecl};
use crate::gpu::Dispatch;
use crate::graph::Shape;
use std::any::Any;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    pub shape: Shape,
    /// The probability of dropping a value, in [0, 1).
    pub p: f32,
    /// The generator's stream: the node's index in the graph, so that two
    /// dropout nodes of one step draw different masks.
    pub stream: u32,
}

impl Dropout {
    /// A value is dropped when its 32 random bits are below this:
    /// round(p·2³²), so it is kept with probability 1 − p to within 2⁻³³.
    pub fn threshold(&self) -> u32 {
        let t = (f64::from(self.p) * 4_294_967_296.0).round();
        t.min(f64::from(u32::MAX)) as u32
    }

    /// The kept values' factor 1/(1−p), rounded once on the host for both
    /// devices.
    pub fn scale(&self) -> f32 {
        (1.0 / (1.0 - f64::from(self.p))) as f32
    }
}

impl Op for Dropout {
    fn label(&self) -> String {
        format!("dropout{}", self.p)
    }

    fn output(&self) -> Shape {
        self.shape
    }

    fn saved(&self) -> Vec<SavedDecl> {
        vec![SavedDecl {
            name: "mask",
            len: self.shape.len(),
            per_example: true,
            dtype: Dtype::F32,
        }]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn forward_cpu(&self, f: CpuForward) {
        let mask = f.saved[0].f32s_mut();
        match f.mode {
            Mode::Train => reference::dropout_forward(
                f.inputs[0],
                f.output,
                mask,
                self.threshold(),
                self.scale(),
                f.seed,
                f.step as u32,
                self.stream,
            ),
            Mode::Eval => reference::dropout_identity(f.inputs[0], f.output, mask),
        }
    }

    // forward: y = x ⊙ mask  →  dx = dy ⊙ mask
    fn backward_cpu(&self, b: CpuBackward) {
        if let Some(Some(dx)) = b.grad_inputs.into_iter().next() {
            reference::dropout_backward(b.grad_output, b.saved[0].f32s(), dx);
        }
    }

    fn forward_gpu(&self, f: GpuForward) -> Vec<Dispatch> {
        let len = f.batch * self.shape.len();
        let (x, y, mask) = (f.inputs[0], f.output, f.saved[0]);
        vec![match f.mode {
            Mode::Train => {
                let steps = f
                    .steps
                    .expect("dropout in training reads the step's number from the step slots");
                f.kernels
                    .dropout_train(f.ctx, self, len, steps, f.seed, x, y, mask)
            }
            Mode::Eval => f.kernels.dropout_eval(f.ctx, self, len, x, y, mask),
        }]
    }

    fn backward_gpu(&self, b: GpuBackward) -> Vec<Dispatch> {
        match b.grad_inputs[0] {
            Some(dx) => {
                let len = b.batch * self.shape.len();
                vec![b
                    .kernels
                    .dropout_backward(b.ctx, self, len, b.grad_output, b.saved[0], dx)]
            }
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reference::philox4x32_10;

    /// Random123's known-answer vectors for Philox4x32-10 (its `kat_vectors`
    /// file: counter, key → output).
    #[test]
    fn philox_gives_random123s_known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn threshold_and_scale() {
        use super::Dropout;
        use crate::graph::Shape;
        let op = |p| Dropout {
            shape: Shape { c: 1, h: 1, w: 1 },
            p,
            stream: 0,
        };
        assert_eq!(op(0.0).threshold(), 0, "p = 0 keeps everything");
        assert_eq!(op(0.5).threshold(), 1 << 31);
        assert_eq!(op(0.5).scale(), 2.0);
        // The largest p below 1 still keeps some values.
        let largest = 1.0 - f32::EPSILON / 2.0;
        assert_eq!(op(largest).threshold(), u32::MAX - 255);
    }
}
