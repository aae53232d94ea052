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
    softmax_xent_smoothed(logits, labels, grad, rows, cols, 0.0)
}

/// Softmax cross-entropy against labels smoothed by ε, PyTorch's
/// `label_smoothing`: the target is q = (1 − ε)·onehot(label) + ε/cols, so
///   loss_r   = −Σ_c q_c·log softmax(z_r)_c
///            = (1 − ε)·(lse(z_r) − z_r,label) + ε·(lse(z_r) − mean_c z_r,c)
///   ∂L/∂z_rc = (softmax(z_r)_c − q_c) / rows.
/// With ε = 0 it is exactly `softmax_xent`.
pub fn softmax_xent_smoothed(
    logits: &[f32],
    labels: &[u32],
    grad: &mut [f32],
    rows: usize,
    cols: usize,
    smoothing: f32,
) -> (f32, u32) {
    let mut loss_sum = 0.0f32;
    let mut correct = 0u32;
    let inv_rows = 1.0 / rows.max(1) as f32;
    for r in 0..rows {
        let z = &logits[r * cols..(r + 1) * cols];
        let label = labels[r] as usize;
        let (argmax, max) = argmax(z);
        let sum: f32 = z.iter().map(|&v| (v - max).exp()).sum();
        let lse = sum.ln() + max;
        loss_sum += if smoothing > 0.0 {
            let mean = z.iter().sum::<f32>() / cols as f32;
            (1.0 - smoothing) * (lse - z[label]) + smoothing * (lse - mean)
        } else {
            lse - z[label]
        };
        correct += u32::from(argmax == label);
        let (on, off) = (
            1.0 - smoothing + smoothing / cols as f32,
            smoothing / cols as f32,
        );
        for (c, g) in grad[r * cols..(r + 1) * cols].iter_mut().enumerate() {
            let prob = (z[c] - max).exp() / sum;
            *g = (prob - if c == label { on } else { off }) * inv_rows;
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
