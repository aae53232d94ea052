//! Pictures of what a network learned: numbers in, PNG or GIF files out.
//!
//! - [`weight_grid`]: signed tiles (a unit's incoming weights as a 28×28
//!   image, a class template, a gradient) side by side on one blue–white–red
//!   scale, with captions, a title and a colour bar.
//! - [`templates_gif`]: the same grid once per training snapshot, as an
//!   animated GIF that loops forever.
//! - [`image_grid`]: grayscale images in `[0, 1]` with a caption under each
//!   (activation-maximisation images, the most confident mistakes).
//! - [`confusion_heatmap`]: a confusion matrix with its counts written in.
//! - [`scatter`]: points in 2-D coloured by class, with a legend (a hidden
//!   layer's PCA).
//!
//! Every function checks its input first (an error names the file and the
//! problem), draws into memory, encodes, and writes the file atomically with
//! [`write_atomically`], so a reader never sees half a picture. Each returns
//! the `(width, height)` it wrote, in pixels.
//!
//! Tiles are enlarged by an integer factor with nearest-neighbour sampling,
//! so each weight stays one crisp square; a thin gray frame around each tile
//! keeps near-zero (near-white) edges visible against the white page.

use super::colormap::{blues, class_colour, diverging, grayscale, luminance, reds, INVALID};
use super::text::{blend, Align, Typeface};
use crate::checkpoint::write_atomically;
use anyhow::{bail, Context};
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// The largest side, in pixels, of any picture drawn here.
pub const MAX_SIDE: u32 = 8192;

/// A `width × height` grid of numbers, row-major: `values[y * width + x]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub width: usize,
    pub height: usize,
    pub values: Vec<f32>,
}

impl Tile {
    /// A tile, checking that `values` holds `width × height` numbers.
    pub fn new(width: usize, height: usize, values: Vec<f32>) -> anyhow::Result<Tile> {
        let tile = Tile {
            width,
            height,
            values,
        };
        tile.check()?;
        Ok(tile)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.width == 0 || self.height == 0 {
            bail!("a tile of {}×{} values is empty", self.width, self.height);
        }
        if self.values.len() != self.width * self.height {
            bail!(
                "a {}×{} tile needs {} values but has {}",
                self.width,
                self.height,
                self.width * self.height,
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
        let paint = Paint::Diverging(scale);
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
                    "frame {i} (\"{label}\") has {}×{} tiles but frame 0 has {}×{}",
                    this.0,
                    this.1,
                    shape.0,
                    shape.1
                );
            }
        }
        check_captions(captions, first.len())?;
        let scale = colour_scale(opts.scale, frames.iter().flat_map(|(_, tiles)| tiles))?;
        let face = Typeface::load()?;
        let labels: Vec<String> = frames.iter().map(|(label, _)| label.clone()).collect();
        let paint = Paint::Diverging(scale);
        let layout = GridLayout::new(&face, shape, first.len(), captions, &labels, paint, opts)?;
        let (width, height) = (layout.width, layout.height);

        let palette = Palette::new();
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
/// values outside are clipped) in a grid with `captions` under them
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
        let layout = GridLayout::new(&face, shape, tiles.len(), captions, &[], Paint::Gray, opts)?;
        Ok(layout.draw(&face, tiles, captions, "", opts))
    };
    let image = draw().with_context(|| format!("cannot draw {}", path.display()))?;
    write_png(path, &image)
}

/// Draws a confusion matrix, `confusion[true][predicted]` counts for `n`
/// classes labelled `0..n`, as a heat map with every count written in its
/// cell.
///
/// Colours are shares of the row (of the images of that true class): the
/// diagonal on a white-to-blue scale by the share classified right, the
/// other cells on a white-to-red scale by the share given that wrong class,
/// the darkest red being the largest such share, so the worst confusions
/// stand out however good the network is. A column on the right gives each
/// class's share right; the title gives the overall accuracy.
pub fn confusion_heatmap(path: &Path, confusion: &[Vec<u64>]) -> anyhow::Result<(u32, u32)> {
    let image =
        draw_confusion(confusion).with_context(|| format!("cannot draw {}", path.display()))?;
    write_png(path, &image)
}

