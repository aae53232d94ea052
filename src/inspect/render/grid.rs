//! Grids of tiles: [`weight_grid`] (signed values on the diverging scale,
//! with a colour bar), [`templates_gif`] (that grid once per training
//! snapshot) and [`image_grid`] (grayscale images). All three share one
//! `GridLayout`, so a GIF's frames line up pixel for pixel.

use super::{
    check_size, fill_rect, outline_rect, write_png, GridOptions, Tile, CAPTION_SIZE, FRAME, INK,
    LABEL_SIZE, MARGIN, MUTED, PAPER, SUBTITLE_SIZE, TITLE_SIZE,
};
use crate::checkpoint::write_atomically;
use crate::inspect::colormap::{diverging, grayscale, INVALID};
use crate::inspect::text::{Align, Typeface};
use anyhow::{bail, Context};
use image::{Rgb, RgbImage};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// Height of the colour bar.
const BAR_HEIGHT: u32 = 14;

/// Draws `tiles` as signed values on the diverging scale, in a grid with an
/// optional caption under each tile (`captions` empty, or one per tile;
/// `'\n'` breaks a caption into lines), `opts.title` above and a colour bar
/// labelled `−s`, `0`, `+s` below.
///
/// All tiles must have the same size. Returns the image size.
pub fn weight_grid(
    path: &Path,
    tiles: &[Tile],
    captions: &[String],
    opts: &GridOptions,
) -> anyhow::Result<(u32, u32)> {
    let draw = || -> anyhow::Result<RgbImage> {
        let shape = tile_shape(tiles)?;
        check_captions(captions, tiles.len())?;
        let scale = colour_scale(opts.scale, tiles.iter())?;
        let face = Typeface::load()?;
        let paint = Paint::signed(shape.2, scale);
        let layout = GridLayout::new(&face, shape, tiles.len(), captions, &[], paint, opts)?;
        Ok(layout.draw(&face, tiles, captions, "", opts))
    };
    let image = draw().with_context(|| format!("cannot draw {}", path.display()))?;
    write_png(path, &image)
}

/// Draws one [`weight_grid`] per snapshot in `frames` (`(label, tiles)`, the
/// label shown under the title, e.g. "step 400") as an animated GIF that
/// loops forever.
///
/// Every frame has the same tiles' count and size, the same `captions`, the
/// same image size and one colour scale (by default the largest `|value|`
/// over all frames), so what changes between frames is only what the
/// network learned. Colours come from one fixed palette shared by all
/// frames, so nothing flickers. Returns the image size.
pub fn templates_gif(
    path: &Path,
    frames: &[(String, Vec<Tile>)],
    captions: &[String],
    opts: &GridOptions,
) -> anyhow::Result<(u32, u32)> {
    let encode = || -> anyhow::Result<(Vec<u8>, (u32, u32))> {
        let Some((_, first)) = frames.first() else {
            bail!("no frames to animate");
        };
        let shape = tile_shape(first)?;
        for (i, (label, tiles)) in frames.iter().enumerate() {
            if tiles.len() != first.len() {
                bail!(
                    "frame {i} (\"{label}\") has {} tiles but frame 0 has {}",
                    tiles.len(),
                    first.len()
                );
            }
            let this = tile_shape(tiles).with_context(|| format!("frame {i} (\"{label}\")"))?;
            if this != shape {
                bail!(
                    "frame {i} (\"{label}\") has {}×{}×{} tiles but frame 0 has {}×{}×{}",
                    this.2,
                    this.1,
                    this.0,
                    shape.2,
                    shape.1,
                    shape.0
                );
            }
        }
        check_captions(captions, first.len())?;
        let scale = colour_scale(opts.scale, frames.iter().flat_map(|(_, tiles)| tiles))?;
        let face = Typeface::load()?;
        let labels: Vec<String> = frames.iter().map(|(label, _)| label.clone()).collect();
        let paint = Paint::signed(shape.2, scale);
        let layout = GridLayout::new(&face, shape, first.len(), captions, &labels, paint, opts)?;
        let (width, height) = (layout.width, layout.height);

        let palette = Palette::new(paint);
        let mut gif = Vec::new();
        {
            let mut encoder =
                gif::Encoder::new(&mut gif, width as u16, height as u16, &palette.rgb)?;
            encoder.set_repeat(gif::Repeat::Infinite)?;
            let delay = (opts.frame_delay_ms / 10).clamp(2, u16::MAX as u32 / 4) as u16;
            let mut nearest = HashMap::new();
            for (i, (label, tiles)) in frames.iter().enumerate() {
                let image = layout.draw(&face, tiles, captions, label, opts);
                let indices: Vec<u8> = image
                    .pixels()
                    .map(|p| *nearest.entry(p.0).or_insert_with(|| palette.nearest(p.0)))
                    .collect();
                let last = i + 1 == frames.len();
                let frame = gif::Frame {
                    width: width as u16,
                    height: height as u16,
                    delay: if last { 4 * delay } else { delay },
                    buffer: Cow::Owned(indices),
                    ..gif::Frame::default()
                };
                encoder.write_frame(&frame)?;
            }
        }
        Ok((gif, (width, height)))
    };
    let (gif, size) = encode().with_context(|| format!("cannot draw {}", path.display()))?;
    write_atomically(path, &gif)?;
    Ok(size)
}

