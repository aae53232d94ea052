//! Pictures of what a network learned: numbers in, PNG or GIF files out.
//!
//! - [`weight_grid`]: signed tiles (a unit's incoming weights as a 28×28
//!   image, a class template, a gradient) side by side on one blue–white–red
//!   scale, with captions, a title and a colour bar. Colour tiles (three
//!   planes) are drawn per channel on one symmetric scale instead: each
//!   channel's byte is `255 · (0.5 + 0.5 · v / s)`, so 0 is mid-gray, a
//!   positive red weight pulls the pixel towards red and a negative one
//!   towards cyan; the colour bar then runs from black (`−s`) to white
//!   (`+s`).
//! - [`templates_gif`]: the same grid once per training snapshot, as an
//!   animated GIF that loops forever.
//! - [`image_grid`]: grayscale or colour images in `[0, 1]` with a caption
//!   under each (activation-maximisation images, the most confident
//!   mistakes).
//! - [`bar_chart`]: one bar per class with an error bar (a unit's mean ±
//!   standard deviation per class).
//! - [`confusion_heatmap`]: a confusion matrix with its counts written in.
//! - [`scatter`]: points in 2-D coloured by class, with a legend (a hidden
//!   layer's PCA).
//!
//! Every function checks its input first (an error names the file and the
//! problem), draws into memory, encodes, and writes the file atomically with
//! [`write_atomically`], so a reader never sees half a picture. Each returns
//! the `(width, height)` it wrote, in pixels.
//!
//! One module per drawer: `grid.rs` (the three tile grids and their shared
//! layout), `confusion.rs`, `scatter.rs`. This file holds what they share:
//! [`Tile`], [`GridOptions`], the page's colours and sizes, the size check,
//! rectangles and the PNG writer.
//!
//! Tiles are enlarged by an integer factor with nearest-neighbour sampling,
//! so each weight stays one crisp square; a thin gray frame around each tile
//! keeps near-zero (near-white) edges visible against the white page.

mod bars;
mod confusion;
mod grid;
mod scatter;

pub use bars::bar_chart;
pub use confusion::confusion_heatmap;
pub use grid::{image_grid, templates_gif, weight_grid};
pub use scatter::scatter;

use crate::checkpoint::write_atomically;
use anyhow::{bail, Context};
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};
use std::path::Path;

/// The largest side, in pixels, of any picture drawn here.
pub const MAX_SIDE: u32 = 8192;

/// A `width × height` grid of numbers, row-major: `values[y * width + x]`;
/// a colour tile holds three such planes (red, green, blue) one after the
/// other, C×H×W as the network reads images:
/// `values[channel * width * height + y * width + x]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub width: usize,
    pub height: usize,
    /// 1 (one plane of values) or 3 (red, green and blue planes).
    pub channels: usize,
    pub values: Vec<f32>,
}

impl Tile {
    /// A one-plane tile, checking that `values` holds `width × height` numbers.
    pub fn new(width: usize, height: usize, values: Vec<f32>) -> anyhow::Result<Tile> {
        Tile::planes(width, height, 1, values)
    }

    /// A colour tile: red, green and blue planes of `width × height` each.
    pub fn rgb(width: usize, height: usize, values: Vec<f32>) -> anyhow::Result<Tile> {
        Tile::planes(width, height, 3, values)
    }

    /// A tile of 1 or 3 planes, checking the length.
    pub fn planes(
        width: usize,
        height: usize,
        channels: usize,
        values: Vec<f32>,
    ) -> anyhow::Result<Tile> {
        let tile = Tile {
            width,
            height,
            channels,
            values,
        };
        tile.check()?;
        Ok(tile)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.width == 0 || self.height == 0 {
            bail!("a tile of {}×{} values is empty", self.width, self.height);
        }
        if self.channels != 1 && self.channels != 3 {
            bail!(
                "a tile has 1 plane (gray or signed) or 3 (red, green, blue), not {}",
                self.channels
            );
        }
        let wanted = self.channels * self.width * self.height;
        if self.values.len() != wanted {
            bail!(
                "a {}×{}×{} tile needs {wanted} values but has {}",
                self.channels,
                self.height,
                self.width,
                self.values.len()
            );
        }
        Ok(())
    }
}

