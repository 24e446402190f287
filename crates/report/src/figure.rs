//! Figures as plain data ([`Figure`], [`Panel`], [`Series`]) and their drawing with plotters:
//! SVG always, PNG when a font is available.
//!
//! Only text drawing that needs no font metrics is used (titles and legends are laid out here,
//! not by plotters' caption and series-label helpers), so an SVG renders even when no font file
//! is registered: the browser lays its text out. A PNG rasterises its text and therefore needs the
//! font registered under [`FAMILY`] (see `crate::font`).

use anyhow::{anyhow, Context, Result};
use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The font family figures ask for: registered from a TTF file for PNGs, and the browser's
/// sans-serif in SVGs.
pub const FAMILY: &str = "sans-serif";

/// One figure: a grid of panels sharing a legend, written as `<name>.svg` (and `.png`).
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// File stem.
    pub name: String,
    pub title: String,
    pub panels: Vec<Panel>,
    /// Panels per row.
    pub columns: usize,
}

/// One chart of a figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Horizontal dashed lines, e.g. the un-projected models.
    pub references: Vec<Reference>,
    /// Fixed y range; `None` fits the data.
    pub y_range: Option<(f64, f64)>,
}

/// Points drawn in one style; the label appears once in the figure's legend.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    /// Index into the palette.
    pub color: usize,
    pub dashed: bool,
    /// Whether consecutive points are joined by a line.
    pub line: bool,
    pub marker: Marker,
    pub points: Vec<Point>,
}

/// How a series marks its points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    None,
    Circle,
    Square,
}

/// A data point with optional intervals, drawn as whiskers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub x_interval: Option<(f64, f64)>,
    pub y_interval: Option<(f64, f64)>,
}

impl Point {
    pub fn new(x: f64, y: f64) -> Point {
        Point { x, y, x_interval: None, y_interval: None }
    }
}

/// A horizontal line at `y` across a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub label: String,
    pub y: f64,
    pub color: usize,
}

/// One legend entry: a sample of a series' or reference's style and its label.
#[derive(Debug, Clone, PartialEq)]
struct LegendEntry {
    label: String,
    color: usize,
    dashed: bool,
    line: bool,
    marker: Marker,
}

/// Panels per row for a figure with one panel per model, job or module: up to three, four as
/// two by two.
pub fn grid_columns(panels: usize) -> usize {
    match panels {
        0..=3 => panels.max(1),
        4 => 2,
        _ => 3,
    }
}

/// Tableau 10, then black.
const PALETTE: [(u8, u8, u8); 11] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (0, 0, 0),
];

/// Palette index of black.
pub const BLACK: usize = 10;
/// Palette index of grey.
pub const GREY: usize = 7;

const PANEL_WIDTH: u32 = 420;
const PANEL_HEIGHT: u32 = 320;
const TITLE_HEIGHT: u32 = 36;
const LEGEND_ROW: u32 = 24;
const TITLE_SIZE: f64 = 20.0;
const PANEL_TITLE_SIZE: f64 = 16.0;
const LABEL_SIZE: f64 = 14.0;
const LEGEND_SIZE: f64 = 15.0;

fn color(index: usize) -> RGBColor {
    let (r, g, b) = PALETTE[index % PALETTE.len()];
    RGBColor(r, g, b)
}

