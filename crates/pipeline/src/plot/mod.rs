//! The figure of a run (`error.svg`, and `error.png` beside it): relative layer error
//! against decoder block, one small panel per layer kind (`q_proj` … `down_proj`, then
//! any other kind), each with the warm start, the error after the swaps and, when the
//! kept weights were re-fitted, the error after the re-fit. A log scale shared by all
//! panels, so kinds compare at a glance; the legend has its own row above the panels and
//! each panel's header says the median change of its kind, so nothing covers data. When a
//! budget mode left rows with different kept counts, a second row of panels shows the
//! spread of kept counts per layer.
//!
//! The figure is a pure function of the report. The PNG is the SVG rendered, with the
//! DejaVu Sans font compiled in ([`svg_to_png`]), so it is the same on a machine without
//! system fonts.

mod panels;
mod raster;

use crate::report::{LayerReport, RunReport};
use crate::summary::{layer_kind, KINDS};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub use raster::{register_fonts, svg_to_png};

/// Width of the figure in pixels (SVG and PNG).
pub const FIGURE_WIDTH: u32 = 1200;

/// The title's line.
const HEAD_H: u32 = 54;
/// One subtitle line.
const SUBTITLE_H: u32 = 23;
/// The legend's row.
const LEGEND_H: u32 = 34;
/// One row of error panels.
const PANEL_H: u32 = 300;
/// The heading of the kept-count section.
const KEPT_HEAD_H: u32 = 64;
/// One row of kept-count panels.
const KEPT_PANEL_H: u32 = 230;
/// Panels per row at most (at 1200 px: about 300 px each).
const COLUMNS: usize = 4;

/// What one figure shows: its titles, the layers, their kinds and the series' names.
pub(crate) struct Figure<'a> {
    title: String,
    subtitle: Vec<String>,
    layers: &'a [LayerReport],
    /// Kinds present, in [`KINDS`] order, then others by name.
    kinds: Vec<&'a str>,
    /// Decoder blocks on the x axis (`0..blocks`).
    blocks: usize,
    warm_label: String,
    swaps_label: String,
    /// `None` when no layer was re-fitted.
    refit_label: Option<String>,
    /// The kept-count section's heading; `None` when every row of every layer kept the
    /// same count (nothing moved between rows: no section).
    kept_heading: Option<String>,
}

impl<'a> Figure<'a> {
    fn new(layers: &'a [LayerReport], title: String, subtitle: Vec<String>) -> Self {
        let mut kinds: Vec<&str> = layers.iter().map(|l| layer_kind(&l.name)).collect();
        kinds.sort_by_key(|k| (KINDS.iter().position(|x| x == k).unwrap_or(KINDS.len()), *k));
        kinds.dedup();
        let refit = layers
            .iter()
            .any(|l| l.budget.reconstructed_relative.is_some());
        let refit_objective = layers.iter().any(|l| l.budget.refit.is_some());
        let warm = layers.first().map_or("", |l| l.warm_start.as_str());
        let spread = kept_spread(layers);
        let moves: u64 = layers.iter().map(|l| l.budget.cross_moves).sum();
        let budget = layers.first().map(|l| l.budget.budget.to_string());
        let kept_heading = spread.then(|| {
            format!(
                "Kept weights per row, relative to the layer's mean: budget {}, {moves} cross-row moves",
                budget.as_deref().unwrap_or("-")
            )
        });
        Figure {
            title,
            subtitle,
            layers,
            kinds,
            blocks: layers.iter().map(|l| l.block + 1).max().unwrap_or(1),
            warm_label: if warm.is_empty() {
                "warm start".into()
            } else {
                format!("warm start ({warm})")
            },
            swaps_label: if !layers.is_empty() && layers.iter().all(|l| l.swaps == 0) {
                "after the 1-swaps (none taken)".into()
            } else if refit {
                "after the 1-swaps (original weights)".into()
            } else {
                "after the 1-swaps".into()
            },
            refit_label: refit.then(|| {
                if refit_objective {
                    "after refit swaps + re-fit (written weights)".into()
                } else {
                    "after re-fit of kept weights (written weights)".into()
                }
            }),
            kept_heading,
        }
    }

