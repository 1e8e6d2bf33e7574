//! Tests of the config: defaults, unknown keys, budgets, globs and paths.

use super::*;
use std::path::Path;
use std::path::PathBuf;

const MIN: &str = r#"
[model]
path = "m.gguf"
[calibration]
text = "c.txt"
[pattern]
sparsity = 0.5
[output]
dir = "out"
"#;

#[test]
fn defaults_and_unknown_keys() {
    let p = Path::new("p.toml");
    let c = PipelineConfig::from_toml(p, MIN).unwrap();
    assert_eq!(c.calibration.samples, 64);
    assert_eq!(c.refine.max_swaps, SwapCap::Count(100));
    assert_eq!(c.warm_start.name, "wanda");
    let e = PipelineConfig::from_toml(p, &format!("{MIN}\n[refine]\nmax_swap = 3\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("p.toml") && e.contains("max_swap"), "{e}");
    let e = PipelineConfig::from_toml(p, &MIN.replace("[output]", "[output]\nfoo = 1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `foo`"), "{e}");
    let c =
        PipelineConfig::from_toml(p, &format!("{MIN}\n[refine]\nmax_swaps = \"none\"\n")).unwrap();
    assert_eq!(c.refine.max_swaps.as_option(), None);
    let e = PipelineConfig::from_toml(p, &MIN.replace("sparsity = 0.5", "sparsity = 1.5"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside [0, 1)"), "{e}");
}

/// A value with a newline (a TOML escape) is quoted escaped: the message stays one
/// line (the GGUF fuzz target found this fault in the GGUF loader first).
#[test]
fn control_characters_in_values_are_escaped() {
    let p = Path::new("p.toml");
    let text = format!("{MIN}\n[refine]\nbackend = \"tp\\nu\"\n");
    let e = PipelineConfig::from_toml(p, &text).unwrap_err().to_string();
    assert_eq!(
        e,
        r"p.toml: refine.backend = 'tp\nu': expected cpu, cuda or auto"
    );
}

#[test]
fn budget_keys() {
    let p = Path::new("p.toml");
    let c = PipelineConfig::from_toml(p, MIN).unwrap();
    assert_eq!(c.budget(p).unwrap(), sparseswaps_core::Budget::Row);
    assert!(!c.refine.reconstruct);
    let c = PipelineConfig::from_toml(
        p,
        &format!(
            "{MIN}\n[refine]\nbudget = \"band\"\nmax_row_imbalance = 0.1\nreconstruct = true\n"
        ),
    )
    .unwrap();
    assert_eq!(
        c.budget(p).unwrap(),
        sparseswaps_core::Budget::Band {
            max_row_imbalance: 0.1
        }
    );
    assert!(c.refine.reconstruct);
    let c = PipelineConfig::from_toml(p, &format!("{MIN}\n[refine]\nbudget = \"band\"\n")).unwrap();
    assert_eq!(
        c.budget(p).unwrap(),
        sparseswaps_core::Budget::Band {
            max_row_imbalance: 0.25
        }
    );
    let err = |extra: &str, base: &str| {
        PipelineConfig::from_toml(p, &format!("{base}\n[refine]\n{extra}\n"))
            .unwrap_err()
            .to_string()
    };
    let e = err(
        "budget = \"layer\"",
        &MIN.replace("sparsity = 0.5", "n_m = \"2:4\""),
    );
    assert!(
        e.contains("p.toml") && e.contains("refine.budget") && e.contains("pattern.n_m"),
        "{e}"
    );
    let e = err("budget = \"rows\"", MIN);
    assert!(
        e.contains("p.toml") && e.contains("refine.budget") && e.contains("'rows'"),
        "{e}"
    );
    let e = err("max_row_imbalance = 0.2", MIN);
    assert!(e.contains("refine.max_row_imbalance"), "{e}");
    let e = err("budget = \"band\"\nmax_row_imbalance = -0.5", MIN);
    assert!(
        e.contains("refine.budget") && e.contains("max_row_imbalance -0.5"),
        "{e}"
    );
}

#[test]
fn globs_and_paths() {
    assert!(glob_match("model.layers.*", "model.layers.3.mlp.up_proj"));
    assert!(glob_match("*.q_proj", "model.layers.12.self_attn.q_proj"));
    assert!(!glob_match("*.q_proj", "model.layers.12.self_attn.k_proj"));
    assert!(glob_match(
        "model.layers.?.mlp.*",
        "model.layers.1.mlp.up_proj"
    ));
    assert!(!glob_match(
        "model.layers.?.mlp.*",
        "model.layers.11.mlp.up_proj"
    ));
    assert_eq!(
        expand_path("${SPARSESWAPS_SURELY_UNSET:-a/b}/c"),
        PathBuf::from("a/b/c")
    );
}

#[test]
fn objective_key() {
    let p = Path::new("p.toml");
    let c = PipelineConfig::from_toml(p, MIN).unwrap();
    assert_eq!(c.objective(p).unwrap(), Objective::Mask);
    // The default stays out of the canonical form (reports and checkpoints unchanged).
    let json = serde_json::to_value(&c).unwrap();
    assert!(json["refine"].get("objective").is_none(), "{json}");
    let c = PipelineConfig::from_toml(
        p,
        &format!("{MIN}\n[refine]\nobjective = \"refit\"\nreconstruct = false\n"),
    )
    .unwrap();
    assert_eq!(c.objective(p).unwrap(), Objective::Refit);
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["refine"]["objective"], "refit");
    let e = PipelineConfig::from_toml(p, &format!("{MIN}\n[refine]\nobjective = \"refitted\"\n"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "p.toml: refine.objective = 'refitted': expected mask or refit"
    );
}