impl Figure {
    /// Width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        let columns = self.columns.clamp(1, self.panels.len().max(1));
        let rows = self.panels.len().div_ceil(columns).max(1);
        let width = columns as u32 * PANEL_WIDTH;
        let legend_rows = legend_layout(&self.legend(), width).len() as u32;
        (width, TITLE_HEIGHT + rows as u32 * PANEL_HEIGHT + legend_rows * LEGEND_ROW + 8)
    }

    /// The figure as an SVG document; needs no font.
    pub fn svg(&self) -> Result<String> {
        let mut text = String::new();
        {
            let root = SVGBackend::with_string(&mut text, self.size()).into_drawing_area();
            self.draw(&root).map_err(|e| anyhow!("{e}"))?;
            root.present().map_err(|e| anyhow!("{e}"))?;
        }
        Ok(text)
    }

    /// The figure as a PNG file's bytes; needs a font registered for the figures (`register_font`).
    pub fn png(&self) -> Result<Vec<u8>> {
        let (width, height) = self.size();
        let mut pixels = vec![0u8; width as usize * height as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
            self.draw(&root).map_err(|e| anyhow!("{e}"))?;
            root.present().map_err(|e| anyhow!("{e}"))?;
        }
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().context("encoding png")?;
        writer.write_image_data(&pixels).context("encoding png")?;
        writer.finish().context("encoding png")?;
        Ok(bytes)
    }

    /// Legend entries in first-seen order, one per label.
    fn legend(&self) -> Vec<LegendEntry> {
        let mut entries: Vec<LegendEntry> = Vec::new();
        for panel in &self.panels {
            let series = panel.series.iter().map(|s| LegendEntry {
                label: s.label.clone(),
                color: s.color,
                dashed: s.dashed,
                line: s.line,
                marker: s.marker,
            });
            let references = panel.references.iter().map(|r| LegendEntry {
                label: r.label.clone(),
                color: r.color,
                dashed: true,
                line: true,
                marker: Marker::None,
            });
            for entry in series.chain(references) {
                if !entries.iter().any(|e| e.label == entry.label) {
                    entries.push(entry);
                }
            }
        }
        entries
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let (width, height) = root.dim_in_pixel();
        let title = TextStyle::from((FAMILY, TITLE_SIZE).into_font()).color(&BLACK_COLOR);
        root.draw(&Text::new(self.title.clone(), (12, 10), title))?;
        let legend = self.legend();
        let rows = legend_layout(&legend, width);
        let legend_height = rows.len() as u32 * LEGEND_ROW + 8;
        let body = root.margin(TITLE_HEIGHT, legend_height, 0, 0);
        let columns = self.columns.clamp(1, self.panels.len().max(1));
        let grid_rows = self.panels.len().div_ceil(columns).max(1);
        let areas = body.split_evenly((grid_rows, columns));
        for (panel, area) in self.panels.iter().zip(areas.iter()) {
            panel.draw(area)?;
        }
        let legend_top = (height - legend_height) as i32 + 4;
        draw_legend(root, &legend, &rows, legend_top)
    }
}

const BLACK_COLOR: RGBColor = RGBColor(0, 0, 0);

/// Legend entries split into rows that fit `width`: each row lists (entry index, x offset).
fn legend_layout(entries: &[LegendEntry], width: u32) -> Vec<Vec<(usize, i32)>> {
    let mut rows: Vec<Vec<(usize, i32)>> = Vec::new();
    let mut x = 12;
    for (index, entry) in entries.iter().enumerate() {
        let entry_width = 34 + text_width(&entry.label, LEGEND_SIZE) + 18;
        if rows.is_empty() || (x + entry_width > width as i32 && x > 12) {
            rows.push(Vec::new());
            x = 12;
        }
        if let Some(row) = rows.last_mut() {
            row.push((index, x));
        }
        x += entry_width;
    }
    rows
}

/// A generous estimate of a text's width in pixels, for laying out legends without font
/// metrics.
fn text_width(text: &str, size: f64) -> i32 {
    (text.chars().count() as f64 * size / 1.24 * 0.62).ceil() as i32
}

fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    rows: &[Vec<(usize, i32)>],
    top: i32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let text =
        TextStyle::from((FAMILY, LEGEND_SIZE).into_font()).color(&BLACK_COLOR).pos(Pos::new(HPos::Left, VPos::Center));
    for (row, placed) in rows.iter().enumerate() {
        let y = top + row as i32 * LEGEND_ROW as i32 + LEGEND_ROW as i32 / 2;
        for &(index, x) in placed {
            let entry = &entries[index];
            let style = ShapeStyle::from(color(entry.color)).stroke_width(2);
            if entry.line && entry.dashed {
                root.draw(&DashedPathElement::new(vec![(x, y), (x + 28, y)], 6, 4, style))?;
            } else if entry.line {
                root.draw(&PathElement::new(vec![(x, y), (x + 28, y)], style))?;
            }
            match entry.marker {
                Marker::None => {}
                Marker::Circle => root.draw(&Circle::new((x + 14, y), 4, style.filled()))?,
                Marker::Square => root.draw(&Rectangle::new([(x + 10, y - 4), (x + 18, y + 4)], style.filled()))?,
            }
            root.draw(&Text::new(entry.label.clone(), (x + 34, y), text.clone()))?;
        }
    }
    Ok(())
}

impl Panel {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let (width, _) = area.dim_in_pixel();
        let title = TextStyle::from((FAMILY, PANEL_TITLE_SIZE).into_font())
            .color(&BLACK_COLOR)
            .pos(Pos::new(HPos::Center, VPos::Top));
        area.draw(&Text::new(self.title.clone(), (width as i32 / 2, 14), title))?;
        let (x_min, x_max) = self.x_span();
        let (y_min, y_max) = self.y_range.unwrap_or_else(|| self.y_span());
        let integers = self.series.iter().flat_map(|s| &s.points).all(|p| p.x.fract() == 0.0);
        let x_ticks = ticks(x_min, x_max, integers);
        let y_ticks = ticks(y_min, y_max, false);
        let x_step = step_of(&x_ticks);
        let y_step = step_of(&y_ticks);
        let mut chart = ChartBuilder::on(area)
            .margin_top(38)
            .margin_right(14)
            .margin_left(6)
            .x_label_area_size(44)
            .y_label_area_size(62)
            .build_cartesian_2d(
                Axis { min: x_min, max: x_max, ticks: x_ticks },
                Axis { min: y_min, max: y_max, ticks: y_ticks },
            )?;
        let labels = TextStyle::from((FAMILY, LABEL_SIZE).into_font()).color(&BLACK_COLOR);
        chart
            .configure_mesh()
            .x_desc(self.x_label.clone())
            .y_desc(self.y_label.clone())
            .label_style(labels.clone())
            .axis_desc_style(labels)
            .x_label_formatter(&|v| tick_label(*v, x_step))
            .y_label_formatter(&|v| tick_label(*v, y_step))
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()?;
        let frame = Frame { x: (x_min, x_max), y: (y_min, y_max) };
        for reference in self.references.iter().filter(|r| frame.contains((x_min, r.y))) {
            let style = ShapeStyle::from(color(reference.color)).stroke_width(2);
            let line = vec![(x_min, reference.y), (x_max, reference.y)];
            chart.draw_series(std::iter::once(DashedPathElement::new(line, 7, 5, style)))?;
        }
        for series in &self.series {
            series.draw(&mut chart, &frame)?;
        }
        Ok(())
    }

    fn x_span(&self) -> (f64, f64) {
        let xs = self.series.iter().flat_map(|s| &s.points).flat_map(|p| {
            let (lo, hi) = p.x_interval.unwrap_or((p.x, p.x));
            [p.x, lo, hi]
        });
        padded(xs)
    }

    fn y_span(&self) -> (f64, f64) {
        let ys = self.series.iter().flat_map(|s| &s.points).flat_map(|p| {
            let (lo, hi) = p.y_interval.unwrap_or((p.y, p.y));
            [p.y, lo, hi]
        });
        padded(ys.chain(self.references.iter().map(|r| r.y)))
    }
}

/// A linear axis whose grid lines and labels sit at ticks chosen by [`ticks`].
struct Axis {
    min: f64,
    max: f64,
    ticks: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = (value - self.min) / (self.max - self.min);
        limit.0 + ((limit.1 - limit.0) as f64 * share).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.min..self.max
    }
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<Axis, Axis>>;