/// Draws grayscale `tiles` (values in `[0, 1]`, 0 black and 1 white;
/// values outside are clipped), or colour ones (each of the three planes in
/// `[0, 1]`), in a grid with `captions` under them
/// (empty, or one per tile; `'\n'` breaks lines), e.g. "class 3: act 12.4"
/// or "4 → 9 (97%)". `opts.scale`, `legend_label` and `frame_delay_ms` are
/// not used. Returns the image size.
pub fn image_grid(
    path: &Path,
    tiles: &[Tile],
    captions: &[String],
    opts: &GridOptions,
) -> anyhow::Result<(u32, u32)> {
    let draw = || -> anyhow::Result<RgbImage> {
        let shape = tile_shape(tiles)?;
        check_captions(captions, tiles.len())?;
        let face = Typeface::load()?;
        let paint = if shape.2 == 3 {
            Paint::Rgb
        } else {
            Paint::Gray
        };
        let layout = GridLayout::new(&face, shape, tiles.len(), captions, &[], paint, opts)?;
        Ok(layout.draw(&face, tiles, captions, "", opts))
    };
    let image = draw().with_context(|| format!("cannot draw {}", path.display()))?;
    write_png(path, &image)
}

// ---------------------------------------------------------------------------
// Checks and helpers.

/// The `(width, height, channels)` every tile shares.
fn tile_shape(tiles: &[Tile]) -> anyhow::Result<(usize, usize, usize)> {
    let Some(first) = tiles.first() else {
        bail!("no tiles to draw");
    };
    for (i, tile) in tiles.iter().enumerate() {
        tile.check().with_context(|| format!("tile {i}"))?;
        if (tile.width, tile.height) != (first.width, first.height) {
            bail!(
                "tile {i} is {}×{} but tile 0 is {}×{}: all tiles must have one size",
                tile.width,
                tile.height,
                first.width,
                first.height
            );
        }
        if tile.channels != first.channels {
            bail!(
                "tile {i} has {} planes but tile 0 has {}: all tiles must be gray or all colour",
                tile.channels,
                first.channels
            );
        }
    }
    Ok((first.width, first.height, first.channels))
}

fn check_captions(captions: &[String], tiles: usize) -> anyhow::Result<()> {
    if !captions.is_empty() && captions.len() != tiles {
        bail!(
            "{} captions for {tiles} tiles: give one per tile, or none",
            captions.len()
        );
    }
    Ok(())
}

/// The given scale, checked, or the largest finite `|value|` (1 when every
/// value is 0 or not finite).
fn colour_scale<'a>(
    given: Option<f32>,
    tiles: impl Iterator<Item = &'a Tile>,
) -> anyhow::Result<f32> {
    if let Some(scale) = given {
        if !(scale.is_finite() && scale > 0.0) {
            bail!("the colour scale must be a positive number, not {scale}");
        }
        return Ok(scale);
    }
    let largest = tiles
        .flat_map(|tile| tile.values.iter())
        .filter(|v| v.is_finite())
        .fold(0.0f32, |m, v| m.max(v.abs()));
    Ok(if largest > 0.0 { largest } else { 1.0 })
}

