//! The confusion matrix as a heat map, [`confusion_heatmap`].

use super::{
    check_size, fill_rect, outline_rect, write_png, CAPTION_SIZE, FRAME, INK, LABEL_SIZE, MARGIN,
    MUTED, PAPER, TITLE_SIZE,
};
use crate::inspect::colormap::{blues, luminance, reds};
use crate::inspect::text::{Align, Typeface};
use anyhow::{bail, Context};
use image::{Rgb, RgbImage};
use std::path::Path;

/// Draws a confusion matrix, `confusion[true][predicted]` counts for `n`
/// classes named `names` (empty: `0..n`), as a heat map with every count
/// written in its cell. Names too wide for a column head are written by
/// their index above the columns and as "index name" beside the rows.
///
/// Colours are shares of the row (of the images of that true class): the
/// diagonal on a white-to-blue scale by the share classified right, the
/// other cells on a white-to-red scale by the share given that wrong class,
/// the darkest red being the largest such share, so the worst confusions
/// stand out however good the network is. A column on the right gives each
/// class's share right; the title gives the overall accuracy.
pub fn confusion_heatmap(
    path: &Path,
    confusion: &[Vec<u64>],
    names: &[String],
) -> anyhow::Result<(u32, u32)> {
    let image = draw_confusion(confusion, names)
        .with_context(|| format!("cannot draw {}", path.display()))?;
    write_png(path, &image)
}

fn draw_confusion(confusion: &[Vec<u64>], names: &[String]) -> anyhow::Result<RgbImage> {
    let n = confusion.len();
    if n == 0 {
        bail!("the confusion matrix is empty");
    }
    if !names.is_empty() && names.len() != n {
        bail!("{} class names for a {n}×{n} confusion matrix", names.len());
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
    let names: Vec<String> = if names.is_empty() {
        (0..n).map(|c| c.to_string()).collect()
    } else {
        names.to_vec()
    };
    let heads_fit = face.max_width(names.iter().map(String::as_str), LABEL_SIZE) + 4 <= cell;
    let (column_labels, row_labels): (Vec<String>, Vec<String>) = if heads_fit {
        (names.clone(), names)
    } else {
        let indices = (0..n).map(|c| c.to_string()).collect();
        (
            indices,
            names
                .iter()
                .enumerate()
                .map(|(c, name)| format!("{c} {name}"))
                .collect(),
        )
    };
    let row_label_w = face.max_width(row_labels.iter().map(String::as_str), LABEL_SIZE);
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
    for (i, (label, row_label)) in column_labels.iter().zip(&row_labels).enumerate() {
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
            row_label,
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

#[cfg(test)]
mod tests {
    use super::super::decode_rgb;
    use super::*;

    #[test]
    fn decodes_at_the_returned_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut confusion = vec![vec![0u64; 10]; 10];
        for (i, row) in confusion.iter_mut().enumerate() {
            row[i] = 950 + 5 * i as u64;
            row[(i + 3) % 10] = 3 * i as u64;
        }
        confusion[4][9] = 41;
        let path = dir.path().join("confusion.png");
        let size = confusion_heatmap(&path, &confusion, &[]).unwrap();
        decode_rgb(&path, size);
        // CIFAR-10's names are wider than a column: the picture grows to
        // hold them beside the rows.
        let names: Vec<String> = [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ]
        .map(String::from)
        .to_vec();
        let named = confusion_heatmap(&path, &confusion, &names).unwrap();
        decode_rgb(&path, named);
        assert!(named.0 > size.0, "{named:?} vs {size:?}");
        let e = confusion_heatmap(&path, &confusion, &names[..3]).unwrap_err();
        assert!(format!("{e:#}").contains("3 class names"), "{e:#}");
    }

    #[test]
    fn a_matrix_that_is_not_square_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.png");
        let e = format!(
            "{:#}",
            confusion_heatmap(&path, &[vec![1, 2], vec![3]], &[]).unwrap_err()
        );
        assert!(e.contains("bad.png") && e.contains("square"), "{e}");
        assert!(!path.exists());
    }
}