    /// The figure of run report `r`: its title names the run, pattern, warm start,
    /// refinement, budget and objective.
    pub(crate) fn of_run(r: &'a RunReport) -> Self {
        let name = std::path::Path::new(&r.config.output.dir)
            .file_name()
            .map_or_else(|| "run".to_string(), |n| n.to_string_lossy().into_owned());
        let row = crate::compare::row(&name, r, false);
        let pattern = if row.pattern.contains(':') {
            format!("{} semi-structured", row.pattern)
        } else {
            format!("{} unstructured", row.pattern)
        };
        let title = format!("{name}: {} warm start, {pattern}", row.warm_start);
        let mut facts = if row.refinement == "none" {
            "no swaps (max_swaps = 0)".to_string()
        } else {
            row.refinement.clone()
        };
        if row.budget != "row" {
            facts.push_str(&format!(", budget {}", row.budget));
            if !kept_spread(&r.layers) {
                facts.push_str(" (no weights moved between rows)");
            }
        }
        if row.objective != "mask" {
            facts.push_str(&format!(", objective {}", row.objective));
        } else if row.reconstruct {
            facts.push_str(", re-fit of kept weights");
        }
        facts.push_str(&format!(
            "; {} layers, measured sparsity {:.2}%",
            r.layers.len(),
            100.0 * r.sparsity
        ));
        match (row.dense_ppl, row.pruned_ppl) {
            (Some(d), Some(p)) => {
                facts.push_str(&format!("; perplexity {d:.2} dense → {p:.2} pruned"))
            }
            (None, Some(p)) => facts.push_str(&format!("; pruned perplexity {p:.2}")),
            _ => {}
        }
        Figure::new(&r.layers, title, vec![AXES.to_string(), facts])
    }

    /// Height of the title and subtitle lines.
    fn head_height(&self) -> u32 {
        HEAD_H + SUBTITLE_H * self.subtitle.len() as u32
    }

    /// Height of the figure in pixels.
    pub(crate) fn height(&self) -> u32 {
        let rows = self.kinds.len().div_ceil(COLUMNS).max(1) as u32;
        let mut h = self.head_height() + LEGEND_H + rows * PANEL_H;
        if self.kept_heading.is_some() {
            h += KEPT_HEAD_H + rows * KEPT_PANEL_H;
        }
        h + 8
    }
}

/// The subtitle's first line: what the axes are.
const AXES: &str = "Relative layer error E / ‖WX‖² by decoder block, one panel per layer kind, one log scale for all; under each kind its median change from the warm start";

/// Whether some layer's rows kept different counts (a budget mode moved weights between
/// rows, or the warm start spread them).
fn kept_spread(layers: &[LayerReport]) -> bool {
    layers
        .iter()
        .any(|l| l.budget.kept.min != l.budget.kept.max)
}

/// The figure of run report `r` as an SVG document, [`FIGURE_WIDTH`] wide.
pub fn run_plot_svg(r: &RunReport) -> String {
    svg(&Figure::of_run(r))
}

/// The figure of run report `r` as a PNG image, [`FIGURE_WIDTH`] wide: the SVG of
/// [`run_plot_svg`], rendered.
pub fn run_plot_png(r: &RunReport) -> crate::Result<Vec<u8>> {
    raster::svg_to_png(&run_plot_svg(r))
}

/// The figure of `layers` alone (no run settings in its title) as an SVG document.
pub fn error_plot_svg(layers: &[LayerReport]) -> String {
    let title = match layers.first() {
        Some(l) => format!("{} warm start, pattern {}", l.warm_start, l.pattern),
        None => "Per-layer relative error".to_string(),
    };
    let facts = format!("{} layers", layers.len());
    svg(&Figure::new(layers, title, vec![AXES.to_string(), facts]))
}