/// A value for a label: three significant digits, a true minus sign, and
/// scientific notation only for very small or large numbers.
fn format_value(v: f32) -> String {
    let magnitude = v.abs();
    let text = if magnitude == 0.0 {
        "0".to_string()
    } else if !(1e-3..1e4).contains(&magnitude) {
        format!("{magnitude:.2e}")
    } else {
        let decimals = (2 - magnitude.log10().floor() as i32).max(0) as usize;
        format!("{magnitude:.decimals$}")
    };
    if v < 0.0 {
        format!("\u{2212}{text}")
    } else {
        text
    }
}

/// A colour bar's colour at `t` in [0, 1].
type Ramp = fn(f32) -> [u8; 3];

/// How tile values become colours.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Paint {
    /// Signed, on the diverging scale with this `s`, with a colour bar.
    Diverging(f32),
    /// Three signed planes, each channel `0.5 + 0.5 · v / s` of full
    /// brightness (0 is mid-gray), with a black-to-white colour bar.
    SignedRgb(f32),
    /// `[0, 1]` on gray, no colour bar.
    Gray,
    /// Three planes in `[0, 1]`, drawn as they are, no colour bar.
    Rgb,
}

impl Paint {
    /// The paint of signed tiles of `channels` planes on the scale `s`.
    fn signed(channels: usize, scale: f32) -> Paint {
        if channels == 3 {
            Paint::SignedRgb(scale)
        } else {
            Paint::Diverging(scale)
        }
    }

    /// The colour of position `k` (`y * width + x`) of `tile`.
    fn colour(self, tile: &Tile, k: usize) -> [u8; 3] {
        let plane = tile.width * tile.height;
        let channel = |c: usize| tile.values[c * plane + k];
        let byte = |v: f32| (255.0 * v.clamp(0.0, 1.0)).round() as u8;
        match self {
            Paint::Diverging(scale) => diverging(channel(0), scale),
            Paint::Gray => grayscale(channel(0)),
            Paint::SignedRgb(scale) => {
                let v = [channel(0), channel(1), channel(2)];
                if v.iter().any(|x| !x.is_finite()) {
                    return INVALID;
                }
                v.map(|x| byte(0.5 + 0.5 * x / scale))
            }
            Paint::Rgb => {
                let v = [channel(0), channel(1), channel(2)];
                if v.iter().any(|x| x.is_nan()) {
                    return INVALID;
                }
                v.map(byte)
            }
        }
    }

    /// The colour bar's scale and its colour at `t` in [0, 1] (`−s` to
    /// `+s`), for the paints that have one.
    fn bar(self) -> Option<(f32, Ramp)> {
        match self {
            Paint::Diverging(scale) => Some((scale, |t| diverging(2.0 * t - 1.0, 1.0))),
            Paint::SignedRgb(scale) => Some((scale, grayscale)),
            Paint::Gray | Paint::Rgb => None,
        }
    }
}

/// Columns for `n` cells when none are asked for: among about √n to √(3n)
/// columns, the one leaving fewest empty cells, then the one nearest √(2n).
fn auto_columns(n: usize) -> usize {
    let n_f = n as f64;
    let low = n_f.sqrt().ceil().max(1.0) as usize;
    let high = ((3.0 * n_f).sqrt().ceil() as usize).clamp(low, n.max(1));
    let target = (2.0 * n_f).sqrt();
    (low..=high)
        .min_by(|&a, &b| {
            let empty = |c: usize| n.div_ceil(c) * c - n;
            empty(a).cmp(&empty(b)).then(
                (a as f64 - target)
                    .abs()
                    .total_cmp(&(b as f64 - target).abs()),
            )
        })
        .unwrap_or(1)
}

// ---------------------------------------------------------------------------
// The layout every grid shares.

/// Where everything of a tile grid goes; the same for every frame of a GIF.
struct GridLayout {
    width: u32,
    height: u32,
    paint: Paint,
    columns: usize,
    /// A tile's `(width, height, channels)` in values.
    shape: (usize, usize, usize),
    zoom: u32,
    /// A cell: the framed tile and its caption lines.
    cell: (u32, u32),
    gap: u32,
    grid_left: u32,
    grid_top: u32,
    /// Top of the title line and of the frame label line, if any.
    title_top: Option<u32>,
    subtitle_top: Option<u32>,
    /// Top of the colour bar's label (or of the bar, without a label).
    legend_top: Option<u32>,
    bar: (u32, u32),
}

