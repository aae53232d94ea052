//! Writes the synthetic colour dataset of `tests/colour.rs` (four classes:
//! red or blue, square or cross) in the CIFAR-10 binary format, for
//! `gpunet train --data DIR --model cifar`.
//! `cargo run --release --example synthetic_colour -- DIR [TRAIN] [TEST] [SEED]`
//! (defaults: 1024 training images, 256 test images, seed 7).
use anyhow::{bail, Context};
use gpunet::data::synthetic::write_colour_set;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        bail!("usage: synthetic_colour DIR [TRAIN] [TEST] [SEED]");
    };
    let mut number = |what: &str, default: u64| -> anyhow::Result<u64> {
        args.next()
            .map_or(Ok(default), |s| s.parse())
            .with_context(|| format!("{what}: expected a whole number"))
    };
    let (train, test, seed) = (
        number("TRAIN", 1024)?,
        number("TEST", 256)?,
        number("SEED", 7)?,
    );
    if train == 0 || test == 0 {
        bail!("TRAIN and TEST must be at least 1");
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write_colour_set(&dir, train as usize, test as usize, seed)
        .with_context(|| format!("writing the colour set into {}", dir.display()))?;
    println!(
        "{}: {train} training and {test} test images, 4 classes, seed {seed}",
        dir.display()
    );
    Ok(())
}
