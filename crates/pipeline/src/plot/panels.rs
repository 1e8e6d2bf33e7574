//! The parts of the figure: the legend row, one error panel per layer kind, and the
//! kept-count panels.

use super::Figure;
use crate::report::{mean_median, LayerReport};
use crate::summary::layer_kind;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Colour-blind-safe colours (Okabe and Ito): vermillion, blue, bluish green.
pub(super) const WARM: RGBColor = RGBColor(213, 94, 0);
pub(super) const SWAPS: RGBColor = RGBColor(0, 114, 178);
pub(super) const REFIT: RGBColor = RGBColor(0, 158, 115);
const GRID: RGBColor = RGBColor(225, 225, 225);

type Res<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// The three series of an error panel.
#[derive(Clone, Copy, PartialEq)]
enum Series {
    Warm,
    Swaps,
    Refit,
}

impl Series {
    fn value(self, l: &LayerReport) -> Option<f64> {
        let v = match self {
            Series::Warm => l.warm_relative,
            Series::Swaps => l.refined_relative,
            Series::Refit => l.budget.reconstructed_relative?,
        };
        // A log scale has no place for 0 (or NaN): such a point is left out.
        (v.is_finite() && v > 0.0).then_some(v)
    }

    /// Draws the series' marker at pixel `c` of `area` (the legend's; the panels draw
    /// the same shapes). The warm start is a hollow circle, larger than the others, so
    /// that a layer the swaps left unchanged still shows both markers.
    fn marker<DB: DrawingBackend>(
        self,
        area: &DrawingArea<DB, Shift>,
        c: (i32, i32),
        size: i32,
    ) -> Res<DB> {
        match self {
            Series::Warm => area.draw(&Circle::new(c, size + 1, WARM.stroke_width(2))),
            Series::Swaps => area.draw(&Rectangle::new(
                [
                    (c.0 - size + 1, c.1 - size + 1),
                    (c.0 + size - 1, c.1 + size - 1),
                ],
                SWAPS.filled(),
            )),
            Series::Refit => area.draw(&TriangleMarker::new(c, size + 1, REFIT.filled())),
        }
    }

    fn color(self) -> RGBColor {
        match self {
            Series::Warm => WARM,
            Series::Swaps => SWAPS,
            Series::Refit => REFIT,
        }
    }
}

/// The series `fig` draws, with their legend labels.
fn series<'f>(fig: &'f Figure<'_>) -> Vec<(Series, &'f str)> {
    let mut s = vec![
        (Series::Warm, fig.warm_label.as_str()),
        (Series::Swaps, fig.swaps_label.as_str()),
    ];
    if let Some(r) = &fig.refit_label {
        s.push((Series::Refit, r.as_str()));
    }
    s
}

/// The legend, centred in its own row: a line sample with the series' marker, and its
/// label.
pub(super) fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &Figure<'_>,
) -> Res<DB> {
    let font = ("sans-serif", 20).into_font().color(&BLACK);
    let items = series(fig);
    let widths: Vec<i32> = items
        .iter()
        .map(|(_, label)| {
            area.estimate_text_size(label, &font)
                .map_or(200, |s| s.0 as i32)
        })
        .collect();
    let (sample, gap) = (44, 36);
    let total: i32 =
        widths.iter().map(|w| sample + 8 + w).sum::<i32>() + gap * (items.len() as i32 - 1);
    let mut x = (area.dim_in_pixel().0 as i32 - total) / 2;
    let y = 16;
    for ((s, label), w) in items.iter().zip(widths) {
        let line = vec![(x, y), (x + sample, y)];
        if *s == Series::Warm {
            area.draw(&DashedPathElement::new(
                line,
                7,
                4,
                s.color().stroke_width(2),
            ))?;
        } else {
            area.draw(&PathElement::new(line, s.color().stroke_width(2)))?;
        }
        s.marker(area, (x + sample / 2, y), 5)?;
        area.draw_text(
            label,
            &font.clone().pos(Pos::new(HPos::Left, VPos::Center)),
            (x + sample + 8, y),
        )?;
        x += sample + 8 + w + gap;
    }
    Ok(())
}

/// The y range shared by all error panels: whole decades around every value drawn.
pub(super) struct ErrorScale {
    lo: f64,
    hi: f64,
}

impl ErrorScale {
    pub(super) fn of(layers: &[LayerReport]) -> Self {
        let vals: Vec<f64> = layers
            .iter()
            .flat_map(|l| [Series::Warm, Series::Swaps, Series::Refit].map(|s| s.value(l)))
            .flatten()
            .collect();
        let min = vals.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = vals.iter().cloned().fold(0.0, f64::max);
        if vals.is_empty() {
            return ErrorScale { lo: 1e-4, hi: 1.0 };
        }
        // Whole decades, and a little room beyond, so that the end decades are labelled
        // and no marker sits on the frame.
        let lo = 10f64.powf(min.log10().floor());
        let hi = 10f64.powf(max.log10().ceil()).max(lo * 10.0);
        ErrorScale {
            lo: lo / 1.6,
            hi: hi * 1.6,
        }
    }
}