impl GridLayout {
    /// `subtitles`: every frame label a GIF will show (the layout leaves
    /// room for the widest); empty for a still picture.
    fn new(
        face: &Typeface,
        shape: (usize, usize, usize),
        count: usize,
        captions: &[String],
        subtitles: &[String],
        paint: Paint,
        opts: &GridOptions,
    ) -> anyhow::Result<GridLayout> {
        if opts.zoom == 0 {
            bail!("zoom must be at least 1");
        }
        let columns = match opts.columns {
            0 => auto_columns(count),
            c => c.min(count),
        };
        let rows = count.div_ceil(columns);
        // Sizes in u64 so that absurd inputs fail the size check instead of
        // overflowing.
        let zoom = opts.zoom as u64;
        let framed = (shape.0 as u64 * zoom + 2, shape.1 as u64 * zoom + 2);
        let caption_lines = captions
            .iter()
            .map(|c| c.lines().count())
            .max()
            .unwrap_or(0);
        let caption_width = face.max_width(captions.iter().flat_map(|c| c.lines()), CAPTION_SIZE);
        let caption_line = face.line_height(CAPTION_SIZE) as u64;
        let cell_w = framed.0.max(caption_width as u64 + 8);
        let cell_h = framed.1
            + if caption_lines > 0 {
                4 + caption_lines as u64 * caption_line
            } else {
                0
            };
        let gap = opts.gap as u64;
        let grid_w = columns as u64 * cell_w + (columns as u64 - 1) * gap;
        let grid_h = rows as u64 * cell_h + (rows as u64 - 1) * gap;

        let mut content_w = grid_w;
        let mut y = MARGIN as u64;
        let title_top = (!opts.title.is_empty()).then(|| {
            content_w = content_w.max(face.width(&opts.title, TITLE_SIZE) as u64);
            let top = y;
            y += face.line_height(TITLE_SIZE) as u64 + 8;
            top as u32
        });
        let subtitle_top = (!subtitles.is_empty()).then(|| {
            let widest = face.max_width(subtitles.iter().map(String::as_str), SUBTITLE_SIZE);
            content_w = content_w.max(widest as u64);
            let top = y;
            y += face.line_height(SUBTITLE_SIZE) as u64 + 8;
            top as u32
        });
        if title_top.is_some() || subtitle_top.is_some() {
            y += 4;
        }
        let grid_top = y;
        y += grid_h;

        let mut bar_w = 0u64;
        let legend_top = match paint.bar() {
            None => None,
            Some((scale, _)) => {
                y += 18;
                let top = y;
                let labels = [
                    format_value(-scale),
                    "0".into(),
                    format!("+{}", format_value(scale)),
                ];
                let labels_w: u64 = labels
                    .iter()
                    .map(|l| face.width(l, LABEL_SIZE) as u64)
                    .sum();
                bar_w = (grid_w / 2).clamp(220, 360).max(labels_w + 32);
                content_w = content_w.max(bar_w);
                if !opts.legend_label.is_empty() {
                    content_w = content_w.max(face.width(&opts.legend_label, LABEL_SIZE) as u64);
                    y += face.line_height(LABEL_SIZE) as u64 + 4;
                }
                y += BAR_HEIGHT as u64 + 6 + face.line_height(LABEL_SIZE) as u64;
                Some(top as u32)
            }
        };
        let width = content_w + 2 * MARGIN as u64;
        let height = y + MARGIN as u64;
        let clamp = |v: u64| v.min(u32::MAX as u64) as u32;
        check_size(clamp(width), clamp(height))?;
        Ok(GridLayout {
            width: width as u32,
            height: height as u32,
            paint,
            columns,
            shape,
            zoom: opts.zoom,
            cell: (cell_w as u32, cell_h as u32),
            gap: opts.gap,
            grid_left: ((width - grid_w) / 2) as u32,
            grid_top: grid_top as u32,
            title_top,
            subtitle_top,
            legend_top,
            bar: (((width - bar_w) / 2) as u32, bar_w as u32),
        })
    }