/// How a grid of tiles is laid out and labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct GridOptions {
    /// Drawn centred above the grid; empty for none.
    pub title: String,
    /// Tiles per row; 0 picks a count that leaves few empty cells and makes
    /// the grid somewhat wider than tall (10 tiles: 5 × 2, 128: 16 × 8).
    pub columns: usize,
    /// Each value is drawn as a `zoom × zoom` square of pixels (at least 1).
    pub zoom: u32,
    /// Pixels between neighbouring cells.
    pub gap: u32,
    /// The symmetric colour scale `s` of signed tiles: `−s` is darkest blue,
    /// `+s` darkest red, values beyond are clipped. `None`: the largest
    /// `|value|` over all tiles (and all frames of a GIF). Ignored by
    /// [`image_grid`].
    pub scale: Option<f32>,
    /// Written above the colour bar, e.g. "weight"; empty for none.
    pub legend_label: String,
    /// GIFs: how long each frame shows, in milliseconds; the last frame
    /// shows four times as long, so the final state can be seen before the
    /// loop starts again.
    pub frame_delay_ms: u32,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions {
            title: String::new(),
            columns: 0,
            zoom: 4,
            gap: 8,
            scale: None,
            legend_label: String::new(),
            frame_delay_ms: 500,
        }
    }
}

/// White page, near-black text, gray secondary text and frames.
const PAPER: [u8; 3] = [255, 255, 255];
const INK: [u8; 3] = [33, 33, 33];
const MUTED: [u8; 3] = [96, 96, 96];
const FRAME: [u8; 3] = [160, 160, 160];
const RULE: [u8; 3] = [225, 225, 225];

/// Font sizes (line heights) in pixels.
const TITLE_SIZE: f32 = 22.0;
const SUBTITLE_SIZE: f32 = 18.0;
const CAPTION_SIZE: f32 = 15.0;
const LABEL_SIZE: f32 = 14.0;

/// Blank border around every picture.
const MARGIN: u32 = 16;

fn check_size(width: u32, height: u32) -> anyhow::Result<()> {
    if width > MAX_SIDE || height > MAX_SIDE {
        bail!(
            "the picture would be {width}×{height} pixels, over the limit of {MAX_SIDE} a side: \
             use fewer tiles, a smaller zoom or fewer columns"
        );
    }
    Ok(())
}

fn write_png(path: &Path, image: &RgbImage) -> anyhow::Result<(u32, u32)> {
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ExtendedColorType::Rgb8,
        )
        .with_context(|| format!("cannot encode {} as PNG", path.display()))?;
    write_atomically(path, &png)?;
    Ok(image.dimensions())
}

fn fill_rect(image: &mut RgbImage, x: i64, y: i64, width: u32, height: u32, colour: [u8; 3]) {
    let x0 = x.max(0) as u32;
    let y0 = y.max(0) as u32;
    let x1 = ((x + width as i64).max(0) as u32).min(image.width());
    let y1 = ((y + height as i64).max(0) as u32).min(image.height());
    for py in y0..y1 {
        for px in x0..x1 {
            image.put_pixel(px, py, Rgb(colour));
        }
    }
}

/// A one-pixel outline just inside the rectangle.
fn outline_rect(image: &mut RgbImage, x: i64, y: i64, width: u32, height: u32, colour: [u8; 3]) {
    fill_rect(image, x, y, width, 1, colour);
    fill_rect(image, x, y + height as i64 - 1, width, 1, colour);
    fill_rect(image, x, y, 1, height, colour);
    fill_rect(image, x + width as i64 - 1, y, 1, height, colour);
}

/// Decodes the picture at `path`, checking it is `size`.
#[cfg(test)]
fn decode_rgb(path: &Path, size: (u32, u32)) -> RgbImage {
    let image = image::open(path)
        .expect("a picture the image crate decodes")
        .to_rgb8();
    assert_eq!(image.dimensions(), size, "{}", path.display());
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tile_needs_width_times_height_values() {
        assert!(Tile::new(2, 2, vec![0.0; 4]).is_ok());
        let e = Tile::new(2, 2, vec![0.0; 3]).unwrap_err().to_string();
        assert!(e.contains("needs 4 values but has 3"), "{e}");
        assert!(Tile::new(0, 2, vec![]).is_err());
        assert!(Tile::rgb(2, 2, vec![0.0; 12]).is_ok());
        let e = Tile::rgb(2, 2, vec![0.0; 4]).unwrap_err().to_string();
        assert!(e.contains("3×2×2 tile needs 12 values but has 4"), "{e}");
        assert!(Tile::planes(2, 2, 2, vec![0.0; 8]).is_err());
    }
}
