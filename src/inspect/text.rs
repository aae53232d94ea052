//! Text on an [`RgbImage`], drawn with `ab_glyph` from the DejaVu Sans that
//! `crate::plot` embeds.
//!
//! Why not through plotters, as `plot.rs` does: plotters 0.3.7 places each
//! glyph at `(size / 2 + top of its pixel box) as i32`, and the cast rounds
//! towards zero, so at odd font sizes glyphs that start above the midline
//! (digits) drop half a pixel while a period rises half a pixel: "86.10%"
//! reads "86·10%". It also starts each glyph's bitmap at the caret, without
//! the glyph's left side bearing, so letters with different bearings drift
//! together: at 14 px "class" reads "dass". Here every glyph sits on one
//! shared baseline at its exact sub-pixel position.
//!
//! A font size is ab_glyph's pixel scale: the height from the font's
//! descender to its ascender, which is also the height of a line box here.

use crate::plot::FONT;
use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};
use anyhow::anyhow;
use image::RgbImage;

/// Where `x` is on a line of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Centre,
    Right,
}

/// The embedded font, ready to measure and draw with.
pub(crate) struct Typeface {
    font: FontRef<'static>,
}

/// One line of text rasterised: `coverage` is `width × height`, row-major,
/// 0 (paper) to 1 (ink), with the baseline `ascent` pixels below the top.
struct Mask {
    width: u32,
    height: u32,
    coverage: Vec<f32>,
}

impl Typeface {
    pub(crate) fn load() -> anyhow::Result<Typeface> {
        let font = FontRef::try_from_slice(FONT)
            .map_err(|_| anyhow!("the embedded font DejaVuSans.ttf cannot be read"))?;
        Ok(Typeface { font })
    }

    /// The height of one line at `size`, in whole pixels.
    pub(crate) fn line_height(&self, size: f32) -> u32 {
        let scaled = self.font.as_scaled(PxScale::from(size));
        (scaled.ascent() - scaled.descent()).ceil() as u32
    }

    /// The advance width of `text` (one line) at `size`, in whole pixels.
    pub(crate) fn width(&self, text: &str, size: f32) -> u32 {
        self.layout(text, size).1.ceil() as u32
    }

    /// Each glyph of `text` (one line) at `size` with the caret position it
    /// is drawn at (kerned against the glyph before), and the caret after
    /// the last glyph.
    fn layout(&self, text: &str, size: f32) -> (Vec<(GlyphId, f32)>, f32) {
        let scaled = self.font.as_scaled(PxScale::from(size));
        let mut glyphs = Vec::with_capacity(text.len());
        let mut caret = 0.0f32;
        let mut previous = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = previous {
                caret += scaled.kern(p, id);
            }
            glyphs.push((id, caret));
            caret += scaled.h_advance(id);
            previous = Some(id);
        }
        (glyphs, caret)
    }

    /// The widest of `lines` at `size`.
    pub(crate) fn max_width<'a>(&self, lines: impl IntoIterator<Item = &'a str>, size: f32) -> u32 {
        lines
            .into_iter()
            .map(|line| self.width(line, size))
            .max()
            .unwrap_or(0)
    }

    fn mask(&self, text: &str, size: f32) -> Mask {
        let scaled = self.font.as_scaled(PxScale::from(size));
        let width = self.width(text, size) + 2;
        let height = self.line_height(size);
        let mut coverage = vec![0.0f32; (width * height) as usize];
        let baseline = scaled.ascent();
        for (id, caret) in self.layout(text, size).0 {
            let glyph = id.with_scale_and_position(scaled.scale(), point(caret, baseline));
            if let Some(outline) = self.font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                let (left, top) = (bounds.min.x as i64, bounds.min.y as i64);
                outline.draw(|x, y, ink| {
                    let (px, py) = (left + x as i64, top + y as i64);
                    if px >= 0 && py >= 0 && px < width as i64 && py < height as i64 {
                        let cell = &mut coverage[(py as u32 * width + px as u32) as usize];
                        *cell = (*cell + ink).min(1.0);
                    }
                });
            }
        }
        Mask {
            width,
            height,
            coverage,
        }
    }

    /// Draws one line of `text` with the top of its line box at `top` and
    /// `x` its left end, centre or right end as `align` says.
    pub(crate) fn draw(
        &self,
        image: &mut RgbImage,
        text: &str,
        size: f32,
        (x, top): (i64, i64),
        align: Align,
        colour: [u8; 3],
    ) {
        let mask = self.mask(text, size);
        let ink = mask.width as i64 - 2;
        let left = match align {
            Align::Left => x,
            Align::Centre => x - ink / 2,
            Align::Right => x - ink,
        };
        for my in 0..mask.height {
            for mx in 0..mask.width {
                let a = mask.coverage[(my * mask.width + mx) as usize];
                blend(image, left + mx as i64, top + my as i64, colour, a);
            }
        }
    }

    /// Draws `text` turned a quarter anticlockwise (reading upwards, as a
    /// y-axis label), centred on `(cx, cy)`.
    pub(crate) fn draw_upwards(
        &self,
        image: &mut RgbImage,
        text: &str,
        size: f32,
        (cx, cy): (i64, i64),
        colour: [u8; 3],
    ) {
        let mask = self.mask(text, size);
        // Mask pixel (mx, my) goes to (my, width - 1 - mx) of the turned box,
        // whose size is height × width.
        let left = cx - mask.height as i64 / 2;
        let top = cy - mask.width as i64 / 2;
        for my in 0..mask.height {
            for mx in 0..mask.width {
                let a = mask.coverage[(my * mask.width + mx) as usize];
                let (x, y) = (my as i64, (mask.width - 1 - mx) as i64);
                blend(image, left + x, top + y, colour, a);
            }
        }
    }
}

