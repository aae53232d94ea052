//! The CPU reference: one plain function per op and per backward. Shapes are
//! given in the argument lists; every matrix is row-major.
//!
//! Loops are ordered so the innermost one walks contiguous memory (the only
//! concession to speed): `--device cpu` trains with these functions.

use crate::graph::Activation;

/// c (m,n) = a (m,k) · b (k,n)
pub fn matmul_nn(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    c[..m * n].fill(0.0);
    for i in 0..m {
        let c_row = &mut c[i * n..(i + 1) * n];
        for kk in 0..k {
            let a_ik = a[i * k + kk];
            let b_row = &b[kk * n..(kk + 1) * n];
            for (c_ij, &b_kj) in c_row.iter_mut().zip(b_row) {
                *c_ij += a_ik * b_kj;
            }
        }
    }
}

/// c (m,n) = aᵀ · b, where a is stored (k,m) and b is (k,n)
pub fn matmul_tn(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    c[..m * n].fill(0.0);
    for kk in 0..k {
        let b_row = &b[kk * n..(kk + 1) * n];
        for i in 0..m {
            let a_ki = a[kk * m + i];
            let c_row = &mut c[i * n..(i + 1) * n];
            for (c_ij, &b_kj) in c_row.iter_mut().zip(b_row) {
                *c_ij += a_ki * b_kj;
            }
        }
    }
}

/// c (m,n) = a · bᵀ, where a is (m,k) and b is stored (n,k)
pub fn matmul_nt(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    for i in 0..m {
        let a_row = &a[i * k..(i + 1) * k];
        for j in 0..n {
            c[i * n + j] = dot(a_row, &b[j * k..(j + 1) * k]);
        }
    }
}

/// Σ x_i·y_i, summed in 8 interleaved partial sums (so the compiler may use
/// vector registers; a single running sum would forbid reordering).
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut partial = [0.0f32; 8];
    let chunks = x.len() / 8 * 8;
    for (xc, yc) in x[..chunks].chunks_exact(8).zip(y[..chunks].chunks_exact(8)) {
        for l in 0..8 {
            partial[l] += xc[l] * yc[l];
        }
    }
    let tail: f32 = x[chunks..]
        .iter()
        .zip(&y[chunks..])
        .map(|(a, b)| a * b)
        .sum();
    partial.iter().sum::<f32>() + tail
}

/// x (rows,cols) ← act(x + bias) with bias (cols) broadcast over rows.
pub fn bias_activation(x: &mut [f32], bias: &[f32], act: Activation, cols: usize) {
    for row in x.chunks_exact_mut(cols) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = act.apply(*v + b);
        }
    }
}

/// dz = dy ⊙ f'(x), with f' expressed in the output y = f(x); in place on dy.
pub fn activation_backward(act: Activation, y: &[f32], dy: &mut [f32]) {
    for (d, &out) in dy.iter_mut().zip(y) {
        *d *= act.grad_from_output(out);
    }
}

/// db (cols) = Σ_r dz[r, :], the bias gradient of y = x·Wᵀ + b.
pub fn bias_grad(dz: &[f32], db: &mut [f32], cols: usize) {
    db[..cols].fill(0.0);
    for row in dz.chunks_exact(cols) {
        for (acc, &g) in db.iter_mut().zip(row) {
            *acc += g;
        }
    }
}

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

/// batch_x (indices.len(), input_size) = images[indices] / 255, and their labels.
pub fn gather(
    images: &[u8],
    labels: &[u8],
    input_size: usize,
    indices: &[u32],
    batch_x: &mut [f32],
    batch_labels: &mut [u32],
) {
    for (r, &img) in indices.iter().enumerate() {
        let img = img as usize;
        let src = &images[img * input_size..(img + 1) * input_size];
        for (dst, &px) in batch_x[r * input_size..(r + 1) * input_size]
            .iter_mut()
            .zip(src)
        {
            *dst = f32::from(px) / 255.0;
        }
        batch_labels[r] = u32::from(labels[img]);
    }
}
