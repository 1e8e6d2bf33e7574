//! A run writes its figure: `error.svg` and `error.png` beside `report.json`, both drawn
//! from the report it wrote (a tiny synthetic model, no assets needed; the figure's
//! content is tested on real reports in `plot::tests`).

use sparseswaps_pipeline::plot::{run_plot_png, run_plot_svg, FIGURE_WIDTH};
use sparseswaps_pipeline::{run, PipelineConfig, RunOptions, RunReport};
use sparseswaps_testkit::tiny;

#[test]
fn a_run_writes_the_figure_as_svg_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny::write_hf(
        &d.join("model"),
        "LlamaForCausalLM",
        &tiny::weights(7, false, true),
        true,
        1,
    );
    let text = "the tiny test talks to the tiny model about tiny things. ".repeat(20);
    std::fs::write(d.join("calib.txt"), text).unwrap();
    let cfg_path = d.join("p.toml");
    let toml = format!(
        r#"
[model]
path = "{d}/model"
[calibration]
text = "{d}/calib.txt"
samples = 4
seq_len = 16
micro_batch = 2
[pattern]
sparsity = 0.5
[warm_start]
name = "magnitude"
[refine]
budget = "layer"
reconstruct = true
[output]
dir = "{d}/tiny-run"
model = false
plot = true
"#,
        d = d.display()
    );
    let cfg = PipelineConfig::from_toml(&cfg_path, &toml).unwrap();
    run(&cfg, &cfg_path, &RunOptions::default(), &|_| {}).unwrap();
    let out = d.join("tiny-run");
    let report: RunReport =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert!(!report.layers.is_empty());
    let svg = std::fs::read_to_string(out.join("error.svg")).unwrap();
    assert!(
        svg.contains("tiny-run: magnitude warm start"),
        "the title names the run"
    );
    assert_eq!(svg, run_plot_svg(&report), "the figure is the report's");
    let png = std::fs::read(out.join("error.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(png, run_plot_png(&report).unwrap());
    // PNG header: width then height, big-endian, at bytes 16..24.
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(width, FIGURE_WIDTH);
}
