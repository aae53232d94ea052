//! A unit's mean ± standard deviation per class as a bar chart,
//! [`bar_chart`]: one horizontal bar per class, so long class names
//! ("automobile") fit on the left.

use super::{
    check_size, fill_rect, outline_rect, write_png, CAPTION_SIZE, FRAME, INK, LABEL_SIZE, MARGIN,
    MUTED, PAPER, RULE, TITLE_SIZE,
};
use crate::inspect::colormap::class_colour;
use crate::inspect::text::{Align, Typeface};
use anyhow::{bail, Context};
use image::{Rgb, RgbImage};
use std::path::Path;

/// Width of the bars' area, and the height of one bar's row.
const PLOT_WIDTH: u32 = 420;
const ROW: u32 = 22;

/// Draws one bar per class: `means[c]` from zero, with a whisker from
/// `means[c] − stds[c]` to `means[c] + stds[c]` and the mean written at the
/// bar's end; `labels[c]` on the left, `title` above, `axis` (what the
/// values are) under the zero-to-extremes axis. The axis spans zero and
/// every whisker. Returns the image size.
pub fn bar_chart(
    path: &Path,
    title: &str,
    axis: &str,
    labels: &[String],
    means: &[f32],
    stds: &[f32],
) -> anyhow::Result<(u32, u32)> {
    let image = draw(title, axis, labels, means, stds)
        .with_context(|| format!("cannot draw {}", path.display()))?;
    write_png(path, &image)
}

