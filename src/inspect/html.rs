//! A small, self-contained HTML report: titled sections of paragraphs,
//! figures and tables, written to `index.html` beside the pictures.
//!
//! The page is plain HTML with inline CSS: no JavaScript, nothing fetched
//! from anywhere, so it opens the same from a laptop, a CI artefact or an
//! e-mail attachment. Every piece of text is HTML-escaped, so captions may
//! hold `<`, `&` or quotes. [`write`] refuses to write a report whose
//! figure is missing from the directory, or whose table rows do not match
//! their header, so a written report never has a broken image.

use crate::checkpoint::write_atomically;
use anyhow::bail;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

/// A whole report: a title and its sections, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub title: String,
    pub sections: Vec<Section>,
}

/// One section: a heading, then its paragraphs, links, figures and tables
/// in that order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Section {
    pub title: String,
    /// Plain text, one `<p>` each.
    pub paragraphs: Vec<String>,
    /// Links to other pages of the report, shown as one line.
    pub links: Vec<Link>,
    pub images: Vec<Figure>,
    pub tables: Vec<Table>,
}

/// A link to another page of the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Link {
    /// A relative path from the page, e.g. `units/0-5.html` or `../index.html`.
    pub href: String,
    pub text: String,
}

/// A picture in the report's directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figure {
    /// The file's path relative to the report's directory, e.g.
    /// `"weights.png"` or `"layer1/pca.png"`; it must exist when the report
    /// is written.
    pub file: String,
    /// What the picture shows, for readers who cannot see it.
    pub alt: String,
    /// Shown under the picture; empty for none.
    pub caption: String,
}

/// A table of text; every row has as many cells as the header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