/// The x axis of a panel: blocks `0..blocks`, half a block of room each side.
fn x_range(blocks: usize) -> std::ops::Range<f64> {
    -0.6..blocks as f64 - 0.4
}

/// Block numbers on whole ticks inside the range only.
fn block_label(blocks: usize) -> impl Fn(&f64) -> String {
    move |x: &f64| {
        let r = x.round();
        if (x - r).abs() < 1e-6 && r >= 0.0 && r < blocks as f64 {
            format!("{r:.0}")
        } else {
            String::new()
        }
    }
}

/// The layers of `kind`, by block.
fn of_kind<'a>(fig: &Figure<'a>, kind: &str) -> Vec<&'a LayerReport> {
    let mut v: Vec<&LayerReport> = fig
        .layers
        .iter()
        .filter(|l| layer_kind(&l.name) == kind)
        .collect();
    v.sort_by_key(|l| l.block);
    v
}

/// A panel's header: the kind in bold, and below it the median change of its layers'
/// error from the warm start (what the panel's vertical gaps show).
fn draw_header<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    kind: &str,
    note: Option<&str>,
) -> Res<DB> {
    // Centred over the plotting area, right of the y labels: `2 * SHIFT` narrower.
    const SHIFT: i32 = 28;
    let mid = area.dim_in_pixel().0 as i32 / 2 + SHIFT;
    let top = Pos::new(HPos::Center, VPos::Top);
    let bold = super::fit(area, kind, 23, FontStyle::Bold, 2 * SHIFT as u32 + 8);
    area.draw_text(kind, &bold.color(&BLACK).pos(top), (mid, 6))?;
    if let Some(note) = note {
        let style = super::fit(area, note, 18, FontStyle::Normal, 2 * SHIFT as u32 + 8);
        area.draw_text(note, &style.color(&BLACK.mix(0.8)).pos(top), (mid, 32))?;
    }
    Ok(())
}

/// `−46%`: the median over `layers` of `after / warm − 1`.
fn median_change(layers: &[&LayerReport], s: Series) -> Option<String> {
    let ratios: Vec<f64> = layers
        .iter()
        .filter_map(|l| Some(s.value(l)? / Series::Warm.value(l)? - 1.0))
        .collect();
    if ratios.is_empty() {
        return None;
    }
    let m = (100.0 * mean_median(&ratios).1).round();
    Some(if m == 0.0 {
        "±0%".to_string()
    } else if m < 0.0 {
        format!("−{:.0}%", -m)
    } else {
        format!("+{m:.0}%")
    })
}

/// One kind's error panel.
pub(super) fn draw_error_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &Figure<'_>,
    kind: &str,
    scale: &ErrorScale,
) -> Res<DB> {
    let layers = of_kind(fig, kind);
    let mut note = format!(
        "swaps {}",
        median_change(&layers, Series::Swaps).unwrap_or("-".into())
    );
    if let Some(r) = median_change(&layers, Series::Refit) {
        note.push_str(&format!(", re-fit {r}"));
    }
    let (head, body) = area.split_vertically(56);
    draw_header(&head, kind, Some(&note))?;
    let mut chart = ChartBuilder::on(&body)
        .margin_left(6)
        .margin_right(16)
        .margin_bottom(10)
        .x_label_area_size(48)
        .y_label_area_size(74)
        .build_cartesian_2d(x_range(fig.blocks), (scale.lo..scale.hi).log_scale())?;
    let fmt_x = block_label(fig.blocks);
    chart
        .configure_mesh()
        .x_labels((fig.blocks + 2).min(9))
        .y_labels(8)
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .x_desc("decoder block")
        .y_desc("relative error")
        .label_style(("sans-serif", 17))
        .axis_desc_style(("sans-serif", 18))
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .draw()?;
    let size = if fig.blocks > 12 { 3 } else { 5 };
    for (s, _) in series(fig) {
        let pts: Vec<(f64, f64)> = layers
            .iter()
            .filter_map(|l| Some((l.block as f64, s.value(l)?)))
            .collect();
        let style = s.color().stroke_width(2);
        if s == Series::Warm {
            chart.draw_series(DashedLineSeries::new(pts.clone(), 7, 4, style))?;
        } else {
            chart.draw_series(LineSeries::new(pts.clone(), style))?;
        }
        let r = size - 1;
        match s {
            Series::Warm => {
                chart.draw_series(pts.iter().map(|p| {
                    EmptyElement::at(*p) + Circle::new((0, 0), size + 1, WARM.stroke_width(2))
                }))?;
            }
            Series::Swaps => {
                chart.draw_series(pts.iter().map(|p| {
                    EmptyElement::at(*p) + Rectangle::new([(-r, -r), (r, r)], SWAPS.filled())
                }))?;
            }
            Series::Refit => {
                chart.draw_series(
                    pts.iter()
                        .map(|p| TriangleMarker::new(*p, size + 1, REFIT.filled())),
                )?;
            }
        }
    }
    Ok(())
}