fn draw(
    title: &str,
    axis: &str,
    labels: &[String],
    means: &[f32],
    stds: &[f32],
) -> anyhow::Result<RgbImage> {
    if labels.is_empty() {
        bail!("no bars to draw");
    }
    if means.len() != labels.len() || stds.len() != labels.len() {
        bail!(
            "{} labels, {} means and {} standard deviations: give one of each per bar",
            labels.len(),
            means.len(),
            stds.len()
        );
    }
    if let Some(c) = (0..labels.len()).find(|&c| !means[c].is_finite() || !stds[c].is_finite()) {
        bail!(
            "bar {c} (\"{}\") is not a finite number: mean {}, standard deviation {}",
            labels[c],
            means[c],
            stds[c]
        );
    }
    let face = Typeface::load()?;
    let low = (0..means.len())
        .map(|c| means[c] - stds[c].abs())
        .fold(0.0f32, f32::min);
    let high = (0..means.len())
        .map(|c| means[c] + stds[c].abs())
        .fold(0.0f32, f32::max);
    let span = if high - low > 0.0 { high - low } else { 1.0 };

    let label_w = face.max_width(labels.iter().map(String::as_str), LABEL_SIZE);
    let value_w = face.width("−00.00", CAPTION_SIZE);
    let plot_left = MARGIN + label_w + 10;
    let width = (plot_left + PLOT_WIDTH + value_w + 12 + MARGIN)
        .max(2 * MARGIN + face.width(title, TITLE_SIZE));
    let title_top = MARGIN;
    let plot_top = title_top + face.line_height(TITLE_SIZE) + 12;
    let plot_h = ROW * labels.len() as u32;
    let axis_top = plot_top + plot_h + 4;
    let height = axis_top + 2 * face.line_height(LABEL_SIZE) + 10 + MARGIN;
    check_size(width, height)?;

    let mut image = RgbImage::from_pixel(width, height, Rgb(PAPER));
    let x_of = |v: f32| plot_left as i64 + ((v - low) / span * PLOT_WIDTH as f32).round() as i64;
    face.draw(
        &mut image,
        title,
        TITLE_SIZE,
        (width as i64 / 2, title_top as i64),
        Align::Centre,
        INK,
    );
    let zero = x_of(0.0);
    fill_rect(&mut image, zero, plot_top as i64, 1, plot_h, RULE);
    for (c, label) in labels.iter().enumerate() {
        let top = (plot_top + c as u32 * ROW) as i64;
        let centre = top + ROW as i64 / 2;
        face.draw(
            &mut image,
            label,
            LABEL_SIZE,
            (
                plot_left as i64 - 8,
                centre - face.line_height(LABEL_SIZE) as i64 / 2,
            ),
            Align::Right,
            INK,
        );
        let end = x_of(means[c]);
        let (left, right) = (zero.min(end), zero.max(end));
        let bar_w = (right - left).max(1) as u32;
        fill_rect(
            &mut image,
            left,
            top + 4,
            bar_w,
            ROW - 8,
            class_colour(c as u8),
        );
        outline_rect(&mut image, left, top + 4, bar_w, ROW - 8, FRAME);
        // The whisker: mean ± std, with end caps.
        let (w0, w1) = (
            x_of(means[c] - stds[c].abs()),
            x_of(means[c] + stds[c].abs()),
        );
        fill_rect(&mut image, w0, centre, (w1 - w0).max(1) as u32, 1, INK);
        fill_rect(&mut image, w0, centre - 4, 1, 9, INK);
        fill_rect(&mut image, w1, centre - 4, 1, 9, INK);
        face.draw(
            &mut image,
            &format!("{:.2}", means[c]).replace('-', "\u{2212}"),
            CAPTION_SIZE,
            (
                plot_left as i64 + PLOT_WIDTH as i64 + 8,
                centre - face.line_height(CAPTION_SIZE) as i64 / 2,
            ),
            Align::Left,
            MUTED,
        );
    }
    // The axis: its ends and zero, labelled.
    fill_rect(
        &mut image,
        plot_left as i64,
        axis_top as i64,
        PLOT_WIDTH,
        1,
        MUTED,
    );
    // The ends are labelled unless they are zero; zero is labelled unless
    // a labelled end is too close to it.
    let zero_x = x_of(0.0);
    let ends = [(low, Align::Left), (high, Align::Right)];
    let crowded = ends
        .iter()
        .any(|&(v, _)| v != 0.0 && (x_of(v) - zero_x).abs() < 48);
    let ticks = ends
        .into_iter()
        .filter(|&(v, _)| v != 0.0)
        .chain((!crowded).then_some((0.0, Align::Centre)));
    for (v, align) in ticks {
        let x = x_of(v);
        fill_rect(&mut image, x, axis_top as i64, 1, 4, MUTED);
        let text = format!("{v:.2}").replace('-', "\u{2212}");
        face.draw(
            &mut image,
            &text,
            LABEL_SIZE,
            (x, axis_top as i64 + 6),
            align,
            INK,
        );
    }
    fill_rect(&mut image, zero_x, axis_top as i64, 1, 4, MUTED);
    face.draw(
        &mut image,
        axis,
        LABEL_SIZE,
        (
            (plot_left + PLOT_WIDTH / 2) as i64,
            (axis_top + 8 + face.line_height(LABEL_SIZE)) as i64,
        ),
        Align::Centre,
        MUTED,
    );
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::super::decode_rgb;
    use super::*;

    #[test]
    fn one_bar_per_class_longer_for_larger_means() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bars.png");
        let labels: Vec<String> = ["zero", "one", "automobile"].map(String::from).to_vec();
        let size = bar_chart(
            &path,
            "unit 3",
            "mean activation",
            &labels,
            &[0.5, 2.0, 0.0],
            &[0.1, 0.4, 0.0],
        )
        .unwrap();
        let image = decode_rgb(&path, size);
        let bar_pixels = |c: u8| image.pixels().filter(|p| p.0 == class_colour(c)).count();
        assert!(
            bar_pixels(1) > 3 * bar_pixels(0),
            "{} vs {}",
            bar_pixels(1),
            bar_pixels(0)
        );
        assert!(bar_pixels(0) > 0);

        let e = bar_chart(&path, "t", "a", &labels, &[0.0; 2], &[0.0; 3]).unwrap_err();
        assert!(format!("{e:#}").contains("bars.png"), "{e:#}");
        let e = bar_chart(&path, "t", "a", &labels, &[0.0, f32::NAN, 0.0], &[0.0; 3]).unwrap_err();
        assert!(format!("{e:#}").contains("bar 1 (\"one\")"), "{e:#}");
    }
}
