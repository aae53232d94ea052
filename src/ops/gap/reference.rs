//! Global average pooling on the CPU: the reference for gap.wgsl.
//! x is (planes, area) with planes = batch·channels and area = h·w.

/// y[n,c] = (Σ_i x[n,c,i]) · inv_area, summed in index order.
pub fn gap_forward(x: &[f32], y: &mut [f32], area: usize, inv_area: f32) {
    for (out, plane) in y.iter_mut().zip(x.chunks_exact(area)) {
        let mut sum = 0.0f32;
        for &v in plane {
            sum += v;
        }
        *out = sum * inv_area;
    }
}

/// forward y[n,c] = Σ_i x[n,c,i] / area  →  dx[n,c,i] = dy[n,c] · inv_area.
pub fn gap_backward(dy: &[f32], dx: &mut [f32], area: usize, inv_area: f32) {
    for (plane, &g) in dx.chunks_exact_mut(area).zip(dy) {
        plane.fill(g * inv_area);
    }
}
