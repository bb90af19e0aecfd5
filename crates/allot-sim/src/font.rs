//! The TrueType font plots draw their text with, loaded once at run time: the file
//! named by `ALLOT_FONT`, else the first of a few common system fonts. Without one,
//! plots are drawn without text (the CSV files beside them carry the numbers).

use std::path::PathBuf;
use std::sync::OnceLock;

use plotters::style::FontStyle;

/// The family name plots ask for.
pub const FAMILY: &str = "sans-serif";

/// Font files tried, in order, when `ALLOT_FONT` is not set.
const PATHS: [&str; 8] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

static LOADED: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Loads and registers a font once; whether plots can have text.
pub fn ensure() -> bool {
    LOADED
        .get_or_init(|| {
            let env = std::env::var_os("ALLOT_FONT").map(PathBuf::from);
            for path in env.into_iter().chain(PATHS.iter().map(PathBuf::from)) {
                let Ok(bytes) = std::fs::read(&path) else { continue };
                // plotters keeps registered fonts for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok() {
                    return Some(path);
                }
            }
            None
        })
        .is_some()
}

/// Which font plots use, or that they have no text.
pub fn note() -> String {
    ensure();
    match LOADED.get().and_then(|f| f.as_ref()) {
        Some(p) => format!("plots use the font {}", p.display()),
        None => "no TrueType font found (set ALLOT_FONT to a .ttf file): plots are drawn without text".to_string(),
    }
}