fn svg(fig: &Figure<'_>) -> String {
    register_fonts();
    let mut out = String::new();
    {
        let root =
            SVGBackend::with_string(&mut out, (FIGURE_WIDTH, fig.height())).into_drawing_area();
        // Drawing into a string cannot fail for I/O reasons; a failure would only lose
        // the plot, never the run, so errors are ignored.
        let _ = draw(&root, fig);
        let _ = root.present();
    }
    out
}

/// Draws `fig` on `root` (any backend: SVG, bitmap).
pub(crate) fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure<'_>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (head, rest) = root.split_vertically(fig.head_height());
    let centre = Pos::new(HPos::Center, VPos::Top);
    let mid = FIGURE_WIDTH as i32 / 2;
    let title = fit(&head, &fig.title, 30, FontStyle::Bold, 24);
    head.draw_text(&fig.title, &title.color(&BLACK).pos(centre), (mid, 12))?;
    for (i, line) in fig.subtitle.iter().enumerate() {
        let style = fit(&head, line, 19, FontStyle::Normal, 24);
        let y = HEAD_H as i32 + SUBTITLE_H as i32 * i as i32;
        head.draw_text(line, &style.color(&BLACK.mix(0.8)).pos(centre), (mid, y))?;
    }
    let (legend, rest) = rest.split_vertically(LEGEND_H);
    panels::draw_legend(&legend, fig)?;
    if fig.layers.is_empty() {
        rest.draw_text(
            "no pruned layers in this report",
            &("sans-serif", 20).into_font().color(&BLACK).pos(centre),
            (mid, 40),
        )?;
        return Ok(());
    }
    let rows = fig.kinds.len().div_ceil(COLUMNS);
    let (errors, rest) = rest.split_vertically(rows as u32 * PANEL_H);
    let scale = panels::ErrorScale::of(fig.layers);
    for (area, kind) in grid(&errors, fig.kinds.len()).iter().zip(&fig.kinds) {
        panels::draw_error_panel(area, fig, kind, &scale)?;
    }
    if let Some(heading) = &fig.kept_heading {
        let (head, rest) = rest.split_vertically(KEPT_HEAD_H);
        panels::draw_kept_heading(&head, heading)?;
        let (kept, _) = rest.split_vertically(rows as u32 * KEPT_PANEL_H);
        let scale = panels::KeptScale::of(fig.layers);
        for (area, kind) in grid(&kept, fig.kinds.len()).iter().zip(&fig.kinds) {
            panels::draw_kept_panel(area, fig, kind, &scale)?;
        }
    }
    Ok(())
}

/// The font of size `size` or, when `text` would not fit across `area` less `inset`
/// pixels, the largest smaller one that does. (plotters measures with the font at a
/// few percent above the size its SVG asks for: a margin to spare.)
pub(crate) fn fit<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    size: u32,
    style: FontStyle,
    inset: u32,
) -> TextStyle<'static> {
    let room = area.dim_in_pixel().0.saturating_sub(inset);
    let mut size = size;
    while size > 10 {
        let font: TextStyle = ("sans-serif", size, style).into_font().into();
        if area
            .estimate_text_size(text, &font)
            .map_or(true, |s| s.0 <= room)
        {
            break;
        }
        size -= 1;
    }
    ("sans-serif", size, style).into_font().into()
}

/// `n` panel areas of `area`, [`COLUMNS`] per row (fewer when there are fewer panels).
fn grid<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    n: usize,
) -> Vec<DrawingArea<DB, Shift>> {
    let cols = n.clamp(1, COLUMNS);
    let rows = n.div_ceil(cols).max(1);
    area.split_evenly((rows, cols))
}

#[cfg(test)]
mod tests;
