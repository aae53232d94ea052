//! How u8 pixels become the network's inputs — the one place that says so.
//! Training (both devices' gather), `eval`, `predict` and `inspect` all
//! take their inputs from here, and the model file keeps it (as JSON under
//! `gpunet.normalisation`) so that every later use matches training.
//!
//!   divide_by_255:  x = pixel / 255
//!   per_channel:    x = (pixel / 255 − mean[c]) · (1 / std[c])
//!
//! where c is the pixel's channel and mean and std are the training set's,
//! per channel, of pixel / 255 (population std). The reciprocal is taken
//! once on the host so that the CPU reference and gather.wgsl compute the
//! same correctly rounded operations (a subtraction and a product) and
//! agree bit for bit; with mean 0 and std 1 the formula is exactly / 255.

use super::Dataset;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Channels the GPU gather carries per-channel statistics for (its
/// parameter struct holds one vec4 of means and one of reciprocals).
pub const MAX_CHANNELS: usize = 4;

/// The text older model files hold under `gpunet.normalisation`.
const LEGACY_TEXT: &str = "x = u8 pixel / 255";

/// A channel whose std is below this (a constant channel) is only
/// centred, not scaled: std is taken as 1.
const MIN_STD: f32 = 1e-3;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalization {
    /// x = pixel / 255.
    #[default]
    #[serde(rename = "divide_by_255")]
    DivideBy255,
    /// x = (pixel / 255 − mean[c]) / std[c], from the training set.
    PerChannel { mean: Vec<f32>, std: Vec<f32> },
}

/// `--normalize`: what the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum NormalizeChoice {
    /// Per channel for colour data, / 255 for one-channel (MNIST-like) data.
    #[default]
    Auto,
    /// x = pixel / 255.
    #[value(name = "255")]
    DivideBy255,
    /// Mean and std per channel, measured on the training set.
    Channel,
}

impl NormalizeChoice {
    /// The normalisation this choice gives on the training set `train`.
    pub fn resolve(self, train: &Dataset) -> Result<Normalization> {
        match self {
            NormalizeChoice::DivideBy255 => Ok(Normalization::DivideBy255),
            NormalizeChoice::Channel => Normalization::per_channel(train),
            NormalizeChoice::Auto if train.channels > 1 => Normalization::per_channel(train),
            NormalizeChoice::Auto => Ok(Normalization::DivideBy255),
        }
    }
}

/// The normalisation as the kernels take it: per channel, the mean to
/// subtract from pixel / 255 and the factor to multiply by.
#[derive(Debug, Clone, PartialEq)]
pub struct InputScale {
    pub mean: Vec<f32>,
    pub inv_std: Vec<f32>,
}

impl InputScale {
    /// Input value of a pixel byte in `channel`.
    pub fn value(&self, byte: u8, channel: usize) -> f32 {
        (f32::from(byte) / 255.0 - self.mean[channel]) * self.inv_std[channel]
    }
}

impl Normalization {
    /// Mean and std of pixel / 255 per channel over every training image.
    pub fn per_channel(train: &Dataset) -> Result<Normalization> {
        let (channels, plane) = (train.channels, train.rows * train.cols);
        if channels > MAX_CHANNELS {
            bail!(
                "--normalize channel: the data has {channels} channels; gpunet normalises at most \
                 {MAX_CHANNELS} per channel (use --normalize 255)"
            );
        }
        if train.is_empty() {
            bail!("--normalize channel: the training set is empty");
        }
        // Byte histograms per channel: exact sums in integers.
        let mut counts = vec![[0u64; 256]; channels];
        for image in train.images.chunks_exact(train.input_size()) {
            for (c, pixels) in image.chunks_exact(plane).enumerate() {
                for &p in pixels {
                    counts[c][p as usize] += 1;
                }
            }
        }
        let (mut mean, mut std) = (Vec::new(), Vec::new());
        for hist in &counts {
            let n: u64 = hist.iter().sum();
            let m = hist
                .iter()
                .enumerate()
                .map(|(v, &k)| v as f64 / 255.0 * k as f64)
                .sum::<f64>()
                / n as f64;
            let var = hist
                .iter()
                .enumerate()
                .map(|(v, &k)| (v as f64 / 255.0 - m).powi(2) * k as f64)
                .sum::<f64>()
                / n as f64;
            mean.push(m as f32);
            let s = var.sqrt() as f32;
            std.push(if s < MIN_STD { 1.0 } else { s });
        }
        Ok(Normalization::PerChannel { mean, std })
    }

    /// The mean and reciprocal std of each of `channels` channels.
    pub fn scale(&self, channels: usize) -> InputScale {
        match self {
            Normalization::DivideBy255 => InputScale {
                mean: vec![0.0; channels],
                inv_std: vec![1.0; channels],
            },
            Normalization::PerChannel { mean, std } => InputScale {
                mean: mean.clone(),
                inv_std: std.iter().map(|s| 1.0 / s).collect(),
            },
        }
    }

