//! The CPU reference of matmul.wgsl: the three forms a dense layer needs,
//! every matrix row-major. Loops are ordered so the innermost one walks
//! contiguous memory (the only concession to speed: `--device cpu` trains
//! with these functions).

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