const STYLE: &str = "\
body { font-family: system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif; \
color: #222; background: #fff; max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.5; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
figure { margin: 1.2em 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.95em; margin-top: 0.3em; }
table { border-collapse: collapse; margin: 1em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; }
th { background: #f4f4f4; }
tr:nth-child(even) td { background: #fafafa; }
p.links { line-height: 1.9; }
p.links a { display: inline-block; min-width: 2.2em; text-align: center; }
";

/// Writes `report` to `dir/index.html` (atomically) and returns that path.
///
/// Errors, writing nothing, when a figure's file is not a relative path
/// inside `dir` (no `..`, not absolute) or does not exist there, or when a
/// table row's length differs from its header's.
pub fn write(dir: &Path, report: &Report) -> anyhow::Result<PathBuf> {
    write_page(dir, "index.html", report)
}

/// Writes `report` to `dir/file` (atomically), with the checks of
/// [`write`]; figures are relative to `dir`. Links must be relative paths
/// (no scheme, not absolute).
pub fn write_page(dir: &Path, file: &str, report: &Report) -> anyhow::Result<PathBuf> {
    for (s, section) in report.sections.iter().enumerate() {
        for link in &section.links {
            if link.href.contains(':') || link.href.starts_with('/') || link.href.is_empty() {
                bail!(
                    "section {s} (\"{}\"): link \"{}\" must be a relative path",
                    section.title,
                    link.href
                );
            }
        }
        let name = || format!("section {s} (\"{}\")", section.title);
        for figure in &section.images {
            check_figure(dir, figure).map_err(|e| e.context(name()))?;
        }
        for (t, table) in section.tables.iter().enumerate() {
            for (r, row) in table.rows.iter().enumerate() {
                if row.len() != table.header.len() {
                    bail!(
                        "{}: table {t}, row {r} has {} cells but the header has {}",
                        name(),
                        row.len(),
                        table.header.len()
                    );
                }
            }
        }
    }
    let path = dir.join(file);
    write_atomically(&path, render(report).as_bytes())?;
    Ok(path)
}

fn check_figure(dir: &Path, figure: &Figure) -> anyhow::Result<()> {
    let relative = Path::new(&figure.file);
    let inside = !figure.file.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        bail!(
            "figure \"{}\" must name a file inside the report's directory by a relative path",
            figure.file
        );
    }
    let path = dir.join(relative);
    if !path.is_file() {
        bail!(
            "figure \"{}\": {} does not exist, so the report would show a broken image",
            figure.file,
            path.display()
        );
    }
    Ok(())
}

/// The page as a string.
fn render(report: &Report) -> String {
    let mut html = String::new();
    let title = escape(&report.title);
    // Writing to a String cannot fail.
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    for section in &report.sections {
        let _ = writeln!(html, "<section>\n<h2>{}</h2>", escape(&section.title));
        for paragraph in &section.paragraphs {
            let _ = writeln!(html, "<p>{}</p>", escape(paragraph));
        }
        if !section.links.is_empty() {
            html.push_str("<p class=\"links\">");
            for (i, link) in section.links.iter().enumerate() {
                if i > 0 {
                    html.push(' ');
                }
                let _ = write!(
                    html,
                    "<a href=\"{}\">{}</a>",
                    escape(&url_path(&link.href)),
                    escape(&link.text)
                );
            }
            html.push_str("</p>\n");
        }
        for figure in &section.images {
            let _ = write!(
                html,
                "<figure>\n<img src=\"{}\" alt=\"{}\">\n",
                escape(&url_path(&figure.file)),
                escape(&figure.alt)
            );
            if !figure.caption.is_empty() {
                let _ = writeln!(html, "<figcaption>{}</figcaption>", escape(&figure.caption));
            }
            html.push_str("</figure>\n");
        }
        for table in &section.tables {
            html.push_str("<table>\n<thead><tr>");
            for cell in &table.header {
                let _ = write!(html, "<th>{}</th>", escape(cell));
            }
            html.push_str("</tr></thead>\n<tbody>\n");
            for row in &table.rows {
                html.push_str("<tr>");
                for cell in row {
                    let _ = write!(html, "<td>{}</td>", escape(cell));
                }
                html.push_str("</tr>\n");
            }
            html.push_str("</tbody>\n</table>\n");
        }
        html.push_str("</section>\n");
    }
    html.push_str("</body>\n</html>\n");
    html
}

/// `text` safe inside HTML elements and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A relative file path as a URL path: `/` separates, every byte but
/// unreserved ones is percent-encoded (so `a b#1.png` stays one file name).
fn url_path(file: &str) -> String {
    let mut out = String::with_capacity(file.len());
    for byte in file.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(file: &str) -> Figure {
        Figure {
            file: file.into(),
            alt: format!("picture {file}"),
            caption: "a <b>caption</b> & \"quotes\"".into(),
        }
    }

    /// The inverse of `url_path` then `escape`, as a browser reads `src`.
    fn decode_src(src: &str) -> String {
        let unescaped = src.replace("&amp;", "&");
        let bytes = unescaped.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn report(files: &[&str]) -> Report {
        Report {
            title: "Inspecting <mlp> & friends".into(),
            sections: vec![
                Section {
                    title: "Weights".into(),
                    paragraphs: vec!["Blue is < 0, red is > 0 & white is 'zero'.".into()],
                    links: vec![Link {
                        href: "units/0-5 x.html".into(),
                        text: "unit <5>".into(),
                    }],
                    images: files.iter().map(|f| figure(f)).collect(),
                    tables: vec![],
                },
                Section {
                    title: "Accuracy".into(),
                    paragraphs: vec![],
                    links: vec![],
                    images: vec![],
                    tables: vec![Table {
                        header: vec!["class".into(), "right".into()],
                        rows: vec![vec!["4".into(), "<98%>".into()]],
                    }],
                },
            ],
        }
    }

    #[test]
    fn escapes_text_and_links_only_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("layer 1")).unwrap();
        let files = ["weights.png", "layer 1/pca #2.png", "a&b.gif"];
        for file in files {
            std::fs::write(dir.path().join(file), b"x").unwrap();
        }
        let path = write(dir.path(), &report(&files)).unwrap();
        assert_eq!(path, dir.path().join("index.html"));
        let html = std::fs::read_to_string(&path).unwrap();

        assert!(html.contains("<title>Inspecting &lt;mlp&gt; &amp; friends</title>"));
        assert!(html.contains("Blue is &lt; 0, red is &gt; 0 &amp; white is &#39;zero&#39;."));
        assert!(html.contains("a &lt;b&gt;caption&lt;/b&gt; &amp; &quot;quotes&quot;"));
        assert!(html.contains("<td>&lt;98%&gt;</td>"));
        assert!(html.contains("<a href=\"units/0-5%20x.html\">unit &lt;5&gt;</a>"));
        assert!(!html.contains("<b>") && !html.contains("<mlp>"));
        // Self-contained.
        for banned in ["<script", "http:", "https:", "<link", "@import"] {
            assert!(!html.contains(banned), "{banned}");
        }
        // Every src names an existing file, and all figures are there.
        let srcs: Vec<String> = html
            .split("src=\"")
            .skip(1)
            .map(|rest| decode_src(&rest[..rest.find('"').unwrap()]))
            .collect();
        assert_eq!(srcs.len(), files.len());
        for src in &srcs {
            assert!(dir.path().join(src).is_file(), "{src} does not exist");
        }
        assert_eq!(
            escape("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn a_missing_or_outside_image_is_an_error_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("there.png"), b"x").unwrap();
        for (file, expected) in [
            ("missing.png", "does not exist"),
            ("../there.png", "relative path"),
            ("/etc/passwd", "relative path"),
            ("", "relative path"),
        ] {
            let err = write(dir.path(), &report(&["there.png", file])).unwrap_err();
            let message = format!("{err:#}");
            assert!(
                message.contains(expected) && message.contains("Weights"),
                "{message}"
            );
        }
        let mut bad_table = report(&["there.png"]);
        bad_table.sections[1].tables[0].rows.push(vec!["1".into()]);
        let message = write(dir.path(), &bad_table).unwrap_err().to_string();
        assert!(
            message.contains("row 1 has 1 cells but the header has 2"),
            "{message}"
        );
        assert!(!dir.path().join("index.html").exists());
        let mut outside = report(&["there.png"]);
        outside.sections[0].links[0].href = "https://example.com".into();
        let message = write(dir.path(), &outside).unwrap_err().to_string();
        assert!(message.contains("relative path"), "{message}");
    }
}
