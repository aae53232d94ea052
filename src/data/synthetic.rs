//! A synthetic colour dataset in the CIFAR-10 binary format: four classes
//! of 3×32×32 images that differ only by colour (red or blue) or only by
//! shape (a filled 12×12 square or a cross), at a random place on dim
//! noise. `tests/colour.rs` trains on it, and
//! `cargo run --release --example synthetic_colour -- DIR` writes it for
//! the `--model cifar` measurements in `benches/README.md`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// The class names, in label order (written to `batches.meta.txt`).
pub const COLOUR_CLASSES: [&str; 4] = ["red square", "red cross", "blue square", "blue cross"];

/// One CIFAR-10 record of class `label`: the label byte, then the red,
/// green and blue planes, 32×32 bytes each.
pub fn colour_record(rng: &mut ChaCha8Rng, label: u8) -> Vec<u8> {
    let (colour, cross) = (
        [[220u8, 30, 30], [30, 30, 220]][label as usize / 2],
        label % 2 == 1,
    );
    let (top, left): (i32, i32) = (rng.random_range(2..18), rng.random_range(2..18));
    let mut rec = vec![label];
    for value in colour {
        for y in 0..32 {
            for x in 0..32 {
                let (dy, dx) = (y - top - 6, x - left - 6);
                let inside = dy.abs() < 6 && dx.abs() < 6;
                let on = inside && (!cross || dy.abs() < 2 || dx.abs() < 2);
                let noise: u8 = rng.random_range(0..40);
                rec.push(if on { value } else { noise });
            }
        }
    }
    rec
}

/// Writes `data_batch_1.bin` (`train` images), `test_batch.bin` (`test`
/// images) and `batches.meta.txt` into `dir`; labels cycle 0, 1, 2, 3.
/// The same seed gives the same bytes.
pub fn write_colour_set(dir: &Path, train: usize, test: usize, seed: u64) -> std::io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut batch = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| colour_record(&mut rng, (i % 4) as u8))
            .collect()
    };
    let (train_bytes, test_bytes) = (batch(train), batch(test));
    std::fs::write(dir.join("data_batch_1.bin"), train_bytes)?;
    std::fs::write(dir.join("test_batch.bin"), test_bytes)?;
    std::fs::write(dir.join("batches.meta.txt"), COLOUR_CLASSES.join("\n"))
}
