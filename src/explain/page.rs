//! The pictures and the page of `gpunet explain`: each map drawn over its
//! image, the feature maps as grids (inspect's `weight_grid`), and
//! `index.html` putting an image's maps side by side.

use crate::checkpoint::write_atomically;
use crate::inspect::colormap;
use crate::inspect::html::escape;
use anyhow::{Context, Result};
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};
use std::fmt::Write as _;
use std::path::Path;

/// Each input pixel is drawn as a `ZOOM × ZOOM` square.
pub const ZOOM: u32 = 8;

/// How much full ink darkens the colour under it in an overlay.
const INK_SHADE: f32 = 0.5;

/// The largest |v|, the symmetric colour scale of a map (1 when all are 0).
pub fn scale_of(values: &[f32]) -> f32 {
    let s = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if s > 0.0 && s.is_finite() {
        s
    } else {
        1.0
    }
}

/// How much of a colour image shows through a map drawn over it, and how
/// much the image is lightened first (drawn as LIFT + (1 − LIFT)·pixel),
/// so that the map's colours lead and zero stays near white.
pub const IMAGE_MIX: f32 = 0.35;
const LIFT: f32 = 0.4;

/// Writes `image` (`channels` planes of h × w values, pixel / 255, so 0
/// to 1) as a PNG, each pixel a `ZOOM`-wide square: in colour from the
/// first three channels when there are at least three, else grey (the
/// mean of the channels). With `map` (one value per pixel), each pixel
/// takes the map's colour on the blue–white–red scale ±`scale`; a grey
/// image darkens it where it has ink (×(1 − ½·ink)), so a digit's strokes
/// show through, and a colour image is lightened and mixed in
/// (`IMAGE_MIX`, `LIFT`).
pub fn draw(
    path: &Path,
    (channels, h, w): (usize, usize, usize),
    image: &[f32],
    map: Option<(&[f32], f32)>,
) -> Result<()> {
    let plane = h * w;
    let mut picture = RgbImage::new(w as u32 * ZOOM, h as u32 * ZOOM);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let at = |c: usize| image[c * plane + i].clamp(0.0, 1.0);
            let colour = if channels >= 3 {
                let rgb = [at(0), at(1), at(2)];
                match map {
                    None => rgb.map(|v| (255.0 * v).round() as u8),
                    Some((values, scale)) => {
                        let heat = colormap::diverging(values[i], scale);
                        let mut mixed = [0u8; 3];
                        for ((m, &hc), v) in mixed.iter_mut().zip(&heat).zip(rgb) {
                            let lifted = LIFT + (1.0 - LIFT) * v;
                            *m = (f32::from(hc) * (1.0 - IMAGE_MIX) + 255.0 * lifted * IMAGE_MIX)
                                .round() as u8;
                        }
                        mixed
                    }
                }
            } else {
                let ink = (0..channels).map(at).sum::<f32>() / channels as f32;
                match map {
                    None => colormap::grayscale(ink),
                    Some((values, scale)) => {
                        let heat = colormap::diverging(values[i], scale);
                        heat.map(|c| (f32::from(c) * (1.0 - INK_SHADE * ink)).round() as u8)
                    }
                }
            };
            for dy in 0..ZOOM {
                for dx in 0..ZOOM {
                    picture.put_pixel(x as u32 * ZOOM + dx, y as u32 * ZOOM + dy, Rgb(colour));
                }
            }
        }
    }
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(
            picture.as_raw(),
            picture.width(),
            picture.height(),
            ExtendedColorType::Rgb8,
        )
        .with_context(|| format!("cannot encode {} as PNG", path.display()))?;
    write_atomically(path, &png)
}

/// One picture on the page: its file (relative to the page), what it
/// shows, and the caption under it.
pub struct Panel {
    pub file: String,
    pub alt: String,
    pub caption: String,
}

/// A row of panels under a heading.
pub struct Row {
    pub title: String,
    pub panels: Vec<Panel>,
}

/// One explained input: its heading, paragraphs, a table of its top
/// classes, and its rows of pictures.
pub struct Entry {
    pub title: String,
    pub paragraphs: Vec<String>,
    pub top: Vec<(String, String)>,
    pub rows: Vec<Row>,
}

const STYLE: &str = "\
body { font-family: system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif; \
color: #222; background: #fff; max-width: 1400px; margin: 2em auto; padding: 0 1em; line-height: 1.5; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.3em; }
.row { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
figure { margin: 0; max-width: 240px; }
.row.wide figure { max-width: none; }
img { max-width: 100%; height: auto; border: 1px solid #eee; image-rendering: pixelated; }
figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; }
";

/// Writes `dir/index.html`: the intro paragraphs, then one section per
/// entry; every panel's file must exist in `dir`.
pub fn write_page(dir: &Path, title: &str, intro: &[String], entries: &[Entry]) -> Result<()> {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{0}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<h1>{0}</h1>\n",
        escape(title)
    );
    for p in intro {
        let _ = writeln!(html, "<p>{}</p>", escape(p));
    }
    for entry in entries {
        let _ = writeln!(html, "<section>\n<h2>{}</h2>", escape(&entry.title));
        for p in &entry.paragraphs {
            let _ = writeln!(html, "<p>{}</p>", escape(p));
        }
        html.push_str("<table>\n<tr><th>class</th><th>probability</th></tr>\n");
        for (class, prob) in &entry.top {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape(class),
                escape(prob)
            );
        }
        html.push_str("</table>\n");
        for row in &entry.rows {
            let wide = if row.panels.len() == 1 { " wide" } else { "" };
            let _ = writeln!(
                html,
                "<h3>{}</h3>\n<div class=\"row{wide}\">",
                escape(&row.title)
            );
            for panel in &row.panels {
                anyhow::ensure!(
                    dir.join(&panel.file).is_file(),
                    "{}: the page would show a missing picture",
                    dir.join(&panel.file).display()
                );
                let _ = writeln!(
                    html,
                    "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
                    escape(&panel.file),
                    escape(&panel.alt),
                    escape(&panel.caption)
                );
            }
            html.push_str("</div>\n");
        }
        html.push_str("</section>\n");
    }
    html.push_str("</body>\n</html>\n");
    write_atomically(&dir.join("index.html"), html.as_bytes())
}
