//! Plots of the FGD experiment: allocated GPU against arrived workload per policy,
//! with the paper's published points, and the fragmentation ratio; SVG and PNG.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::fgd::PUBLISHED_AT_100;
use crate::font::{self, FAMILY};

const SIZE: (u32, u32) = (1000, 600);
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// One policy's median curve: `(arrived %, allocated %, fragmented %)`.
pub struct Curve<'a> {
    pub policy: &'a str,
    pub points: Vec<(f64, f64, f64)>,
}

/// A plot that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct PlotError {
    pub path: PathBuf,
    pub message: String,
}

/// Writes `<name>_alloc.{svg,png}` and `<name>_frag.{svg,png}`; returns the files.
pub fn plot(dir: &Path, name: &str, curves: &[Curve]) -> Result<Vec<PathBuf>, PlotError> {
    let text = font::ensure();
    let mut out = Vec::new();
    for (what, frag) in [("alloc", false), ("frag", true)] {
        for ext in ["svg", "png"] {
            let path = dir.join(format!("{name}_{what}.{ext}"));
            let err = |e: String| PlotError { path: path.clone(), message: e };
            if ext == "png" {
                draw(&BitMapBackend::new(&path, SIZE).into_drawing_area(), name, curves, frag, text).map_err(err)?;
            } else {
                draw(&SVGBackend::new(&path, SIZE).into_drawing_area(), name, curves, frag, text).map_err(err)?;
            }
            out.push(path);
        }
    }
    Ok(out)
}

fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, name: &str, curves: &[Curve], frag: bool, text: bool) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    area.fill(&WHITE).map_err(e)?;
    let x_max = curves.iter().flat_map(|c| c.points.iter().map(|p| p.0)).fold(1.0, f64::max);
    let y_max = if frag { curves.iter().flat_map(|c| c.points.iter().map(|p| p.2)).fold(1.0, f64::max) * 1.1 } else { 100.0 };
    let mut b = ChartBuilder::on(area);
    b.margin(16);
    if text {
        let title = if frag {
            format!("{name}: fragmented GPU (% of capacity)")
        } else {
            format!("{name}: allocated GPU vs arrived workload (dots: published, Weng et al. ATC'23)")
        };
        b.caption(title, (FAMILY, 20)).x_label_area_size(40).y_label_area_size(60);
    }
    let mut chart = b.build_cartesian_2d(0.0..x_max, 0.0..y_max).map_err(e)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("arrived GPU request (% of capacity)").y_desc(if frag { "fragmented (%)" } else { "allocated (%)" });
    } else {
        mesh.disable_x_mesh().disable_y_mesh().x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(e)?;
    for (i, c) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let series = chart
            .draw_series(LineSeries::new(c.points.iter().map(|p| (p.0, if frag { p.2 } else { p.1 })), color.stroke_width(2)))
            .map_err(e)?;
        if text {
            series.label(c.policy).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        if !frag && let Some(&(_, v)) = PUBLISHED_AT_100.iter().find(|p| p.0 == c.policy) {
            chart.draw_series(std::iter::once(Circle::new((100.0, v), 5, color.filled()))).map_err(e)?;
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FAMILY, 14))
            .draw()
            .map_err(e)?;
    }
    area.present().map_err(e)
}