/// Draws `points` as dots coloured by `classes` (one class per point; ten
/// distinct colours, which classes from 10 on reuse), with axes, ticks,
/// `x_label`, `y_label`, `title` and a legend of the classes present.
///
/// Points that are not finite are left out; it is an error if none is
/// left. Points are drawn half-transparent and in a scrambled but fixed
/// order, so where classes overlap no class hides the others just by
/// coming last. Returns the image size (960 × 720).
pub fn scatter(
    path: &Path,
    points: &[(f32, f32)],
    classes: &[u8],
    title: &str,
    x_label: &str,
    y_label: &str,
) -> anyhow::Result<(u32, u32)> {
    let image = draw_scatter(points, classes, title, x_label, y_label)
        .with_context(|| format!("cannot draw {}", path.display()))?;
    write_png(path, &image)
}

// ---------------------------------------------------------------------------
// Checks and shared helpers.

/// The `(width, height)` every tile shares.
fn tile_shape(tiles: &[Tile]) -> anyhow::Result<(usize, usize)> {
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
    }
    Ok((first.width, first.height))
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

/// How tile values become colours.
#[derive(Debug, Clone, Copy)]
enum Paint {
    /// Signed, on the diverging scale with this `s`, with a colour bar.
    Diverging(f32),
    /// `[0, 1]` on gray, no colour bar.
    Gray,
}

