//! The CPU reference of gather.wgsl.

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