    /// Refuses statistics that do not fit `channels` channels.
    pub fn check(&self, channels: usize) -> Result<()> {
        if let Normalization::PerChannel { mean, std } = self {
            if mean.len() != channels || std.len() != channels {
                bail!(
                    "per-channel normalisation has {} means and {} stds for {channels} channels",
                    mean.len(),
                    std.len()
                );
            }
            if channels > MAX_CHANNELS {
                bail!("per-channel normalisation of {channels} channels (at most {MAX_CHANNELS})");
            }
            if mean.iter().any(|m| !m.is_finite())
                || std.iter().any(|s| !(s.is_finite() && *s > 0.0))
            {
                bail!(
                    "per-channel normalisation with a non-finite mean or a std that is not above 0"
                );
            }
        }
        Ok(())
    }

    /// Inputs of images (each `channels` planes of `plane` pixels).
    pub fn apply(&self, images: &[u8], channels: usize, plane: usize) -> Vec<f32> {
        let scale = self.scale(channels);
        images
            .iter()
            .enumerate()
            .map(|(i, &p)| scale.value(p, (i / plane) % channels))
            .collect()
    }

    /// The inverse of `apply`, for drawing inputs: pixel / 255 in [0, 1]
    /// (unclamped) of each input value.
    pub fn to_unit(&self, x: &[f32], channels: usize, plane: usize) -> Vec<f32> {
        let scale = self.scale(channels);
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = (i / plane) % channels;
                v / scale.inv_std[c] + scale.mean[c]
            })
            .collect()
    }

    /// Inputs of values given on the pixel / 255 scale (`apply` for
    /// values that need not be whole bytes, as activation maximisation's).
    pub fn from_unit(&self, unit: &[f32], channels: usize, plane: usize) -> Vec<f32> {
        let scale = self.scale(channels);
        unit.iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = (i / plane) % channels;
                (v - scale.mean[c]) * scale.inv_std[c]
            })
            .collect()
    }

    /// A gradient with respect to the inputs carried back to the pixel /
    /// 255 scale: from x = (u − mean)·inv_std, ∂L/∂u = ∂L/∂x · inv_std.
    pub fn gradient_to_unit(&self, grad: &[f32], channels: usize, plane: usize) -> Vec<f32> {
        let scale = self.scale(channels);
        grad.iter()
            .enumerate()
            .map(|(i, &g)| g * scale.inv_std[(i / plane) % channels])
            .collect()
    }

    /// As stored in a model file's metadata.
    pub fn to_metadata(&self) -> String {
        serde_json::to_string(self).expect("a normalisation serialises")
    }

    /// From a model file's metadata: the JSON `to_metadata` writes, or the
    /// text of files from before it (/ 255).
    pub fn from_metadata(text: &str) -> Result<Normalization> {
        if text.trim() == LEGACY_TEXT {
            return Ok(Normalization::DivideBy255);
        }
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{e} (in {text:?})"))
    }
}

impl std::fmt::Display for Normalization {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let list = |v: &[f32]| {
            v.iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Normalization::DivideBy255 => write!(f, "pixel / 255"),
            Normalization::PerChannel { mean, std } => write!(
                f,
                "per channel: (pixel / 255 − mean) / std, mean ({}), std ({})",
                list(mean),
                list(std)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_channel() -> Dataset {
        // Two 1×2 images of 2 channels: channel 0 holds 0 and 255, channel 1 always 51.
        Dataset {
            images: vec![0, 255, 51, 51, 255, 0, 51, 51],
            labels: vec![0, 1],
            channels: 2,
            rows: 1,
            cols: 2,
            classes: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn per_channel_statistics_and_a_constant_channel() {
        let n = Normalization::per_channel(&two_channel()).unwrap();
        let Normalization::PerChannel { mean, std } = &n else {
            panic!("per channel expected")
        };
        assert_eq!(mean, &[0.5, 0.2]);
        assert_eq!(std, &[0.5, 1.0], "a constant channel keeps std 1");
        let x = n.apply(&[255, 0, 51, 51], 2, 2);
        assert_eq!(x, vec![1.0, -1.0, 0.0, 0.0]);
        let back = n.to_unit(&x, 2, 2);
        assert_eq!(back, vec![1.0, 0.0, 0.2, 0.2]);
    }

    #[test]
    fn divide_by_255_is_exactly_the_old_formula() {
        let n = Normalization::DivideBy255;
        let bytes: Vec<u8> = (0..=255).collect();
        let old: Vec<f32> = bytes.iter().map(|&p| f32::from(p) / 255.0).collect();
        assert_eq!(n.apply(&bytes, 1, 256), old);
    }

    #[test]
    fn metadata_round_trip_and_the_legacy_text() {
        let n = Normalization::per_channel(&two_channel()).unwrap();
        let text = n.to_metadata();
        assert!(text.contains("\"kind\":\"per_channel\""), "{text}");
        assert_eq!(
            Normalization::DivideBy255.to_metadata(),
            "{\"kind\":\"divide_by_255\"}"
        );
        assert_eq!(Normalization::from_metadata(&text).unwrap(), n);
        assert_eq!(
            Normalization::from_metadata("x = u8 pixel / 255").unwrap(),
            Normalization::DivideBy255
        );
        assert!(Normalization::from_metadata("{\"kind\":\"sqrt\"}").is_err());
        assert!(n.check(3).is_err());
        assert!(n.check(2).is_ok());
    }
}
