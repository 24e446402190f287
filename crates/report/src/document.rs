//! The report as a document ([`Report`] of [`Section`]s of [`Block`]s), written as a
//! self-contained HTML page and as Markdown.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::figure::Figure;

/// The whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub title: String,
    pub sections: Vec<Section>,
}

/// A titled part of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Anchor in index.html.
    pub id: String,
    pub title: String,
    pub blocks: Vec<Block>,
}

/// One element of a section.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Paragraph(String),
    /// Says which input is missing and what would produce it.
    Missing(String),
    List(Vec<String>),
    Figure {
        figure: Figure,
        caption: String,
    },
    Table(Table),
}

/// A table of preformatted cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub caption: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Section {
    pub fn new(id: &str, title: &str) -> Section {
        Section { id: id.to_owned(), title: title.to_owned(), blocks: Vec::new() }
    }

    pub fn push(&mut self, block: Block) {
        self.blocks.push(block);
    }
}

impl Report {
    /// Every figure of the report, in order.
    pub fn figures(&self) -> impl Iterator<Item = &Figure> {
        self.sections.iter().flat_map(|s| &s.blocks).filter_map(|b| match b {
            Block::Figure { figure, .. } => Some(figure),
            _ => None,
        })
    }

    /// The HTML page, with each figure's SVG (from `svgs`, by figure name) inlined.
    pub fn html(&self, svgs: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n<nav><ol>\n",
            escape(&self.title),
            escape(&self.title)
        );
        for section in &self.sections {
            let _ = writeln!(out, "<li><a href=\"#{}\">{}</a></li>", escape(&section.id), escape(&section.title));
        }
        out.push_str("</ol></nav>\n");
        for section in &self.sections {
            let _ = writeln!(out, "<section id=\"{}\">\n<h2>{}</h2>", escape(&section.id), escape(&section.title));
            for block in &section.blocks {
                html_block(&mut out, block, svgs);
            }
            out.push_str("</section>\n");
        }
        out.push_str("</body>\n</html>\n");
        out
    }

    /// The Markdown version; figures link to `<name>.svg` beside it.
    pub fn markdown(&self) -> String {
        let mut out = format!("# {}\n\n", self.title);
        for section in &self.sections {
            let _ = writeln!(out, "## {}\n", section.title);
            for block in &section.blocks {
                markdown_block(&mut out, block);
            }
        }
        out
    }
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1320px;\
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}h1{font-size:1.7em}h2{border-bottom:1px solid #ccc;\
padding-bottom:.2em;margin-top:2em}nav ol{columns:2}figure{margin:1.5em 0}figure svg{max-width:100%;height:auto}\
figcaption{color:#444;font-size:.95em;margin-top:.3em}.missing{background:#fff6e0;border-left:4px solid #e0a800;\
padding:.5em 1em}table{border-collapse:collapse;margin:1em 0;font-size:.9em}caption{text-align:left;\
font-weight:600;padding:.3em 0}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.scroll{max-height:32em;overflow:auto}";

fn html_block(out: &mut String, block: &Block, svgs: &BTreeMap<String, String>) {
    match block {
        Block::Paragraph(text) => {
            let _ = writeln!(out, "<p>{}</p>", escape(text));
        }
        Block::Missing(text) => {
            let _ = writeln!(out, "<p class=\"missing\">{}</p>", escape(text));
        }
        Block::List(items) => {
            out.push_str("<ul>\n");
            for item in items {
                let _ = writeln!(out, "<li>{}</li>", escape(item));
            }
            out.push_str("</ul>\n");
        }
        Block::Figure { figure, caption } => {
            let svg = svgs.get(&figure.name).map(String::as_str).unwrap_or_default();
            let _ = writeln!(
                out,
                "<figure id=\"figure-{}\">\n{svg}\n<figcaption>{} ({}.svg)</figcaption>\n</figure>",
                escape(&figure.name),
                escape(caption),
                escape(&figure.name)
            );
        }
        Block::Table(table) => {
            let _ = writeln!(out, "<div class=\"scroll\"><table>\n<caption>{}</caption>", escape(&table.caption));
            out.push_str("<thead><tr>");
            for cell in &table.header {
                let _ = write!(out, "<th>{}</th>", escape(cell));
            }
            out.push_str("</tr></thead>\n<tbody>\n");
            for row in &table.rows {
                out.push_str("<tr>");
                for cell in row {
                    let _ = write!(out, "<td>{}</td>", escape(cell));
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</tbody></table></div>\n");
        }
    }
}

fn markdown_block(out: &mut String, block: &Block) {
    match block {
        Block::Paragraph(text) => {
            let _ = writeln!(out, "{text}\n");
        }
        Block::Missing(text) => {
            let _ = writeln!(out, "> **Missing:** {text}\n");
        }
        Block::List(items) => {
            for item in items {
                let _ = writeln!(out, "- {item}");
            }
            out.push('\n');
        }
        Block::Figure { figure, caption } => {
            let _ = writeln!(out, "![{}]({}.svg)\n\n*{}*\n", figure.title, figure.name, caption);
        }
        Block::Table(table) => {
            let _ = writeln!(out, "**{}**\n", table.caption);
            let row = |cells: &[String]| {
                let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
                format!("| {} |\n", cells.join(" | "))
            };
            out.push_str(&row(&table.header));
            let _ = writeln!(out, "|{}", " --- |".repeat(table.header.len()));
            for cells in &table.rows {
                out.push_str(&row(cells));
            }
            out.push('\n');
        }
    }
}

/// `text` with HTML's special characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let figure = Figure { name: "loss".into(), title: "Loss".into(), panels: Vec::new(), columns: 1 };
        let mut section = Section::new("training", "Training <loss>");
        section.push(Block::Paragraph("a & b".into()));
        section.push(Block::Missing("train/x.parquet is missing".into()));
        section.push(Block::List(vec!["one".into(), "two".into()]));
        section.push(Block::Figure { figure, caption: "Loss per step".into() });
        section.push(Block::Table(Table {
            caption: "Jobs".into(),
            header: vec!["job".into(), "loss".into()],
            rows: vec![vec!["a|b".into(), "1.0".into()]],
        }));
        Report { title: "Report".into(), sections: vec![section] }
    }

    #[test]
    fn html_inlines_figures_and_escapes_text() {
        let svgs = BTreeMap::from([("loss".to_owned(), "<svg id=\"inline\"></svg>".to_owned())]);
        let html = report().html(&svgs);
        for needle in [
            "<a href=\"#training\">Training &lt;loss&gt;</a>",
            "<h2>Training &lt;loss&gt;</h2>",
            "<p>a &amp; b</p>",
            "<p class=\"missing\">train/x.parquet is missing</p>",
            "<li>two</li>",
            "<svg id=\"inline\"></svg>",
            "<figcaption>Loss per step (loss.svg)</figcaption>",
            "<td>a|b</td>",
        ] {
            assert!(html.contains(needle), "{needle}\n{html}");
        }
        assert!(!html.contains("src="), "index.html must not load anything");
    }

    #[test]
    fn markdown_links_figures_and_escapes_table_pipes() {
        let md = report().markdown();
        for needle in [
            "# Report\n",
            "## Training <loss>\n",
            "> **Missing:** train/x.parquet is missing",
            "- one\n- two\n",
            "![Loss](loss.svg)",
            "| job | loss |\n| --- | --- |\n| a\\|b | 1.0 |\n",
        ] {
            assert!(md.contains(needle), "{needle}\n{md}");
        }
    }
}
