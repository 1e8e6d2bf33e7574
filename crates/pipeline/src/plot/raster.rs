//! The PNG of a figure: its SVG rendered by resvg, and the font both lay text out with.
//!
//! The only font is DejaVu Sans, compiled in: plotters measures labels with it (its
//! `ab_glyph` engine knows only the fonts registered by [`register_fonts`], never the
//! system's) and resvg draws them with it (system fonts off), so the PNG is the same on
//! a bare machine with no font installed (CI) as anywhere else.

use crate::error::{PipelineError, Result};
use plotters::style::FontStyle;
use resvg::{tiny_skia, usvg};
use std::sync::{Arc, Once, OnceLock};

/// The family name inside the DejaVu Sans files, which resvg matches `sans-serif` to.
const FAMILY: &str = "DejaVu Sans";

/// Registers DejaVu Sans (regular and bold) as plotters' `sans-serif`. Idempotent;
/// every plot calls it before drawing, since without a registered font plotters can
/// neither measure nor place text.
pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Both are valid TrueType files compiled into the binary: registration cannot
        // fail, and if it did the plots would only lose their text.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

/// resvg's fonts: DejaVu Sans regular and bold, standing for every generic family.
fn fontdb() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(dejavu::sans::regular().to_vec());
        db.load_font_data(dejavu::sans::bold().to_vec());
        db.set_sans_serif_family(FAMILY);
        db.set_serif_family(FAMILY);
        db.set_monospace_family(FAMILY);
        Arc::new(db)
    })
    .clone()
}

/// The SVG document `svg` rendered at its own size, as PNG bytes (RGBA).
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>> {
    let err = |what: &str, e: &dyn std::fmt::Display| {
        PipelineError::Input(format!("plot: PNG rendering: {what}: {e}"))
    };
    let opt = usvg::Options {
        fontdb: fontdb(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| err("SVG", &e))?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| err("size", &format!("{}x{}", size.width(), size.height())))?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| err("encoding", &e))
}
