//! Plots of a replay, in SVG and PNG (plotters, pure Rust backends).
//!
//! Text (titles, axis labels, legends) is drawn with a TrueType font loaded at run
//! time: the file named by `ALLOT_FONT`, else the first of a few common system fonts
//! (DejaVu Sans, Liberation Sans, Noto Sans, ...). Without one the plots are drawn
//! without text (the CSV files carry the numbers); `font_note` says which.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::ReplayError;
use crate::engine::RunResult;

const SIZE: (u32, u32) = (1000, 560);
const MAX_CDF_TENANTS: usize = 12;
use crate::font::FAMILY as FONT;

/// Loads and registers a font once; whether plots can have text.
pub(super) fn ensure_font() -> bool {
    crate::font::ensure()
}

/// Which font the plots use, or that they have no text.
pub fn font_note() -> String {
    crate::font::note()
}

fn plot_err(path: &Path) -> impl Fn(String) -> ReplayError + '_ {
    move |message| ReplayError::Plot { path: path.to_path_buf(), message }
}

/// Draws every plot as SVG and PNG; returns the files.
pub(super) fn all(dir: &Path, result: &RunResult, tenants: &[(usize, &str)], text: bool) -> Result<Vec<PathBuf>, ReplayError> {
    let mut out = Vec::new();
    let hours: Vec<f64> = result.samples.iter().map(|s| s.t_s / 3600.0).collect();
    let gpus = result.summary.gpus.max(f64::MIN_POSITIVE);
    let util: Vec<(f64, f64)> = hours.iter().zip(&result.samples).map(|(&h, s)| (h, 100.0 * s.busy_gpus / gpus)).collect();
    let queue: Vec<(f64, f64)> = hours.iter().zip(&result.samples).map(|(&h, s)| (h, s.pending_jobs as f64)).collect();
    // CDF of waits for the tenants with the most completed jobs.
    let mut by_tenant: Vec<(&str, Vec<f64>)> = tenants
        .iter()
        .map(|&(i, p)| (p, result.waits.iter().filter(|w| w.tenant as usize == i).map(|w| w.wait_s.max(1.0)).collect::<Vec<f64>>()))
        .filter(|(_, w)| !w.is_empty())
        .collect();
    by_tenant.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    by_tenant.truncate(MAX_CDF_TENANTS);
    for (_, w) in &mut by_tenant {
        w.sort_by(f64::total_cmp);
    }
    let util_title = format!("GPU utilisation (mean {:.1}%)", result.summary.utilization_pct);
    let charts = [
        ("utilization", Chart::Line { title: &util_title, x_desc: "hours", y_desc: "GPUs busy (%)", points: &util, y_max: Some(100.0) }),
        ("queue", Chart::Line { title: "Pending jobs", x_desc: "hours", y_desc: "jobs", points: &queue, y_max: None }),
        ("wait_cdf", Chart::Cdf { tenants: &by_tenant }),
    ];
    for (name, chart) in &charts {
        for ext in ["svg", "png"] {
            let p = dir.join(format!("{name}.{ext}"));
            save(&p, chart, text)?;
            out.push(p);
        }
    }
    Ok(out)
}

enum Chart<'a> {
    Line { title: &'a str, x_desc: &'a str, y_desc: &'a str, points: &'a [(f64, f64)], y_max: Option<f64> },
    Cdf { tenants: &'a [(&'a str, Vec<f64>)] },
}

fn render<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &Chart, text: bool) -> Result<(), String> {
    area.fill(&WHITE).map_err(|e| e.to_string())?;
    match chart {
        Chart::Line { title, x_desc, y_desc, points, y_max } => line_chart(area, title, x_desc, y_desc, points, *y_max, text)?,
        Chart::Cdf { tenants } => wait_cdf(area, tenants, text)?,
    }
    area.present().map_err(|e| e.to_string())
}

/// Draws a chart into an SVG or PNG file (by extension).
fn save(path: &Path, chart: &Chart, text: bool) -> Result<(), ReplayError> {
    let err = plot_err(path);
    if path.extension().is_some_and(|e| e == "png") {
        render(&BitMapBackend::new(path, SIZE).into_drawing_area(), chart, text).map_err(err)
    } else {
        render(&SVGBackend::new(path, SIZE).into_drawing_area(), chart, text).map_err(err)
    }
}

fn line_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[(f64, f64)],
    y_max: Option<f64>,
    text: bool,
) -> Result<(), String> {
    let x_max = points.last().map_or(1.0, |p| p.0).max(1e-9);
    let y_top = y_max.unwrap_or_else(|| points.iter().map(|p| p.1).fold(0.0, f64::max)).max(1.0) * if y_max.is_some() { 1.0 } else { 1.05 };
    let mut b = ChartBuilder::on(area);
    b.margin(16);
    if text {
        b.caption(title, (FONT, 22)).x_label_area_size(40).y_label_area_size(60);
    }
    let mut chart = b.build_cartesian_2d(0.0..x_max, 0.0..y_top).map_err(|e| e.to_string())?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc(x_desc).y_desc(y_desc).label_style((FONT, 14));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| e.to_string())?;
    chart.draw_series(LineSeries::new(points.iter().copied(), &BLUE)).map_err(|e| e.to_string())?;
    Ok(())
}

fn wait_cdf<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, tenants: &[(&str, Vec<f64>)], text: bool) -> Result<(), String> {
    let x_max = tenants.iter().filter_map(|t| t.1.last().copied()).fold(10.0, f64::max);
    let mut b = ChartBuilder::on(area);
    b.margin(16);
    if text {
        b.caption("Wait before first start, CDF per tenant", (FONT, 22)).x_label_area_size(40).y_label_area_size(60);
    }
    let mut chart = b.build_cartesian_2d((1.0..x_max).log_scale(), 0.0..1.0).map_err(|e| e.to_string())?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("wait (s, log scale; under 1 s shown at 1 s)").y_desc("fraction of jobs").label_style((FONT, 14));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| e.to_string())?;
    for (i, (name, waits)) in tenants.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let n = waits.len() as f64;
        // Steps: at each distinct wait, the fraction of jobs that waited at most that.
        let mut pts = Vec::with_capacity(waits.len() + 1);
        for (k, &w) in waits.iter().enumerate() {
            if waits.get(k + 1) != Some(&w) {
                pts.push((w, (k + 1) as f64 / n));
            }
        }
        if let Some(&(last, _)) = pts.last()
            && last < x_max
        {
            pts.push((x_max, 1.0));
        }
        let series = chart.draw_series(LineSeries::new(pts, color.stroke_width(2))).map_err(|e| e.to_string())?;
        if text {
            series.label(name.to_string()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
    }
    if text && !tenants.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