/// The heading of the kept-count section and how to read its boxes.
pub(super) fn draw_kept_heading<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    heading: &str,
) -> Res<DB> {
    let mid = area.dim_in_pixel().0 as i32 / 2;
    let top = Pos::new(HPos::Center, VPos::Top);
    area.draw_text(
        heading,
        &super::fit(area, heading, 24, FontStyle::Bold, 24)
            .color(&BLACK)
            .pos(top),
        (mid, 8),
    )?;
    let how = "per layer: line = fewest to most kept in a row, box = middle half of the rows, bar = median, grey ticks = the budget's bounds";
    area.draw_text(
        how,
        &super::fit(area, how, 19, FontStyle::Normal, 24)
            .color(&BLACK.mix(0.8))
            .pos(top),
        (mid, 36),
    )
}

/// The y range shared by all kept-count panels, in percent of the layer's mean kept
/// count, symmetric around 0.
pub(super) struct KeptScale {
    half: f64,
}

/// `count` relative to `mean`, in percent.
fn rel(count: usize, mean: f64) -> f64 {
    if mean > 0.0 {
        100.0 * (count as f64 / mean - 1.0)
    } else {
        0.0
    }
}

impl KeptScale {
    pub(super) fn of(layers: &[LayerReport]) -> Self {
        let half = layers
            .iter()
            .flat_map(|l| {
                let k = &l.budget.kept;
                let bounds = [k.lower_bound, k.upper_bound].map(|b| rel(b, k.mean).abs());
                // Bounds far outside the counts (the layer budget's 1 ..= d_in) would
                // flatten the boxes: they count only up to twice the counts' spread.
                let spread = rel(k.min, k.mean).abs().max(rel(k.max, k.mean).abs());
                [
                    spread,
                    bounds[0].min(2.0 * spread),
                    bounds[1].min(2.0 * spread),
                ]
            })
            .fold(1.0, f64::max);
        KeptScale { half: half * 1.1 }
    }
}

/// One kind's kept-count panel: a box per layer.
pub(super) fn draw_kept_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &Figure<'_>,
    kind: &str,
    scale: &KeptScale,
) -> Res<DB> {
    let layers = of_kind(fig, kind);
    let (head, body) = area.split_vertically(32);
    draw_header(&head, kind, None)?;
    let mut chart = ChartBuilder::on(&body)
        .margin_left(6)
        .margin_right(16)
        .margin_bottom(10)
        .x_label_area_size(48)
        .y_label_area_size(74)
        .build_cartesian_2d(x_range(fig.blocks), -scale.half..scale.half)?;
    let fmt_x = block_label(fig.blocks);
    chart
        .configure_mesh()
        .x_labels((fig.blocks + 2).min(9))
        .y_labels(5)
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&|y| {
            if y.abs() < 0.5 {
                "0%".into()
            } else {
                format!("{y:+.0}%")
            }
        })
        .x_desc("decoder block")
        .y_desc("kept vs mean")
        .label_style(("sans-serif", 17))
        .axis_desc_style(("sans-serif", 18))
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .draw()?;
    let w = 0.3;
    let clip = |v: f64| v.clamp(-scale.half, scale.half);
    for l in layers {
        let k = &l.budget.kept;
        let b = l.block as f64;
        let q = k.quantiles.map(|c| rel(c, k.mean));
        for bound in [k.lower_bound, k.upper_bound] {
            let y = rel(bound, k.mean);
            if y.abs() <= scale.half {
                chart.draw_series([PathElement::new(
                    vec![(b - w - 0.1, y), (b + w + 0.1, y)],
                    RGBColor(150, 150, 150).stroke_width(2),
                )])?;
            }
        }
        let (lo, hi) = (clip(rel(k.min, k.mean)), clip(rel(k.max, k.mean)));
        chart.draw_series([PathElement::new(
            vec![(b, lo), (b, hi)],
            SWAPS.stroke_width(1),
        )])?;
        chart.draw_series([Rectangle::new(
            [(b - w, q[1]), (b + w, q[3])],
            SWAPS.mix(0.35).filled(),
        )])?;
        chart.draw_series([Rectangle::new(
            [(b - w, q[1]), (b + w, q[3])],
            SWAPS.stroke_width(1),
        )])?;
        chart.draw_series([PathElement::new(
            vec![(b - w, q[2]), (b + w, q[2])],
            BLACK.stroke_width(2),
        )])?;
    }
    Ok(())
}
