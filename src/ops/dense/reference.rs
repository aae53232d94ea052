//! The dense layer's CPU reference beyond its matmuls (matmul/reference.rs).

/// db (cols) = Σ_r dz[r, :], the bias gradient of y = x·Wᵀ + b.
pub fn bias_grad(dz: &[f32], db: &mut [f32], cols: usize) {
    db[..cols].fill(0.0);
    for row in dz.chunks_exact(cols) {
        for (acc, &g) in db.iter_mut().zip(row) {
            *acc += g;
        }
    }
}
