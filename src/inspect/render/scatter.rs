//! Points in 2-D coloured by class, with a legend: [`scatter`].
//!
//! plotters draws the plot, as `crate::plot` draws the training curves: it
//! picks the ticks, draws the axes, grid, tick labels and points. The words
//! (title, axis labels, legend) are written in afterwards with `text.rs`,
//! as in the other pictures here.

use super::{write_png, FRAME, INK, LABEL_SIZE, MARGIN, MUTED, RULE, TITLE_SIZE};
use crate::inspect::colormap::class_colour;
use crate::inspect::text::{Align, Typeface};
use crate::plot::{register_font, FONT_FAMILY};
use anyhow::{bail, Context};
use image::RgbImage;
use plotters::data::float::pretty_print_float;
use plotters::prelude::*;
use std::ops::Range;
use std::path::Path;

/// Every scatter plot's `(width, height)` in pixels.
const SIZE: (u32, u32) = (960, 720);

/// Width kept right of the plot for the legend.
const LEGEND_WIDTH: u32 = 140;

/// `text`, cut short with "…" to fit `width` pixels.
fn fit(face: &Typeface, text: &str, width: u32) -> String {
    if face.width(text, LABEL_SIZE) <= width {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    (0..chars.len())
        .rev()
        .map(|n| chars[..n].iter().collect::<String>() + "…")
        .find(|cut| face.width(cut, LABEL_SIZE) <= width)
        .unwrap_or_else(|| "…".into())
}

/// Draws `points` as dots coloured by `classes` (one class per point; ten
/// distinct colours, which classes from 10 on reuse), with axes, ticks,
/// `x_label`, `y_label`, `title` and a legend of the classes present, each
/// by its name in `names` (empty: by its index; a long name is cut short
/// with "…").
///
/// Points that are not finite are left out; it is an error if none is
/// left. Points are drawn half-transparent and in a scrambled but fixed
/// order, so where classes overlap no class hides the others just by
/// coming last. Returns the image size (960 × 720).
pub fn scatter(
    path: &Path,
    points: &[(f32, f32)],
    classes: &[u8],
    names: &[String],
    title: &str,
    x_label: &str,
    y_label: &str,
) -> anyhow::Result<(u32, u32)> {
    let image = draw(points, classes, names, title, x_label, y_label)
        .with_context(|| format!("cannot draw {}", path.display()))?;
    write_png(path, &image)
}

fn draw(
    points: &[(f32, f32)],
    classes: &[u8],
    names: &[String],
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
    let mut present: Vec<u8> = shown.iter().map(|p| p.2).collect();
    present.sort_unstable();
    present.dedup();
    let (radius, alpha) = match shown.len() {
        0..=1000 => (3, 0.85),
        1001..=5000 => (3, 0.7),
        _ => (2, 0.55),
    };

    register_font()?;
    let face = Typeface::load()?;
    let (width, height) = SIZE;
    let line = face.line_height(LABEL_SIZE);
    let plot_top = MARGIN + face.line_height(TITLE_SIZE) + 14;
    let legend_left = width - LEGEND_WIDTH + 16;
    let legend_row_top = |row: usize| plot_top + (row as u32 + 1) * (line + 6);

    let mut buffer = vec![0u8; width as usize * height as usize * 3];
    let (plot_xs, plot_ys) = {
        let root = BitMapBackend::with_buffer(&mut buffer, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        // Room around the plot for the words written in below: the title
        // above, the axis labels left and below, the legend right.
        let mut chart = ChartBuilder::on(&root)
            .margin_top(plot_top)
            .margin_left(MARGIN + line + 10)
            .margin_bottom(MARGIN + line + 8)
            .margin_right(LEGEND_WIDTH)
            .x_label_area_size(line + 8)
            .y_label_area_size(48)
            .build_cartesian_2d(
                padded_range(shown.iter().map(|p| p.0)),
                padded_range(shown.iter().map(|p| p.1)),
            )?;
        // An even font size: see `text.rs` on plotters' glyph placement.
        let tick_font = (FONT_FAMILY, f64::from(LABEL_SIZE)).into_font();
        chart
            .configure_mesh()
            .label_style(tick_font.color(&rgb(INK)))
            .x_labels(8)
            .y_labels(7)
            .x_label_formatter(&|v| tick_label(*v))
            .y_label_formatter(&|v| tick_label(*v))
            .max_light_lines(0)
            .bold_line_style(rgb(RULE))
            .axis_style(rgb(FRAME))
            .draw()?;
        chart.draw_series(scrambled(shown.len()).map(|k| {
            let (x, y, class) = shown[k];
            Circle::new((x, y), radius, rgb(class_colour(class)).mix(alpha).filled())
        }))?;
        for (row, &class) in present.iter().enumerate() {
            let centre = (
                legend_left as i32 + 6,
                (legend_row_top(row) + line / 2) as i32,
            );
            root.draw(&Circle::new(centre, 5, rgb(class_colour(class)).filled()))?;
        }
        root.present()?;
        chart.plotting_area().get_pixel_range()
    };

    // The words, through `text.rs`, which places each glyph exactly where
    // plotters' own text drops its side bearing ("cl" reads "d").
    let mut image =
        RgbImage::from_raw(width, height, buffer).context("plotters' buffer has the wrong size")?;
    let write = |image: &mut RgbImage, text: &str, size, (x, y): (u32, u32), align, colour| {
        face.draw(image, text, size, (x as i64, y as i64), align, colour)
    };
    let plot_centre = (
        (plot_xs.start + plot_xs.end) as u32 / 2,
        (plot_ys.start + plot_ys.end) as u32 / 2,
    );
    write(
        &mut image,
        title,
        TITLE_SIZE,
        (width / 2, MARGIN),
        Align::Centre,
        INK,
    );
    let x_label_at = (plot_centre.0, height - MARGIN - line);
    write(
        &mut image,
        x_label,
        LABEL_SIZE,
        x_label_at,
        Align::Centre,
        INK,
    );
    let y_label_at = ((MARGIN + line / 2) as i64, plot_centre.1 as i64);
    face.draw_upwards(&mut image, y_label, LABEL_SIZE, y_label_at, INK);
    write(
        &mut image,
        "class",
        LABEL_SIZE,
        (legend_left, plot_top),
        Align::Left,
        MUTED,
    );
    for (row, &class) in present.iter().enumerate() {
        let at = (legend_left + 18, legend_row_top(row));
        let name = names
            .get(class as usize)
            .cloned()
            .unwrap_or_else(|| class.to_string());
        write(
            &mut image,
            &fit(&face, &name, LEGEND_WIDTH - 34),
            LABEL_SIZE,
            at,
            Align::Left,
            INK,
        );
    }
    Ok(image)
}

fn rgb([r, g, b]: [u8; 3]) -> RGBColor {
    RGBColor(r, g, b)
}

/// `lo..hi` of `values`, widened by 5% each side (and to a unit width when
/// all values are equal).
fn padded_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let span = hi - lo;
    if span <= 1e-12 * lo.abs().max(1.0) {
        return (lo - 0.5)..(hi + 0.5);
    }
    (lo - 0.05 * span)..(hi + 0.05 * span)
}

/// `0..n` in a scrambled but fixed order: `i ↦ i·p mod n` is a permutation
/// for a prime `p` that does not divide `n`.
fn scrambled(n: usize) -> impl Iterator<Item = usize> {
    const STRIDE: usize = 1_000_003;
    (0..n).map(move |i| {
        if n.is_multiple_of(STRIDE) {
            i
        } else {
            (i * STRIDE) % n
        }
    })
}

/// A tick label: plotters' shortest form of `v`, with a true minus sign.
fn tick_label(v: f64) -> String {
    let text = pretty_print_float(v, false);
    match text.strip_prefix('-') {
        Some("0") => "0".to_string(),
        Some(magnitude) => format!("\u{2212}{magnitude}"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode_rgb;
    use super::*;

    /// `n` points in ten overlapping clouds, class `i % 10`.
    fn clouds(n: usize) -> (Vec<(f32, f32)>, Vec<u8>) {
        let points = (0..n)
            .map(|i| {
                let c = (i % 10) as f32;
                let t = i as f32 * 0.37;
                (c.cos() * 3.0 + t.sin(), c.sin() * 2.0 - 0.5 + t.cos() * 0.8)
            })
            .collect();
        let classes = (0..n).map(|i| (i % 10) as u8).collect();
        (points, classes)
    }

    #[test]
    fn decodes_at_the_returned_size_with_every_class_colour() {
        let dir = tempfile::tempdir().unwrap();
        let (points, classes) = clouds(500);
        let path = dir.path().join("pca.png");
        let size = scatter(
            &path,
            &points,
            &classes,
            &[],
            "Hidden layer, PCA",
            "PC 1 (41.0%)",
            "PC 2 (12.3%)",
        )
        .unwrap();
        assert_eq!(size, SIZE);
        let image = decode_rgb(&path, size);
        for class in 0..10 {
            let colour = class_colour(class);
            assert!(
                image.pixels().any(|p| p.0 == colour),
                "class {class}'s colour missing"
            );
        }
        // The points themselves, not only the legend: most of 500 dots'
        // pixels are tinted (far from white and from gray).
        let tinted = image
            .pixels()
            .filter(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 40)
            .count();
        assert!(tinted > 500 * 20, "only {tinted} coloured pixels");
        // Written atomically: nothing but the PNG is left.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_legend_shows_only_the_classes_present() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two.png");
        let points = [(0.0, 0.0), (1.0, 2.0), (f32::NAN, 1.0), (2.0, 1.0)];
        // Class 5's only point is NaN: left out, and out of the legend.
        let size = scatter(&path, &points, &[0, 3, 5, 3], &[], "Two", "x", "y").unwrap();
        let image = decode_rgb(&path, size);
        let has = |class: u8| image.pixels().any(|p| p.0 == class_colour(class));
        assert!(has(0) && has(3));
        assert!(!has(1) && !has(5));
    }

    #[test]
    fn bad_inputs_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.png");
        let err = |r: anyhow::Result<(u32, u32)>| format!("{:#}", r.unwrap_err());
        let e = err(scatter(&path, &[(0.0, 0.0)], &[], &[], "t", "x", "y"));
        assert!(
            e.contains("bad.png") && e.contains("1 points but 0 classes"),
            "{e}"
        );
        let nan = [(f32::NAN, 0.0), (1.0, f32::INFINITY)];
        let e = err(scatter(&path, &nan, &[1, 2], &[], "t", "x", "y"));
        assert!(e.contains("bad.png") && e.contains("finite"), "{e}");
        assert!(!path.exists());
    }

    #[test]
    fn helpers() {
        let face = Typeface::load().unwrap();
        assert_eq!(fit(&face, "cat", 100), "cat");
        let cut = fit(&face, "a very long class name indeed", 100);
        assert!(
            cut.ends_with('…') && face.width(&cut, LABEL_SIZE) <= 100,
            "{cut}"
        );
        assert_eq!(tick_label(-2.0), "\u{2212}2");
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(-0.0), "0");
        assert_eq!(tick_label(0.1 + 0.2), "0.3");
        assert_eq!(padded_range([1.0, 3.0].into_iter()), 0.9..3.1);
        assert_eq!(padded_range([2.0].into_iter()), 1.5..2.5);
        for n in [1, 10, 4999] {
            let mut order: Vec<usize> = scrambled(n).collect();
            assert!(n < 3 || order[..3] != [0, 1, 2], "{n}: not scrambled");
            order.sort_unstable();
            assert_eq!(order, (0..n).collect::<Vec<_>>());
        }
    }
}
