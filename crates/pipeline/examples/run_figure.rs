//! Draws the figure of finished runs again from their `report.json`, as `run` writes it:
//! `cargo run -p sparseswaps-pipeline --example run_figure -- OUT_DIR RUN_DIR...` writes
//! `OUT_DIR/<run>.svg` and `OUT_DIR/<run>.png` for every run directory.

use sparseswaps_pipeline::compare::load_report;
use sparseswaps_pipeline::plot::{run_plot_png, run_plot_svg};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let out = args.next().ok_or("usage: run_figure OUT_DIR RUN_DIR...")?;
    std::fs::create_dir_all(&out)?;
    for dir in args {
        let report = load_report(&dir)?;
        let name = dir
            .file_name()
            .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
        std::fs::write(out.join(format!("{name}.svg")), run_plot_svg(&report))?;
        let png = out.join(format!("{name}.png"));
        std::fs::write(&png, run_plot_png(&report)?)?;
        println!("{}", png.display());
    }
    Ok(())
}
