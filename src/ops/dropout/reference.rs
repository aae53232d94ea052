//! The CPU reference of dropout.wgsl, and the random numbers both devices
//! draw.

/// Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers:
/// as easy as 1, 2, 3", SC 2011): a counter-based generator, four random
/// words as a function of a 128-bit counter and a 64-bit key, with no state
/// to carry from one draw to the next. dropout.wgsl holds the same function.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    const M0: u64 = 0xD251_1F53;
    const M1: u64 = 0xCD9E_8D57;
    const W0: u32 = 0x9E37_79B9;
    const W1: u32 = 0xBB67_AE85;
    let (mut ctr, mut key) = (counter, key);
    for round in 0..10 {
        if round > 0 {
            key = [key[0].wrapping_add(W0), key[1].wrapping_add(W1)];
        }
        let p0 = M0 * u64::from(ctr[0]);
        let p1 = M1 * u64::from(ctr[2]);
        ctr = [
            (p1 >> 32) as u32 ^ ctr[1] ^ key[0],
            p1 as u32,
            (p0 >> 32) as u32 ^ ctr[3] ^ key[1],
            p0 as u32,
        ];
    }
    ctr
}

/// The 32 random bits of value `element` (counted from the batch's first
/// row) of dropout node `stream` at training step `step` of the run whose
/// seed is `seed`.
pub fn dropout_bits(seed: u64, step: u32, stream: u32, element: u32) -> u32 {
    philox4x32_10(
        [element, step, stream, 0],
        [seed as u32, (seed >> 32) as u32],
    )[0]
}

/// Training: mask[i] = scale where the value is kept (bits ≥ threshold),
/// else 0; y = x ⊙ mask.
#[allow(clippy::too_many_arguments)]
pub fn dropout_forward(
    x: &[f32],
    y: &mut [f32],
    mask: &mut [f32],
    threshold: u32,
    scale: f32,
    seed: u64,
    step: u32,
    stream: u32,
) {
    for (i, ((out, m), &v)) in y.iter_mut().zip(mask.iter_mut()).zip(x).enumerate() {
        let kept = dropout_bits(seed, step, stream, i as u32) >= threshold;
        *m = if kept { scale } else { 0.0 };
        *out = v * *m;
    }
}

/// Evaluation: y = x, mask = 1.
pub fn dropout_identity(x: &[f32], y: &mut [f32], mask: &mut [f32]) {
    y.copy_from_slice(x);
    mask.fill(1.0);
}

/// forward y = x ⊙ mask  →  dx = dy ⊙ mask.
pub fn dropout_backward(dy: &[f32], mask: &[f32], dx: &mut [f32]) {
    for ((d, &g), &m) in dx.iter_mut().zip(dy).zip(mask) {
        *d = g * m;
    }
}