    fn draw(
        &self,
        face: &Typeface,
        tiles: &[Tile],
        captions: &[String],
        subtitle: &str,
        opts: &GridOptions,
    ) -> RgbImage {
        let mut image = RgbImage::from_pixel(self.width, self.height, Rgb(PAPER));
        let centre = self.width as i64 / 2;
        if let Some(top) = self.title_top {
            face.draw(
                &mut image,
                &opts.title,
                TITLE_SIZE,
                (centre, top as i64),
                Align::Centre,
                INK,
            );
        }
        if let Some(top) = self.subtitle_top {
            face.draw(
                &mut image,
                subtitle,
                SUBTITLE_SIZE,
                (centre, top as i64),
                Align::Centre,
                INK,
            );
        }
        let zoom = self.zoom as usize;
        let framed = (
            (self.shape.0 * zoom) as u32 + 2,
            (self.shape.1 * zoom) as u32 + 2,
        );
        let caption_line = face.line_height(CAPTION_SIZE) as i64;
        for (i, tile) in tiles.iter().enumerate() {
            let (col, row) = ((i % self.columns) as u32, (i / self.columns) as u32);
            let cell_x = (self.grid_left + col * (self.cell.0 + self.gap)) as i64;
            let cell_y = (self.grid_top + row * (self.cell.1 + self.gap)) as i64;
            let left = cell_x + (self.cell.0 - framed.0) as i64 / 2;
            outline_rect(&mut image, left, cell_y, framed.0, framed.1, FRAME);
            for k in 0..tile.width * tile.height {
                let (x, y) = ((k % tile.width) * zoom, (k / tile.width) * zoom);
                let colour = self.paint.colour(tile, k);
                fill_rect(
                    &mut image,
                    left + 1 + x as i64,
                    cell_y + 1 + y as i64,
                    self.zoom,
                    self.zoom,
                    colour,
                );
            }
            if let Some(caption) = captions.get(i) {
                let cx = cell_x + self.cell.0 as i64 / 2;
                for (j, line) in caption.lines().enumerate() {
                    let top = cell_y + framed.1 as i64 + 4 + j as i64 * caption_line;
                    face.draw(
                        &mut image,
                        line,
                        CAPTION_SIZE,
                        (cx, top),
                        Align::Centre,
                        INK,
                    );
                }
            }
        }
        if let (Some(top), Some((scale, ramp))) = (self.legend_top, self.paint.bar()) {
            self.draw_colour_bar(
                face,
                &mut image,
                top as i64,
                scale,
                ramp,
                &opts.legend_label,
            );
        }
        image
    }

    /// The bar from `−s` to `+s`, ticked and labelled at both ends and at 0.
    fn draw_colour_bar(
        &self,
        face: &Typeface,
        image: &mut RgbImage,
        top: i64,
        scale: f32,
        ramp: Ramp,
        label: &str,
    ) {
        let (left, width) = (self.bar.0 as i64, self.bar.1);
        let mut y = top;
        if !label.is_empty() {
            let centre = left + width as i64 / 2;
            face.draw(image, label, LABEL_SIZE, (centre, y), Align::Centre, MUTED);
            y += face.line_height(LABEL_SIZE) as i64 + 4;
        }
        for x in 0..width {
            let t = x as f32 / (width - 1) as f32;
            fill_rect(image, left + x as i64, y, 1, BAR_HEIGHT, ramp(t));
        }
        outline_rect(image, left, y, width, BAR_HEIGHT, FRAME);
        let below = y + BAR_HEIGHT as i64;
        let ends = [left, left + width as i64 / 2, left + width as i64 - 1];
        for x in ends {
            fill_rect(image, x, below, 1, 4, MUTED);
        }
        let text_top = below + 6;
        let size = LABEL_SIZE;
        face.draw(
            image,
            &format_value(-scale),
            size,
            (ends[0], text_top),
            Align::Left,
            INK,
        );
        face.draw(image, "0", size, (ends[1], text_top), Align::Centre, INK);
        let plus = format!("+{}", format_value(scale));
        face.draw(
            image,
            &plus,
            size,
            (ends[2] + 1, text_top),
            Align::Right,
            INK,
        );
    }
}

/// The GIF's one palette: for signed gray tiles the diverging scale in 201
/// steps, 49 grays (text on white, frames, grayscale tiles) and the NaN
/// colour; for colour tiles a 6×6×6 colour cube, 38 grays and the NaN
/// colour.
struct Palette {
    /// `[r, g, b, r, g, b, …]`, 256 entries.
    rgb: Vec<u8>,
}