/// A panel's plotting area in data coordinates: everything drawn is clipped to it, so no line,
/// whisker or marker leaves its panel, whatever the data or a fixed `y_range`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Frame {
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn contains(&self, (x, y): (f64, f64)) -> bool {
        (self.x.0..=self.x.1).contains(&x) && (self.y.0..=self.y.1).contains(&y)
    }

    /// The part of segment a–b inside the frame (Liang–Barsky), `None` when none is.
    fn clip(&self, a: (f64, f64), b: (f64, f64)) -> Option<((f64, f64), (f64, f64))> {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let (mut enter, mut leave) = (0.0f64, 1.0f64);
        for (p, q) in [(-dx, a.0 - self.x.0), (dx, self.x.1 - a.0), (-dy, a.1 - self.y.0), (dy, self.y.1 - a.1)] {
            if p == 0.0 {
                if q < 0.0 {
                    return None;
                }
            } else if p < 0.0 {
                enter = enter.max(q / p);
            } else {
                leave = leave.min(q / p);
            }
        }
        // The ends themselves when uncut, so that consecutive segments still join exactly.
        let at = |t: f64| {
            if t <= 0.0 {
                a
            } else if t >= 1.0 {
                b
            } else {
                (a.0 + t * dx, a.1 + t * dy)
            }
        };
        (enter <= leave).then(|| (at(enter), at(leave)))
    }

    /// The polyline through `points` clipped to the frame: the runs of it inside.
    fn clip_path(&self, points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
        let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
        for pair in points.windows(2) {
            let Some((from, to)) = self.clip(pair[0], pair[1]) else { continue };
            match runs.last_mut() {
                Some(run) if run.last() == Some(&from) => run.push(to),
                _ => runs.push(vec![from, to]),
            }
        }
        runs
    }
}

impl Series {
    fn draw<DB: DrawingBackend>(&self, chart: &mut Chart<'_, DB>, frame: &Frame) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let style = ShapeStyle::from(color(self.color)).stroke_width(2);
        let whisker = ShapeStyle::from(color(self.color).mix(0.7)).stroke_width(1);
        let coords: Vec<(f64, f64)> = self.points.iter().map(|p| (p.x, p.y)).collect();
        if self.line && coords.len() > 1 {
            for run in frame.clip_path(&coords) {
                if self.dashed {
                    chart.draw_series(std::iter::once(DashedPathElement::new(run, 7, 5, style)))?;
                } else {
                    chart.draw_series(std::iter::once(PathElement::new(run, style)))?;
                }
            }
        }
        for point in &self.points {
            let y = point.y_interval.map(|(lo, hi)| ((point.x, lo), (point.x, hi)));
            let x = point.x_interval.map(|(lo, hi)| ((lo, point.y), (hi, point.y)));
            for (from, to) in [y, x].into_iter().flatten().filter_map(|(a, b)| frame.clip(a, b)) {
                chart.draw_series(std::iter::once(PathElement::new(vec![from, to], whisker)))?;
            }
        }
        let inside: Vec<(f64, f64)> = coords.iter().copied().filter(|&c| frame.contains(c)).collect();
        match self.marker {
            Marker::None if self.line && coords.len() == 1 => {
                let dash = |c| EmptyElement::at(c) + PathElement::new(vec![(-14, 0), (14, 0)], style);
                chart.draw_series(inside.iter().map(|&c| dash(c)))?;
            }
            Marker::None => {}
            Marker::Circle => {
                chart.draw_series(inside.iter().map(|&c| Circle::new(c, 4, style.filled())))?;
            }
            Marker::Square => {
                chart.draw_series(
                    inside.iter().map(|&c| EmptyElement::at(c) + Rectangle::new([(-5, -5), (5, 5)], style.filled())),
                )?;
            }
        }
        Ok(())
    }
}

