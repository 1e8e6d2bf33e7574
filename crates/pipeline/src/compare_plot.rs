//! The plot of `sparseswaps compare --plot`: pruned perplexity against measured
//! sparsity, one line per method (warm start, refinement, budget, objective), the
//! dense perplexity at sparsity 0, each point named by its run. The legend has its own
//! column right of the chart, so it never covers data.

use crate::compare::CompareRow;
use plotters::prelude::*;

/// A method's name in the legend: what differs between runs besides the sparsity.
fn method(r: &CompareRow) -> String {
    let mut m = format!("{}, {}", r.warm_start, r.refinement);
    if r.budget != "row" {
        m.push_str(&format!(", {}", r.budget));
    }
    if r.objective != "mask" {
        m.push_str(&format!(", objective {}", r.objective));
    } else if r.reconstruct {
        m.push_str(", re-fit");
    }
    m
}

/// The plot as an SVG document; `None` when no run has a pruned perplexity.
pub fn ppl_plot_svg(rows: &[CompareRow]) -> Option<String> {
    let points: Vec<&CompareRow> = rows.iter().filter(|r| r.pruned_ppl.is_some()).collect();
    if points.is_empty() {
        return None;
    }
    let mut methods: Vec<String> = points.iter().map(|r| method(r)).collect();
    methods.sort();
    methods.dedup();
    // plotters measures text with the fonts registered by this crate only.
    crate::plot::register_fonts();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 600)).into_drawing_area();
        // Drawing into a string cannot fail for I/O reasons; a failure only loses the
        // plot, so errors are ignored.
        let _ = draw(&root, rows, &points, &methods);
        let _ = root.present();
    }
    Some(svg)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    rows: &[CompareRow],
    points: &[&CompareRow],
    methods: &[String],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (plot_area, legend_area) = root.split_horizontally(850);
    let dense = rows.iter().find_map(|r| r.dense_ppl);
    let ys: Vec<f64> = points
        .iter()
        .filter_map(|r| r.pruned_ppl)
        .chain(dense)
        .collect();
    let lo = ys.iter().cloned().fold(f64::INFINITY, f64::min) * 0.8;
    let hi = ys.iter().cloned().fold(0.0, f64::max) * 1.25;
    let x_hi = points
        .iter()
        .map(|r| 100.0 * r.sparsity)
        .fold(0.0, f64::max)
        * 1.3
        + 1.0;
    let mut chart = ChartBuilder::on(&plot_area)
        .caption("Perplexity against sparsity", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-2.0..x_hi, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("sparsity of the target layers (%)")
        .y_desc("perplexity (log scale)")
        .label_style(("sans-serif", 15))
        .draw()?;
    if let Some(d) = dense {
        chart.draw_series([Cross::new((0.0, d), 7, BLACK.stroke_width(2))])?;
    }
    let mut legend: Vec<(String, RGBColor)> = Vec::new();
    if dense.is_some() {
        legend.push(("dense".into(), BLACK));
    }
    for (i, m) in methods.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let color = RGBColor(color.0, color.1, color.2);
        let mut pts: Vec<(f64, f64, &str)> = points
            .iter()
            .filter(|r| &method(r) == m)
            .filter_map(|r| Some((100.0 * r.sparsity, r.pruned_ppl?, r.run.as_str())))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart.draw_series(LineSeries::new(
            pts.iter().map(|p| (p.0, p.1)),
            color.stroke_width(2),
        ))?;
        chart.draw_series(
            pts.iter()
                .map(|p| Circle::new((p.0, p.1), 5, color.filled())),
        )?;
        // The run's name beside its point, offset in pixels so the marker stays visible.
        chart.draw_series(pts.iter().map(|p| {
            EmptyElement::at((p.0, p.1))
                + Text::new(
                    p.2.to_string(),
                    (8, -14),
                    ("sans-serif", 13).into_font().color(&BLACK),
                )
        }))?;
        legend.push((m.clone(), color));
    }
    for (i, (label, color)) in legend.iter().enumerate() {
        let y = 60 + 28 * i as i32;
        legend_area.draw(&PathElement::new(
            vec![(10, y), (40, y)],
            color.stroke_width(3),
        ))?;
        // A long method name gets a smaller font rather than running off the figure.
        let font = crate::plot::fit(&legend_area, label, 15, FontStyle::Normal, 56);
        legend_area.draw(&Text::new(label.clone(), (48, y - 8), font))?;
    }
    Ok(())
}
