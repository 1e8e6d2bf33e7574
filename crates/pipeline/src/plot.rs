//! The per-layer error plot: relative error of every target before (warm start) and
//! after refinement, on a log scale, in pruning order.

use crate::report::LayerReport;
use plotters::prelude::*;

/// Renders the plot as an SVG document.
pub fn error_plot_svg(layers: &[LayerReport]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 500)).into_drawing_area();
        // Drawing into a string cannot fail for I/O reasons; a failure would only lose
        // the plot, never the run, so errors are ignored.
        let _ = draw(&root, layers);
        let _ = root.present();
    }
    svg
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    layers: &[LayerReport],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let vals: Vec<f64> = layers
        .iter()
        .flat_map(|l| [l.warm_relative, l.refined_relative])
        .filter(|v| *v > 0.0)
        .collect();
    let lo = vals.iter().cloned().fold(f64::INFINITY, f64::min).min(1.0) * 0.8;
    let hi = vals.iter().cloned().fold(0.0, f64::max).max(lo * 10.0) * 1.25;
    let n = layers.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Per-layer relative error: warm start vs refined",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0usize..n, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("target layer (pruning order)")
        .y_desc("E / ||WX||^2")
        .draw()?;
    let warm = layers
        .iter()
        .enumerate()
        .map(|(i, l)| (i, l.warm_relative.max(lo)));
    chart
        .draw_series(LineSeries::new(warm, RED.stroke_width(2)))?
        .label("warm start")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    let refined = layers
        .iter()
        .enumerate()
        .map(|(i, l)| (i, l.refined_relative.max(lo)));
    chart
        .draw_series(LineSeries::new(refined, BLUE.stroke_width(2)))?
        .label("refined (1-swaps)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
