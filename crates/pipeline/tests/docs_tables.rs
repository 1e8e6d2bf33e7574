//! The results tables in `docs/` that `sparseswaps compare` produces are checked against
//! it: a table between `<!-- compare: DIR... -->` and `<!-- /compare -->` (run
//! directories relative to the repository root, their `report.json` committed under
//! `docs/runs/`) must equal `compare`'s Markdown of those runs, byte for byte.
//! `UPDATE_SNAPSHOTS=1` rewrites the tables from the reports.

use sparseswaps_pipeline::compare::{compare_dirs, render, Format};
use std::path::{Path, PathBuf};

const OPEN: &str = "<!-- compare:";
const CLOSE: &str = "<!-- /compare -->";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The document with every compare block rendered from its runs, and the blocks found.
fn rendered(doc: &str) -> (String, usize) {
    let mut out = String::new();
    let mut rest = doc;
    let mut blocks = 0;
    while let Some(start) = rest.find(OPEN) {
        let header_end = start + rest[start..].find("-->").expect("an unclosed compare tag") + 3;
        let dirs: Vec<PathBuf> = rest[start + OPEN.len()..header_end - 3]
            .split_whitespace()
            .map(|d| root().join(d))
            .collect();
        let end = rest[header_end..]
            .find(CLOSE)
            .map(|e| header_end + e)
            .expect("a compare block without its closing tag");
        let rows = compare_dirs(&dirs, false).unwrap_or_else(|e| panic!("{e}"));
        out.push_str(&rest[..header_end]);
        out.push('\n');
        out.push_str(&render(&rows, Format::Md));
        out.push_str(CLOSE);
        rest = &rest[end + CLOSE.len()..];
        blocks += 1;
    }
    out.push_str(rest);
    (out, blocks)
}

#[test]
fn results_tables_equal_compare_over_their_runs() {
    let path = root().join("docs/results.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (want, blocks) = rendered(&doc);
    assert!(blocks >= 1, "{}: no compare block", path.display());
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    assert!(
        doc == want,
        "{}: a table differs from `sparseswaps compare` over its runs (UPDATE_SNAPSHOTS=1 rewrites it)",
        path.display()
    );
}
