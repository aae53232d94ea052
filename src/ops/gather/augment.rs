//! `--augment crop:P,flip`: a random crop after zero padding by P pixels
//! and a random horizontal flip, drawn per example and step inside the
//! gather (both devices), from Philox4x32-10 keyed by the run's seed with
//! counter (image, global step, AUGMENT_STREAM, 0): the same draws on the
//! CPU and the GPU, for every seed, and a resumed run draws what the
//! uninterrupted one would have.
//!
//! For output pixel (y, x) of an H×W plane, with offsets dy, dx in 0..=2P
//! and the flip f:
//!   xs = (f ? W−1−x : x) + dx − P,   ys = y + dy − P
//!   out[y][x] = in[ys][xs] if inside the image, else a black pixel (byte 0,
//!   normalised like any other) — torchvision's RandomCrop(padding=P)
//!   followed by RandomHorizontalFlip, before Normalize.

use crate::ops::dropout::reference::philox4x32_10;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Philox stream of the augmentation draws (dropout's streams are node
/// indices, far below this).
pub const AUGMENT_STREAM: u32 = 0xA06_0000;

/// Largest crop padding accepted.
pub const MAX_CROP: u32 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Augment {
    /// Zero padding before the random crop (0: no crop).
    pub crop: u32,
    /// Random horizontal flips.
    pub flip: bool,
}

/// One example's draw at one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draw {
    pub dx: u32,
    pub dy: u32,
    pub flip: bool,
}

impl Augment {
    pub fn is_off(&self) -> bool {
        self.crop == 0 && !self.flip
    }

    /// Parses `crop:4,flip`, `flip`, `crop:2` or `none`.
    pub fn parse(text: &str) -> Result<Augment> {
        let mut augment = Augment::default();
        for part in text.split(',').map(str::trim) {
            match part.split_once(':') {
                _ if part == "none" || part.is_empty() => {}
                _ if part == "flip" => augment.flip = true,
                Some(("crop", pad)) => {
                    let pad: u32 = pad.parse().map_err(|_| {
                        anyhow::anyhow!("--augment {text}: crop:{pad} needs a whole number of pixels")
                    })?;
                    if pad == 0 || pad > MAX_CROP {
                        bail!("--augment {text}: the crop padding must be 1 to {MAX_CROP} pixels");
                    }
                    augment.crop = pad;
                }
                _ => bail!(
                    "--augment {text}: unknown part {part:?}; write e.g. crop:4,flip (crop:P pads by \
                     P pixels and crops back at random; flip mirrors left-right half the time)"
                ),
            }
        }
        Ok(augment)
    }

    /// The draw for `image` at training step `step` of the run seeded `seed`.
    pub fn draw(&self, seed: u64, step: u32, image: u32) -> Draw {
        let bits = philox4x32_10(
            [image, step, AUGMENT_STREAM, 0],
            [seed as u32, (seed >> 32) as u32],
        );
        let span = 2 * self.crop + 1;
        Draw {
            dx: bits[0] % span,
            dy: bits[1] % span,
            flip: self.flip && bits[2] & 1 == 1,
        }
    }

    /// The source pixel (row, column) of output pixel (y, x) of an
    /// `height`×`width` plane under `draw`, or None for padding.
    pub fn source(
        &self,
        draw: Draw,
        y: usize,
        x: usize,
        height: usize,
        width: usize,
    ) -> Option<(usize, usize)> {
        let x = if draw.flip { width - 1 - x } else { x };
        let xs = (x + draw.dx as usize).checked_sub(self.crop as usize)?;
        let ys = (y + draw.dy as usize).checked_sub(self.crop as usize)?;
        (xs < width && ys < height).then_some((ys, xs))
    }
}

impl std::fmt::Display for Augment {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.crop > 0 {
            parts.push(format!("crop:{}", self.crop));
        }
        if self.flip {
            parts.push("flip".into());
        }
        if parts.is_empty() {
            parts.push("none".into());
        }
        write!(f, "{}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let a = Augment::parse("crop:4,flip").unwrap();
        assert_eq!(
            a,
            Augment {
                crop: 4,
                flip: true
            }
        );
        assert_eq!(a.to_string(), "crop:4,flip");
        assert!(Augment::parse("none").unwrap().is_off());
        for bad in ["crop", "crop:x", "crop:0", "crop:65", "rotate"] {
            assert!(Augment::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn draws_cover_every_offset_and_both_flips() {
        let a = Augment {
            crop: 2,
            flip: true,
        };
        let draws: Vec<Draw> = (0..400).map(|i| a.draw(9, 3, i)).collect();
        for d in 0..5 {
            assert!(draws.iter().any(|r| r.dx == d) && draws.iter().any(|r| r.dy == d));
        }
        assert!(draws.iter().any(|r| r.flip) && draws.iter().any(|r| !r.flip));
        assert!(draws.iter().all(|r| r.dx < 5 && r.dy < 5));
    }
}
