//! The CPU reference of add.wgsl.

/// y = a + b elementwise.
pub fn add_forward(a: &[f32], b: &[f32], y: &mut [f32]) {
    for ((out, &x), &z) in y.iter_mut().zip(a).zip(b) {
        *out = x + z;
    }
}

/// total += part elementwise (a used-twice value's gradients summed).
pub fn accumulate(total: &mut [f32], part: &[f32]) {
    for (t, &p) in total.iter_mut().zip(part) {
        *t += p;
    }
}