impl Palette {
    fn new(paint: Paint) -> Palette {
        let grays = |n: usize| {
            (0..n).map(move |i| {
                let g = (i * 255 / (n - 1)) as u8;
                [g, g, g]
            })
        };
        let mut colours: Vec<[u8; 3]> = if let Paint::SignedRgb(_) = paint {
            let level = |i: usize| (i * 51) as u8;
            let mut cube: Vec<[u8; 3]> = (0..216)
                .map(|i| [level(i / 36), level(i / 6 % 6), level(i % 6)])
                .collect();
            cube.extend(grays(38));
            cube
        } else {
            let mut scale: Vec<[u8; 3]> = (0..=200)
                .map(|i| diverging(i as f32 / 100.0 - 1.0, 1.0))
                .collect();
            scale.extend(grays(49));
            scale
        };
        colours.push(INVALID);
        colours.resize(256, [0, 0, 0]);
        Palette {
            rgb: colours.concat(),
        }
    }

    /// The index of the palette colour closest to `colour`.
    fn nearest(&self, colour: [u8; 3]) -> u8 {
        let distance = |entry: &[u8]| -> i32 {
            (0..3)
                .map(|k| (entry[k] as i32 - colour[k] as i32).pow(2))
                .sum()
        };
        let (index, _) = self
            .rgb
            .chunks_exact(3)
            .enumerate()
            .min_by_key(|(_, entry)| distance(entry))
            .unwrap_or((0, &[]));
        index as u8
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode_rgb as rgb;
    use super::*;
    use image::codecs::gif::GifDecoder;
    use image::AnimationDecoder;

    fn blob(seed: usize) -> Tile {
        let values = (0..28 * 28)
            .map(|k| {
                let (x, y) = ((k % 28) as f32 - 14.0, (k / 28) as f32 - 14.0);
                let angle = seed as f32 * 0.7;
                (0.15 * (x * angle.cos() + y * angle.sin())).sin()
                    * (-(x * x + y * y) / 120.0).exp()
                    * 0.3
            })
            .collect();
        Tile::new(28, 28, values).unwrap()
    }

    #[test]
    fn weight_grid_shows_sign_as_three_distinct_colours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        let constant = |v: f32| Tile::new(3, 2, vec![v; 6]).unwrap();
        let tiles = [constant(1.0), constant(0.0), constant(-1.0)];
        let captions: Vec<String> = ["plus", "zero", "minus"].map(String::from).to_vec();
        let opts = GridOptions {
            columns: 3,
            zoom: 10,
            title: "signs".into(),
            legend_label: "weight".into(),
            ..GridOptions::default()
        };
        let size = weight_grid(&path, &tiles, &captions, &opts).unwrap();
        let image = rgb(&path, size);
        // Recompute where the tiles went and sample each one's centre.
        let face = Typeface::load().unwrap();
        let layout = GridLayout::new(
            &face,
            (3, 2, 1),
            3,
            &captions,
            &[],
            Paint::Diverging(1.0),
            &opts,
        )
        .unwrap();
        let centre_of = |i: u32| {
            let x = layout.grid_left + i * (layout.cell.0 + layout.gap) + layout.cell.0 / 2;
            let y = layout.grid_top + 1 + 10;
            image.get_pixel(x, y).0
        };
        let (plus, zero, minus) = (centre_of(0), centre_of(1), centre_of(2));
        assert_eq!(plus, diverging(1.0, 1.0));
        assert_eq!(zero, diverging(0.0, 1.0));
        assert_eq!(minus, diverging(-1.0, 1.0));
        assert!(plus[0] > 90 && plus[2] < 60, "positive is red: {plus:?}");
        assert!(
            minus[2] > 90 && minus[0] < 60,
            "negative is blue: {minus:?}"
        );
        assert!(zero.iter().all(|&c| c > 235), "zero is white: {zero:?}");
        // Only the PNG is left: written atomically.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn colour_tiles_are_drawn_per_channel_with_zero_at_mid_gray() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("colour.png");
        // Tile 0: +1 in red, −1 in blue (towards red, away from blue);
        // tile 1: all zero; tile 2: −1 in red only (towards cyan).
        let planes =
            |r: f32, g: f32, b: f32| Tile::rgb(3, 2, [[r; 6], [g; 6], [b; 6]].concat()).unwrap();
        let tiles = [
            planes(1.0, 0.0, -1.0),
            planes(0.0, 0.0, 0.0),
            planes(-1.0, 0.0, 0.0),
        ];
        let opts = GridOptions {
            columns: 3,
            zoom: 10,
            legend_label: "weight".into(),
            ..GridOptions::default()
        };
        let size = weight_grid(&path, &tiles, &[], &opts).unwrap();
        let image = rgb(&path, size);
        let face = Typeface::load().unwrap();
        let layout =
            GridLayout::new(&face, (3, 2, 3), 3, &[], &[], Paint::SignedRgb(1.0), &opts).unwrap();
        let centre_of = |i: u32| {
            let x = layout.grid_left + i * (layout.cell.0 + layout.gap) + layout.cell.0 / 2;
            image.get_pixel(x, layout.grid_top + 11).0
        };
        assert_eq!(centre_of(0), [255, 128, 0]);
        assert_eq!(centre_of(1), [128, 128, 128]);
        assert_eq!(centre_of(2), [0, 128, 128]);
        // The colour bar is a gray ramp: black at −s, white at +s.
        assert!(image.pixels().any(|p| p.0.iter().all(|&c| c < 8)));

        // Colour images in [0, 1] are drawn as they are.
        let path = dir.path().join("images.png");
        let red = Tile::rgb(2, 2, [[1.0; 4], [0.0; 4], [0.0; 4]].concat()).unwrap();
        let size = image_grid(&path, &[red], &[], &GridOptions::default()).unwrap();
        assert!(rgb(&path, size).pixels().any(|p| p.0 == [255, 0, 0]));
        // Gray and colour tiles do not mix.
        let e = weight_grid(
            &path,
            &[tiles[0].clone(), Tile::new(3, 2, vec![0.0; 6]).unwrap()],
            &[],
            &opts,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("tile 1 has 1 planes"), "{e:#}");
    }

