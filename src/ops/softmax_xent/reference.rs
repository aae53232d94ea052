//! The CPU reference of softmax_xent.wgsl.

/// Softmax cross-entropy of logits (rows, cols) against labels (rows).
/// Writes ∂L/∂logits into grad for L = mean over rows of
/// −log softmax(z_r)[label_r], i.e. (softmax(z_r) − onehot(label_r)) / rows.
/// Returns (Σ_r loss_r, number of rows whose argmax is the label).
pub fn softmax_xent(
    logits: &[f32],
    labels: &[u32],
    grad: &mut [f32],
    rows: usize,
    cols: usize,
) -> (f32, u32) {
    let mut loss_sum = 0.0f32;
    let mut correct = 0u32;
    let inv_rows = 1.0 / rows.max(1) as f32;
    for r in 0..rows {
        let z = &logits[r * cols..(r + 1) * cols];
        let label = labels[r] as usize;
        let (argmax, max) = argmax(z);
        let sum: f32 = z.iter().map(|&v| (v - max).exp()).sum();
        loss_sum += sum.ln() + max - z[label];
        correct += u32::from(argmax == label);
        for (c, g) in grad[r * cols..(r + 1) * cols].iter_mut().enumerate() {
            let prob = (z[c] - max).exp() / sum;
            *g = (prob - if c == label { 1.0 } else { 0.0 }) * inv_rows;
        }
    }
    (loss_sum, correct)
}

/// Index and value of the first largest element.
pub fn argmax(z: &[f32]) -> (usize, f32) {
    let mut best = (0, z[0]);
    for (i, &v) in z.iter().enumerate().skip(1) {
        if v > best.1 {
            best = (i, v);
        }
    }
    best
}
