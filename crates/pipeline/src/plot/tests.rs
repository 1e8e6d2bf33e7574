//! The figure of the fixture reports (real SmolLM2 runs, cut to their first blocks), and
//! of reports with nothing, or odd values, in them.

use super::panels::{REFIT, SWAPS, WARM};
use super::*;
use crate::compare::load_report;
use crate::report::RunReport;
use plotters::style::RGBColor;
use std::collections::HashSet;
use std::path::Path;

fn fixture(name: &str) -> RunReport {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reports");
    load_report(&dir.join(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// Width, height and RGB pixels of a PNG.
fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
    let pixmap = resvg::tiny_skia::Pixmap::decode_png(png_bytes).expect("a PNG");
    let px = pixmap
        .pixels()
        .iter()
        .map(|p| {
            // The figure is opaque: premultiplied and plain colours are the same.
            assert_eq!(p.alpha(), 255, "an opaque figure");
            [p.red(), p.green(), p.blue()]
        })
        .collect();
    (pixmap.width(), pixmap.height(), px)
}

fn has(px: &[[u8; 3]], c: RGBColor) -> bool {
    px.contains(&[c.0, c.1, c.2])
}

/// Occurrences of `text` as a whole SVG text element (plotters puts the text on a line
/// of its own).
fn texts(svg: &str, text: &str) -> usize {
    svg.matches(&format!(">\n{text}\n</text>")).count()
}

#[test]
fn fixture_figures_have_a_panel_per_kind_and_the_right_series() {
    for (name, kinds, refit) in [
        ("wanda-50", &KINDS[..], false),
        ("wanda-50-refit", &KINDS[..], true),
        (
            "magnitude-24",
            &[&KINDS[..], &["lm_head"]].concat()[..],
            false,
        ),
    ] {
        let r = fixture(name);
        let svg = run_plot_svg(&r);
        assert!(
            svg.starts_with("<svg") && svg.len() > 10_000,
            "{name}: {} bytes",
            svg.len()
        );
        for k in kinds {
            assert_eq!(texts(&svg, k), 1, "{name}: panel titles '{k}'");
        }
        assert!(
            svg.contains(&format!(">\n{name}: ")),
            "{name}: the title names the run"
        );
        assert_eq!(
            svg.contains("re-fit (written weights)"),
            refit,
            "{name}: re-fit legend"
        );

        let fig = Figure::of_run(&r);
        let (w, h, px) = decode(&run_plot_png(&r).unwrap());
        assert_eq!((w, h), (FIGURE_WIDTH, fig.height()), "{name}");
        assert_eq!(px.len(), (w * h) as usize);
        let colours: HashSet<[u8; 3]> = px.iter().copied().collect();
        assert!(colours.len() > 50, "{name}: {} colours", colours.len());
        // The markers are filled with their series' exact colour.
        assert!(
            has(&px, WARM) && has(&px, SWAPS),
            "{name}: warm and swaps markers"
        );
        assert_eq!(has(&px, REFIT), refit, "{name}: re-fit markers");
    }
}

#[test]
fn seven_kinds_take_two_rows_of_four() {
    let r = fixture("wanda-50");
    let fig = Figure::of_run(&r);
    assert_eq!(fig.kinds, KINDS.to_vec());
    assert_eq!(fig.blocks, 2);
    assert_eq!(
        fig.height(),
        HEAD_H + 2 * SUBTITLE_H + LEGEND_H + 2 * PANEL_H + 8
    );
    assert!(
        fig.kept_heading.is_none(),
        "row budget: no kept-count section"
    );
}

#[test]
fn a_budget_that_moved_weights_adds_the_kept_count_panels() {
    let mut r = fixture("wanda-50-refit");
    let plain = Figure::of_run(&r).height();
    assert!(run_plot_svg(&r).contains("no weights moved between rows"));
    for l in &mut r.layers {
        let k = &mut l.budget.kept;
        let m = k.mean as usize;
        (k.min, k.max) = (m - 20, m + 25);
        k.quantiles = [m - 15, m - 5, m, m + 6, m + 16];
        (k.lower_bound, k.upper_bound) = (m - m / 10, m + m / 10);
        l.budget.cross_moves = 40;
    }
    let fig = Figure::of_run(&r);
    assert_eq!(fig.height(), plain + KEPT_HEAD_H + 2 * KEPT_PANEL_H);
    let svg = run_plot_svg(&r);
    assert!(svg.contains("Kept weights per row"));
    assert!(svg.contains("560 cross-row moves"), "14 layers × 40 moves");
    assert_eq!(
        texts(&svg, "down_proj"),
        2,
        "an error panel and a kept-count panel"
    );
    let (_, h, _) = decode(&run_plot_png(&r).unwrap());
    assert_eq!(h, fig.height());
}

#[test]
fn empty_and_odd_reports_do_not_panic() {
    let mut r = fixture("wanda-50");
    r.layers.clear();
    let svg = run_plot_svg(&r);
    assert!(svg.contains("no pruned layers in this report"));
    let (w, _, px) = decode(&run_plot_png(&r).unwrap());
    assert_eq!(w, FIGURE_WIDTH);
    assert!(
        px.iter().any(|p| *p != [255, 255, 255]),
        "the title is drawn"
    );
    assert!(error_plot_svg(&[]).contains("no pruned layers"));

    // Zero, NaN and infinite errors cannot be placed on a log scale: left out.
    let mut r = fixture("wanda-50");
    r.layers[0].warm_relative = 0.0;
    r.layers[1].refined_relative = f64::NAN;
    r.layers[2].warm_relative = f64::INFINITY;
    r.layers[3].budget.kept.mean = 0.0;
    assert!(run_plot_svg(&r).len() > 10_000);
    run_plot_png(&r).unwrap();
    // Layers alone (the former API) draw the same panels.
    let svg = error_plot_svg(&r.layers);
    assert_eq!(texts(&svg, "gate_proj"), 1);
}