    #[test]
    fn colour_gif_frames_keep_their_colours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("colour.gif");
        let frame = |v: f32| {
            (
                format!("step {v}"),
                vec![Tile::rgb(4, 4, [[v; 16], [0.0; 16], [-v; 16]].concat()).unwrap()],
            )
        };
        let frames = [frame(0.0), frame(1.0)];
        templates_gif(&path, &frames, &[], &GridOptions::default()).unwrap();
        let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let decoded = GifDecoder::new(file)
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap();
        // The last frame's tile is orange-red (255, 128, 0) to within the palette.
        assert!(decoded[1]
            .buffer()
            .pixels()
            .any(|p| p.0[0] == 255 && p.0[2] == 0 && (100..=160).contains(&p.0[1])));
    }

    #[test]
    fn grids_decode_at_the_returned_size() {
        let dir = tempfile::tempdir().unwrap();
        let tiles: Vec<Tile> = (0..10).map(blob).collect();
        let captions: Vec<String> = (0..10).map(|c| format!("class {c}")).collect();
        let opts = GridOptions {
            title: "What each output unit looks for".into(),
            legend_label: "weight".into(),
            ..GridOptions::default()
        };
        let path = dir.path().join("weights.png");
        let size = weight_grid(&path, &tiles, &captions, &opts).unwrap();
        let image = rgb(&path, size);
        assert!(image
            .pixels()
            .any(|p| p.0 == diverging(-0.3, 0.3) || p.0[2] > p.0[0] + 60));

        let images: Vec<Tile> = (0..6)
            .map(|i| {
                Tile::new(
                    28,
                    28,
                    (0..784)
                        .map(|k| ((k + i * 50) % 784) as f32 / 783.0)
                        .collect(),
                )
                .unwrap()
            })
            .collect();
        let captions: Vec<String> = (0..6)
            .map(|i| format!("{i} \u{2192} 9\n(97.{i}%)"))
            .collect();
        let path = dir.path().join("mistakes.png");
        let opts = GridOptions {
            title: "Most confident mistakes".into(),
            columns: 3,
            ..GridOptions::default()
        };
        let size = image_grid(&path, &images, &captions, &opts).unwrap();
        let image = rgb(&path, size);
        assert!(image.pixels().any(|p| p.0 == [0, 0, 0]));
    }

    #[test]
    fn gif_has_one_frame_per_snapshot_all_one_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("templates.gif");
        let frames: Vec<(String, Vec<Tile>)> = (0..4)
            .map(|step| {
                let tiles = (0..3)
                    .map(|c| {
                        let mut tile = blob(c);
                        tile.values.iter_mut().for_each(|v| *v *= step as f32);
                        tile
                    })
                    .collect();
                (format!("step {}", step * 400), tiles)
            })
            .collect();
        let captions: Vec<String> = (0..3).map(|c| c.to_string()).collect();
        let opts = GridOptions {
            title: "Templates".into(),
            frame_delay_ms: 300,
            ..GridOptions::default()
        };
        let (width, height) = templates_gif(&path, &frames, &captions, &opts).unwrap();
        let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let decoded = GifDecoder::new(file)
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap();
        assert_eq!(decoded.len(), 4);
        for frame in &decoded {
            assert_eq!(frame.buffer().dimensions(), (width, height));
        }
        let (num, den) = decoded[0].delay().numer_denom_ms();
        assert_eq!(num / den, 300);
        let (num, den) = decoded[3].delay().numer_denom_ms();
        assert_eq!(num / den, 1200);
        // Frame 0 is all zeros (white tiles), the last has strong colours.
        let strong = |i: usize| {
            decoded[i]
                .buffer()
                .pixels()
                .filter(|p| (p.0[0] as i32 - p.0[2] as i32).abs() > 100)
                .count()
        };
        assert!(
            strong(3) > strong(0) + 2000,
            "{} vs {}",
            strong(3),
            strong(0)
        );
    }

    #[test]
    fn bad_inputs_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.png");
        let tile = Tile::new(2, 2, vec![0.0; 4]).unwrap();
        let opts = GridOptions::default();
        let err = |r: anyhow::Result<(u32, u32)>| format!("{:#}", r.unwrap_err());

        let e = err(weight_grid(&path, &[], &[], &opts));
        assert!(e.contains("bad.png") && e.contains("no tiles"), "{e}");
        let odd = Tile::new(3, 2, vec![0.0; 6]).unwrap();
        let e = err(weight_grid(&path, &[tile.clone(), odd], &[], &opts));
        assert!(e.contains("tile 1 is 3×2"), "{e}");
        let e = err(image_grid(
            &path,
            std::slice::from_ref(&tile),
            &["a".into(), "b".into()],
            &opts,
        ));
        assert!(e.contains("2 captions for 1 tiles"), "{e}");
        let zero_scale = GridOptions {
            scale: Some(0.0),
            ..GridOptions::default()
        };
        assert!(err(weight_grid(
            &path,
            std::slice::from_ref(&tile),
            &[],
            &zero_scale
        ))
        .contains("positive"));
        let huge = GridOptions {
            zoom: 400,
            ..GridOptions::default()
        };
        let big = Tile::new(28, 28, vec![0.0; 784]).unwrap();
        assert!(err(weight_grid(&path, &[big], &[], &huge)).contains("over the limit"));
        let gif_path = dir.path().join("bad.gif");
        let frames = vec![
            ("a".to_string(), vec![tile.clone()]),
            ("b".to_string(), vec![tile.clone(), tile]),
        ];
        let e = err(templates_gif(&gif_path, &frames, &[], &opts));
        assert!(e.contains("bad.gif") && e.contains("frame 1"), "{e}");
        assert!(err(templates_gif(&gif_path, &[], &[], &opts)).contains("no frames"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn helpers() {
        assert_eq!(auto_columns(1), 1);
        assert_eq!(auto_columns(10), 5);
        assert_eq!(auto_columns(128), 16);
        assert_eq!(auto_columns(64), 8);
        assert_eq!(format_value(0.4231), "0.423");
        assert_eq!(format_value(-12.345), "\u{2212}12.3");
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(2e-5), "2.00e-5");
        // The palette keeps the diverging scale's colours exactly.
        let palette = Palette::new(Paint::Diverging(1.0));
        let c = diverging(0.5, 1.0);
        let i = palette.nearest(c) as usize;
        assert_eq!(&palette.rgb[3 * i..3 * i + 3], &c);
    }
}