impl Paint {
    fn colour(self, v: f32) -> [u8; 3] {
        match self {
            Paint::Diverging(scale) => diverging(v, scale),
            Paint::Gray => grayscale(v),
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
// Grids of tiles.

/// Where everything of a tile grid goes; the same for every frame of a GIF.
struct GridLayout {
    width: u32,
    height: u32,
    paint: Paint,
    columns: usize,
    /// A tile's `(width, height)` in values.
    shape: (usize, usize),
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
        shape: (usize, usize),
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
        let legend_top = match paint {
            Paint::Gray => None,
            Paint::Diverging(scale) => {
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
            for (k, &v) in tile.values.iter().enumerate() {
                let (x, y) = ((k % tile.width) * zoom, (k / tile.width) * zoom);
                let colour = self.paint.colour(v);
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
        if let (Some(top), Paint::Diverging(scale)) = (self.legend_top, self.paint) {
            self.draw_colour_bar(face, &mut image, top as i64, scale, &opts.legend_label);
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
            fill_rect(
                image,
                left + x as i64,
                y,
                1,
                BAR_HEIGHT,
                diverging(2.0 * t - 1.0, 1.0),
            );
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

/// The GIF's one palette: the diverging scale in 201 steps, 49 grays (text
/// on white, frames, grayscale tiles) and the NaN colour.
struct Palette {
    /// `[r, g, b, r, g, b, …]`, 256 entries.
    rgb: Vec<u8>,
}

impl Palette {
    fn new() -> Palette {
        let mut colours: Vec<[u8; 3]> = (0..=200)
            .map(|i| diverging(i as f32 / 100.0 - 1.0, 1.0))
            .collect();
        colours.extend((0..=48).map(|i| {
            let g = (i * 255 / 48) as u8;
            [g, g, g]
        }));
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

// ---------------------------------------------------------------------------
// Confusion matrix.

fn draw_confusion(confusion: &[Vec<u64>]) -> anyhow::Result<RgbImage> {
    let n = confusion.len();
    if n == 0 {
        bail!("the confusion matrix is empty");
    }
    for (i, row) in confusion.iter().enumerate() {
        if row.len() != n {
            bail!(
                "the confusion matrix must be square: row {i} has {} entries, there are {n} rows",
                row.len()
            );
        }
    }
    let face = Typeface::load()?;
    let row_totals: Vec<u64> = confusion.iter().map(|row| row.iter().sum()).collect();
    let total: u64 = row_totals.iter().sum();
    let correct: u64 = (0..n).map(|i| confusion[i][i]).sum();
    let share = |i: usize, j: usize| {
        if row_totals[i] == 0 {
            0.0
        } else {
            confusion[i][j] as f64 / row_totals[i] as f64
        }
    };
    let worst = (0..n)
        .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
        .map(|(i, j)| share(i, j))
        .fold(0.0f64, f64::max);

    let count_size = CAPTION_SIZE;
    let widest_count = confusion
        .iter()
        .flatten()
        .map(|c| face.width(&c.to_string(), count_size))
        .max()
        .unwrap_or(0);
    let cell = (widest_count + 12).max(46);
    let label_line = face.line_height(LABEL_SIZE);
    let class_labels: Vec<String> = (0..n).map(|c| c.to_string()).collect();
    let row_label_w = face.max_width(class_labels.iter().map(String::as_str), LABEL_SIZE);
    let percent_w = face
        .width("100.0%", LABEL_SIZE)
        .max(face.width("right", LABEL_SIZE));
    let matrix = cell * n as u32;

    let title = if total == 0 {
        "Confusion matrix: no images counted".to_string()
    } else {
        format!(
            "Confusion matrix: {correct} of {total} right ({:.2}%)",
            100.0 * correct as f64 / total as f64
        )
    };
    let notes = [
        "Rows: the true class. Columns: the class the network predicted.".to_string(),
        "Blue: share of the row predicted right. Red: share given that wrong class".to_string(),
        format!(
            "(darkest red = {:.1}% of the row, the largest confusion).",
            100.0 * worst
        ),
    ];

    // Left to right: axis label, row labels, matrix, share-right column.
    let axis_w = label_line;
    let matrix_left = MARGIN + axis_w + 10 + row_label_w + 8;
    let percent_left = matrix_left + matrix + 10;
    let content_right = percent_left + percent_w;
    let notes_w = face.max_width(notes.iter().map(String::as_str), LABEL_SIZE);
    let title_w = face.width(&title, TITLE_SIZE);
    let width = content_right.max(MARGIN + title_w).max(MARGIN + notes_w) + MARGIN;
    // Top to bottom: title, axis label, column labels, matrix, notes.
    let title_top = MARGIN;
    let axis_top = title_top + face.line_height(TITLE_SIZE) + 12;
    let col_labels_top = axis_top + label_line + 4;
    let matrix_top = col_labels_top + label_line + 6;
    let notes_top = matrix_top + matrix + 14;
    let height = notes_top + notes.len() as u32 * (label_line + 2) + MARGIN;
    check_size(width, height)?;

    let mut image = RgbImage::from_pixel(width, height, Rgb(PAPER));
    let at = |x: u32, y: u32| (x as i64, y as i64);
    face.draw(
        &mut image,
        &title,
        TITLE_SIZE,
        at(width / 2, title_top),
        Align::Centre,
        INK,
    );
    let matrix_centre_x = matrix_left + matrix / 2;
    let matrix_centre_y = matrix_top + matrix / 2;
    face.draw(
        &mut image,
        "predicted class",
        LABEL_SIZE,
        at(matrix_centre_x, axis_top),
        Align::Centre,
        MUTED,
    );
    face.draw_upwards(
        &mut image,
        "true class",
        LABEL_SIZE,
        at(MARGIN + axis_w / 2, matrix_centre_y),
        MUTED,
    );
    face.draw(
        &mut image,
        "right",
        LABEL_SIZE,
        at(percent_left + percent_w, col_labels_top),
        Align::Right,
        MUTED,
    );
    let count_line = face.line_height(count_size);
    for (i, label) in class_labels.iter().enumerate() {
        let offset = i as u32 * cell + cell / 2;
        face.draw(
            &mut image,
            label,
            LABEL_SIZE,
            at(matrix_left + offset, col_labels_top),
            Align::Centre,
            INK,
        );
        let row_text_top = matrix_top + offset - label_line / 2;
        face.draw(
            &mut image,
            label,
            LABEL_SIZE,
            at(matrix_left - 8, row_text_top),
            Align::Right,
            INK,
        );
    }
    for (i, row) in confusion.iter().enumerate() {
        for (j, &count) in row.iter().enumerate() {
            let fraction = share(i, j) as f32;
            let colour = if i == j {
                blues(fraction)
            } else if count == 0 {
                // Blank, so that only real confusions are tinted.
                [250, 250, 250]
            } else if worst > 0.0 {
                reds(fraction / worst as f32)
            } else {
                PAPER
            };
            let (x, y) = (matrix_left + j as u32 * cell, matrix_top + i as u32 * cell);
            fill_rect(&mut image, x as i64, y as i64, cell, cell, colour);
            let text_colour = if count == 0 {
                [185, 185, 185]
            } else if luminance(colour) < 0.3 {
                PAPER
            } else {
                INK
            };
            let text_top = y + (cell - count_line) / 2;
            face.draw(
                &mut image,
                &count.to_string(),
                count_size,
                at(x + cell / 2, text_top),
                Align::Centre,
                text_colour,
            );
        }
        let right = if row_totals[i] == 0 {
            "\u{2014}".to_string()
        } else {
            format!("{:.1}%", 100.0 * share(i, i))
        };
        let text_top = matrix_top + i as u32 * cell + (cell - label_line) / 2;
        face.draw(
            &mut image,
            &right,
            LABEL_SIZE,
            at(percent_left + percent_w, text_top),
            Align::Right,
            INK,
        );
    }
    // Thin white rules between cells, a frame around the matrix.
    for k in 1..n as u32 {
        fill_rect(
            &mut image,
            (matrix_left + k * cell) as i64,
            matrix_top as i64,
            1,
            matrix,
            PAPER,
        );
        fill_rect(
            &mut image,
            matrix_left as i64,
            (matrix_top + k * cell) as i64,
            matrix,
            1,
            PAPER,
        );
    }
    outline_rect(
        &mut image,
        matrix_left as i64 - 1,
        matrix_top as i64 - 1,
        matrix + 2,
        matrix + 2,
        FRAME,
    );
    for (k, note) in notes.iter().enumerate() {
        let top = notes_top + k as u32 * (label_line + 2);
        face.draw(
            &mut image,
            note,
            LABEL_SIZE,
            at(MARGIN, top),
            Align::Left,
            MUTED,
        );
    }
    Ok(image)
}

// ---------------------------------------------------------------------------
// Scatter plot.

const SCATTER_SIZE: (u32, u32) = (960, 720);

/// Ticks for `lo..hi`: about `target` round numbers (1, 2 or 5 × 10ᵏ
/// apart) inside the range, and their decimals.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, usize) {
    let raw = (hi - lo) / target as f64;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * power);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let ticks = (first..=last).map(|k| k as f64 * step).collect();
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    (ticks, decimals)
}

fn format_tick(v: f64, decimals: usize) -> String {
    let text = format!("{:.decimals$}", v.abs());
    if v < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        format!("\u{2212}{text}")
    } else {
        text
    }
}

/// `lo..hi` of `values`, widened by 5% each side (and to a unit width when
/// all values are equal).
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let span = hi - lo;
    if span <= 1e-12 * lo.abs().max(1.0) {
        return (lo - 0.5, hi + 0.5);
    }
    (lo - 0.05 * span, hi + 0.05 * span)
}

/// Mixes a disc of radius `r` centred at `(cx, cy)` into the image, its
/// edge antialiased.
fn disc(image: &mut RgbImage, (cx, cy): (f64, f64), r: f64, colour: [u8; 3], alpha: f32) {
    let (x0, x1) = ((cx - r - 1.0).floor() as i64, (cx + r + 1.0).ceil() as i64);
    let (y0, y1) = ((cy - r - 1.0).floor() as i64, (cy + r + 1.0).ceil() as i64);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let d = ((x as f64 + 0.5 - cx).powi(2) + (y as f64 + 0.5 - cy).powi(2)).sqrt();
            let coverage = (r + 0.5 - d).clamp(0.0, 1.0) as f32;
            blend(image, x, y, colour, coverage * alpha);
        }
    }
}

fn draw_scatter(
    points: &[(f32, f32)],
    classes: &[u8],
    title: &str,
    x_label: &str,
    y_label: &str,
) -> anyhow::Result<RgbImage> {
    if points.len() != classes.len() {
        bail!(
            "{} points but {} classes: give one class per point",
            points.len(),
            classes.len()
        );
    }
    let shown: Vec<(f64, f64, u8)> = points
        .iter()
        .zip(classes)
        .filter(|((x, y), _)| x.is_finite() && y.is_finite())
        .map(|(&(x, y), &c)| (x as f64, y as f64, c))
        .collect();
    if shown.is_empty() {
        bail!("no points with finite coordinates to plot");
    }
    let face = Typeface::load()?;
    let (width, height) = SCATTER_SIZE;
    let (x_lo, x_hi) = padded_range(shown.iter().map(|p| p.0));
    let (y_lo, y_hi) = padded_range(shown.iter().map(|p| p.1));
    let (x_ticks, x_decimals) = nice_ticks(x_lo, x_hi, 8);
    let (y_ticks, y_decimals) = nice_ticks(y_lo, y_hi, 7);
    let y_tick_labels: Vec<String> = y_ticks
        .iter()
        .map(|&v| format_tick(v, y_decimals))
        .collect();
    let mut present: Vec<u8> = shown.iter().map(|p| p.2).collect();
    present.sort_unstable();
    present.dedup();
    let legend_labels: Vec<String> = present.iter().map(|c| c.to_string()).collect();

    let label_line = face.line_height(LABEL_SIZE);
    let legend_w = 26
        + face
            .max_width(legend_labels.iter().map(String::as_str), LABEL_SIZE)
            .max(face.width("class", LABEL_SIZE));
    let y_tick_w = face.max_width(y_tick_labels.iter().map(String::as_str), LABEL_SIZE);
    let plot_left = MARGIN + label_line + 10 + y_tick_w + 8;
    let plot_right = width - MARGIN - legend_w - 16;
    let plot_top = MARGIN + face.line_height(TITLE_SIZE) + 14;
    let plot_bottom = height - MARGIN - label_line - 8 - label_line - 8;
    let (plot_w, plot_h) = (
        (plot_right - plot_left) as f64,
        (plot_bottom - plot_top) as f64,
    );
    let to_px = |x: f64, y: f64| {
        (
            plot_left as f64 + (x - x_lo) / (x_hi - x_lo) * plot_w,
            plot_bottom as f64 - (y - y_lo) / (y_hi - y_lo) * plot_h,
        )
    };

    let mut image = RgbImage::from_pixel(width, height, Rgb(PAPER));
    let at = |x: u32, y: u32| (x as i64, y as i64);
    let plot_centre_x = (plot_left + plot_right) / 2;
    face.draw(
        &mut image,
        title,
        TITLE_SIZE,
        at(width / 2, MARGIN),
        Align::Centre,
        INK,
    );
    // Grid lines and ticks.
    for &tick in &x_ticks {
        let x = to_px(tick, y_lo).0.round() as i64;
        fill_rect(
            &mut image,
            x,
            plot_top as i64,
            1,
            plot_bottom - plot_top,
            RULE,
        );
        fill_rect(&mut image, x, plot_bottom as i64, 1, 5, MUTED);
        let label = format_tick(tick, x_decimals);
        face.draw(
            &mut image,
            &label,
            LABEL_SIZE,
            (x, plot_bottom as i64 + 7),
            Align::Centre,
            INK,
        );
    }
    for (&tick, label) in y_ticks.iter().zip(&y_tick_labels) {
        let y = to_px(x_lo, tick).1.round() as i64;
        fill_rect(
            &mut image,
            plot_left as i64,
            y,
            plot_right - plot_left,
            1,
            RULE,
        );
        fill_rect(&mut image, plot_left as i64 - 5, y, 5, 1, MUTED);
        let top = y - label_line as i64 / 2;
        face.draw(
            &mut image,
            label,
            LABEL_SIZE,
            (plot_left as i64 - 8, top),
            Align::Right,
            INK,
        );
    }
    face.draw(
        &mut image,
        x_label,
        LABEL_SIZE,
        at(plot_centre_x, height - MARGIN - label_line),
        Align::Centre,
        INK,
    );
    let y_axis_centre = at(MARGIN + label_line / 2, (plot_top + plot_bottom) / 2);
    face.draw_upwards(&mut image, y_label, LABEL_SIZE, y_axis_centre, INK);

    // Points, in a scrambled fixed order: i ↦ i·p mod n is a permutation
    // for a prime p that does not divide n.
    const STRIDE: usize = 1_000_003;
    let n = shown.len();
    let (radius, alpha) = match n {
        0..=1000 => (3.5, 0.85),
        1001..=5000 => (2.8, 0.7),
        _ => (2.2, 0.55),
    };
    for i in 0..n {
        let k = if n.is_multiple_of(STRIDE) {
            i
        } else {
            (i * STRIDE) % n
        };
        let (x, y, class) = shown[k];
        disc(&mut image, to_px(x, y), radius, class_colour(class), alpha);
    }
    outline_rect(
        &mut image,
        plot_left as i64,
        plot_top as i64,
        plot_right - plot_left + 1,
        plot_bottom - plot_top + 1,
        FRAME,
    );

    // Legend, right of the plot.
    let legend_left = plot_right + 16;
    face.draw(
        &mut image,
        "class",
        LABEL_SIZE,
        at(legend_left, plot_top),
        Align::Left,
        MUTED,
    );
    for (k, (class, label)) in present.iter().zip(&legend_labels).enumerate() {
        let top = plot_top + (k as u32 + 1) * (label_line + 6);
        let centre = (
            legend_left as f64 + 6.0,
            top as f64 + label_line as f64 / 2.0,
        );
        disc(&mut image, centre, 5.5, class_colour(*class), 1.0);
        face.draw(
            &mut image,
            label,
            LABEL_SIZE,
            at(legend_left + 18, top),
            Align::Left,
            INK,
        );
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::gif::GifDecoder;
    use image::AnimationDecoder;

    fn rgb(path: &Path, size: (u32, u32)) -> RgbImage {
        let image = image::open(path)
            .expect("a PNG the image crate decodes")
            .to_rgb8();
        assert_eq!(image.dimensions(), size, "{}", path.display());
        image
    }

    /// A 28×28 tile: a smooth signed blob, like a first-layer weight.
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
            (3, 2),
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
    fn confusion_and_scatter_decode_at_the_returned_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut confusion = vec![vec![0u64; 10]; 10];
        for (i, row) in confusion.iter_mut().enumerate() {
            row[i] = 950 + 5 * i as u64;
            row[(i + 3) % 10] = 3 * i as u64;
        }
        confusion[4][9] = 41;
        let path = dir.path().join("confusion.png");
        let size = confusion_heatmap(&path, &confusion).unwrap();
        rgb(&path, size);

        let points: Vec<(f32, f32)> = (0..500)
            .map(|i| {
                let c = (i % 10) as f32;
                let t = i as f32 * 0.37;
                (c.cos() * 3.0 + t.sin(), c.sin() * 2.0 - 0.5 + t.cos() * 0.8)
            })
            .collect();
        let classes: Vec<u8> = (0..500).map(|i| (i % 10) as u8).collect();
        let path = dir.path().join("pca.png");
        let size = scatter(
            &path,
            &points,
            &classes,
            "Hidden layer, PCA",
            "PC 1 (41.0%)",
            "PC 2 (12.3%)",
        )
        .unwrap();
        assert_eq!(size, SCATTER_SIZE);
        let image = rgb(&path, size);
        for class in 0..10 {
            let colour = class_colour(class);
            assert!(
                image.pixels().any(|p| p.0 == colour),
                "class {class}'s colour missing"
            );
        }
    }

    #[test]
    fn bad_inputs_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.png");
        let tile = Tile::new(2, 2, vec![0.0; 4]).unwrap();
        let opts = GridOptions::default();
        let err = |r: anyhow::Result<(u32, u32)>| format!("{:#}", r.unwrap_err());

        assert!(Tile::new(2, 2, vec![0.0; 3]).is_err());
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
        assert!(err(confusion_heatmap(&path, &[vec![1, 2], vec![3]])).contains("square"));
        assert!(err(scatter(&path, &[(0.0, 0.0)], &[], "t", "x", "y"))
            .contains("1 points but 0 classes"));
        assert!(err(scatter(&path, &[(f32::NAN, 0.0)], &[1], "t", "x", "y")).contains("finite"));
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
        let (ticks, decimals) = nice_ticks(-0.3, 1.25, 8);
        assert_eq!(decimals, 1);
        assert_eq!(ticks.first().copied(), Some(-0.2));
        assert_eq!(format_tick(-0.0, 1), "0.0");
        assert_eq!(format_tick(-2.0, 0), "\u{2212}2");
        // The palette keeps the diverging scale's colours exactly.
        let palette = Palette::new();
        let c = diverging(0.5, 1.0);
        let i = palette.nearest(c) as usize;
        assert_eq!(&palette.rgb[3 * i..3 * i + 3], &c);
    }
}