/// Mixes `colour` into the pixel at `(x, y)` with weight `alpha`; pixels
/// outside the image are skipped.
pub(crate) fn blend(image: &mut RgbImage, x: i64, y: i64, colour: [u8; 3], alpha: f32) {
    if alpha <= 0.0 || x < 0 || y < 0 || x >= image.width() as i64 || y >= image.height() as i64 {
        return;
    }
    let alpha = alpha.min(1.0);
    let pixel = image.get_pixel_mut(x as u32, y as u32);
    for (channel, &c) in pixel.0.iter_mut().zip(&colour) {
        *channel = (*channel as f32 * (1.0 - alpha) + c as f32 * alpha).round() as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lowest row with any ink in the columns `x0..x1`.
    fn bottom_of_ink(image: &RgbImage, x0: u32, x1: u32) -> u32 {
        let mut bottom = 0;
        for y in 0..image.height() {
            for x in x0..x1 {
                if image.get_pixel(x, y).0[0] < 160 {
                    bottom = y;
                }
            }
        }
        bottom
    }

    #[test]
    fn a_period_sits_on_the_baseline_at_every_size() {
        let face = Typeface::load().unwrap();
        for size in [11.0, 12.0, 13.0, 14.0, 15.0, 16.5, 21.0] {
            let mut image = RgbImage::from_pixel(120, 40, image::Rgb([255, 255, 255]));
            // DejaVu's "1" stands on a flat foot, its "." is a square.
            face.draw(&mut image, "1.1", size, (2, 4), Align::Left, [0, 0, 0]);
            let one = face.width("1", size);
            let dot = face.width("1.", size);
            let digit_bottom = bottom_of_ink(&image, 2, 2 + one);
            let dot_bottom = bottom_of_ink(&image, 2 + one, 2 + dot);
            assert_eq!(digit_bottom, dot_bottom, "size {size}");
        }
    }

    #[test]
    fn widths_grow_with_text_and_size() {
        let face = Typeface::load().unwrap();
        assert_eq!(face.width("", 14.0), 0);
        assert!(face.width("10000", 14.0) > face.width("1", 14.0));
        assert!(face.width("10000", 20.0) > face.width("10000", 14.0));
        assert_eq!(face.line_height(20.0), 20);
    }
}
