//! Points in 2-D coloured by class, with a legend: [`scatter`].

use super::{
    fill_rect, outline_rect, write_png, FRAME, INK, LABEL_SIZE, MARGIN, MUTED, PAPER, RULE,
    TITLE_SIZE,
};
use crate::inspect::colormap::class_colour;
use crate::inspect::text::{blend, Align, Typeface};
use anyhow::{bail, Context};
use image::{Rgb, RgbImage};
use std::path::Path;

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
    use super::super::decode_rgb;
    use super::*;

    #[test]
    fn decodes_at_the_returned_size_with_every_class_colour() {
        let dir = tempfile::tempdir().unwrap();
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
        let image = decode_rgb(&path, size);
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
        let err = |r: anyhow::Result<(u32, u32)>| format!("{:#}", r.unwrap_err());
        assert!(err(scatter(&path, &[(0.0, 0.0)], &[], "t", "x", "y"))
            .contains("1 points but 0 classes"));
        assert!(err(scatter(&path, &[(f32::NAN, 0.0)], &[1], "t", "x", "y")).contains("finite"));
        assert!(!path.exists());
    }

    #[test]
    fn ticks() {
        let (ticks, decimals) = nice_ticks(-0.3, 1.25, 8);
        assert_eq!(decimals, 1);
        assert_eq!(ticks.first().copied(), Some(-0.2));
        assert_eq!(format_tick(-0.0, 1), "0.0");
        assert_eq!(format_tick(-2.0, 0), "\u{2212}2");
    }
}