/// The range of `values` with 5% padding on each side (±0.5 around a single value; (0, 1) when
/// there are none). Non-finite values are ignored.
fn padded(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let half = if lo.abs() > 1.0 { lo.abs() * 0.1 } else { 0.5 };
        return (lo - half, hi + half);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// Tick positions at a "nice" step (1, 2, 2.5 or 5 × 10ⁿ) giving about five ticks in
/// [min, max]; steps of at least 1 when the axis holds only integers.
fn ticks(min: f64, max: f64, integers: bool) -> Vec<f64> {
    let raw = (max - min) / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let mut step =
        [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    if integers {
        step = step.max(1.0).round();
    }
    let first = (min / step).ceil() as i64;
    let last = (max / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn step_of(ticks: &[f64]) -> f64 {
    match ticks {
        [a, b, ..] => b - a,
        _ => 1.0,
    }
}

/// A tick value with as many decimals as the step needs.
fn tick_label(value: f64, step: f64) -> String {
    let mut decimals = (-step.log10().floor()).max(0.0) as usize;
    if ((step * 10f64.powi(decimals as i32)).round() - step * 10f64.powi(decimals as i32)).abs() > 1e-9 {
        decimals += 1;
    }
    let text = format!("{value:.decimals$}");
    if text.starts_with('-') && text.trim_start_matches(['-', '0', '.']).is_empty() {
        text[1..].to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure() -> Figure {
        let series = |label: &str, color: usize, ys: &[f64]| Series {
            label: label.into(),
            color,
            dashed: false,
            line: true,
            marker: Marker::Circle,
            points: ys
                .iter()
                .enumerate()
                .map(|(i, &y)| Point { y_interval: Some((y - 0.05, y + 0.05)), ..Point::new(i as f64 * 0.25, y) })
                .collect(),
        };
        let panel = |title: &str| Panel {
            title: title.into(),
            x_label: "fraction".into(),
            y_label: "attack success (%)".into(),
            series: vec![series("topk", 0, &[0.2, 0.4, 0.5]), series("random", 1, &[0.3, 0.3, 0.6])],
            references: vec![Reference { label: "aligned".into(), y: 0.1, color: BLACK }],
            y_range: Some((0.0, 1.0)),
        };
        Figure {
            name: "f".into(),
            title: "A figure".into(),
            panels: vec![panel("same"), panel("orth"), panel("opp")],
            columns: 2,
        }
    }

    #[test]
    fn lines_and_whiskers_are_clipped_to_the_panel() {
        let frame = Frame { x: (0.0, 1.0), y: (0.0, 1.0) };
        assert_eq!(frame.clip((0.5, 0.5), (0.5, 2.0)), Some(((0.5, 0.5), (0.5, 1.0))));
        assert_eq!(frame.clip((-1.0, 0.5), (2.0, 0.5)), Some(((0.0, 0.5), (1.0, 0.5))));
        assert_eq!(frame.clip((2.0, 2.0), (3.0, 3.0)), None);
        assert_eq!(frame.clip((0.2, 0.3), (0.4, 0.6)), Some(((0.2, 0.3), (0.4, 0.6))), "inside: unchanged");
        // Up out of the frame and back: two runs, each inside.
        let runs = frame.clip_path(&[(0.0, 0.5), (0.5, 1.5), (1.0, 0.5)]);
        assert_eq!(runs.len(), 2);
        assert!(runs.iter().flatten().all(|&p| frame.contains(p)), "{runs:?}");
        assert_eq!(frame.clip_path(&[(0.1, 0.1), (0.2, 0.2), (0.3, 0.3)]), vec![vec![(0.1, 0.1), (0.2, 0.2), (0.3, 0.3)]]);
    }

    #[test]
    fn svg_renders_without_any_registered_font() {
        let svg = figure().svg().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        for text in ["A figure", "same", "orth", "opp", "topk", "random", "aligned", "fraction", "attack success (%)"] {
            assert!(svg.contains(&format!("{text}\n</text>")), "{text}");
        }
        let (width, height) = figure().size();
        assert!(svg.contains(&format!("width=\"{width}\"")) && svg.contains(&format!("height=\"{height}\"")));
        assert_eq!((width, height), (2 * PANEL_WIDTH, TITLE_HEIGHT + 2 * PANEL_HEIGHT + LEGEND_ROW + 8));
    }

    #[test]
    fn legend_lists_each_label_once_and_wraps() {
        let figure = figure();
        let labels: Vec<_> = figure.legend().into_iter().map(|e| (e.label, e.dashed)).collect();
        assert_eq!(labels, vec![("topk".into(), false), ("random".into(), false), ("aligned".into(), true)]);
        let many: Vec<_> = (0..12)
            .map(|i| LegendEntry {
                label: format!("a fairly long label {i}"),
                color: i,
                dashed: false,
                line: true,
                marker: Marker::None,
            })
            .collect();
        let rows = legend_layout(&many, 420);
        assert!(rows.len() > 3, "{rows:?}");
        for row in &rows {
            let (last, x) = row[row.len() - 1];
            assert!(row.len() == 1 || x + 52 + text_width(&many[last].label, LEGEND_SIZE) <= 420, "{row:?}");
        }
        assert_eq!([1, 3, 4, 5, 9].map(grid_columns), [1, 3, 2, 3, 3]);
    }

    #[test]
    fn ticks_are_nice_and_inside_the_range() {
        fn check(min: f64, max: f64, integers: bool, expected: &[f64]) {
            let got = ticks(min, max, integers);
            assert_eq!(got.len(), expected.len(), "{min}..{max}: {got:?}");
            for (g, e) in got.iter().zip(expected) {
                assert!((g - e).abs() < 1e-9, "{min}..{max}: {got:?}");
            }
        }
        check(0.0, 1.0, false, &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        check(-0.04, 1.04, false, &[0.0, 0.25, 0.5, 0.75, 1.0]);
        check(2.5, 3.5, true, &[3.0]);
        check(0.5, 4.5, true, &[1.0, 2.0, 3.0, 4.0]);
        check(0.0, 1000.0, true, &[0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]);
    }

    #[test]
    fn axis_maps_linearly_and_offers_only_its_ticks() {
        let axis = Axis { min: -1.0, max: 3.0, ticks: vec![0.0, 2.0] };
        assert_eq!(axis.map(&1.0, (0, 100)), 50);
        assert_eq!(axis.map(&-1.0, (300, 20)), 300);
        assert_eq!(axis.map(&3.0, (300, 20)), 20);
        assert_eq!(axis.key_points(5usize), Vec::<f64>::new(), "no light grid lines");
        assert_eq!(axis.key_points(plotters::coord::ranged1d::BoldPoints(5)), vec![0.0, 2.0]);
    }

    #[test]
    fn tick_labels_use_the_decimals_the_step_needs() {
        fn check(value: f64, step: f64, expected: &str) {
            assert_eq!(tick_label(value, step), expected, "{value} at step {step}");
        }
        check(0.30000000000000004, 0.1, "0.3");
        check(0.75, 0.25, "0.75");
        check(200.0, 200.0, "200");
        check(-0.0, 0.2, "0.0");
        check(3.0, 1.0, "3");
    }

    #[test]
    fn padding_handles_single_and_missing_values() {
        assert_eq!(padded([0.25].into_iter()), (-0.25, 0.75));
        assert_eq!(padded([3.0].into_iter()), (2.7, 3.3));
        assert_eq!(padded(std::iter::empty()), (0.0, 1.0));
        assert_eq!(padded([0.0, 10.0, f64::NAN].into_iter()), (-0.5, 10.5));
    }
}
