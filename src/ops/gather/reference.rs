//! The CPU reference of gather.wgsl.

use super::Augment;
use crate::data::InputScale;
use crate::graph::Shape;

/// What the gather does to each image: its shape, the normalisation, and
/// (training only) the augmentation with the run's seed and the global step.
#[derive(Debug, Clone)]
pub struct GatherSettings<'a> {
    pub shape: Shape,
    pub scale: &'a InputScale,
    pub augment: Augment,
    pub seed: u64,
    pub step: u32,
}

/// batch_x (indices.len(), c·h·w) = normalised images[indices], cropped and
/// flipped per `settings.augment`, and their labels.
pub fn gather(
    images: &[u8],
    labels: &[u8],
    settings: &GatherSettings,
    indices: &[u32],
    batch_x: &mut [f32],
    batch_labels: &mut [u32],
) {
    let Shape { c, h, w } = settings.shape;
    let size = c * h * w;
    let augment = settings.augment;
    for (r, &img) in indices.iter().enumerate() {
        let src = &images[img as usize * size..(img as usize + 1) * size];
        let dst = &mut batch_x[r * size..(r + 1) * size];
        let draw = (!augment.is_off()).then(|| augment.draw(settings.seed, settings.step, img));
        for channel in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let at = |(ys, xs): (usize, usize)| channel * h * w + ys * w + xs;
                    let byte = match draw {
                        None => src[at((y, x))],
                        Some(d) => augment.source(d, y, x, h, w).map_or(0, |s| src[at(s)]),
                    };
                    dst[at((y, x))] = settings.scale.value(byte, channel);
                }
            }
        }
        batch_labels[r] = u32::from(labels[img as usize]);
    }
}
