//! Latency percentile plots (SVG or PNG) for `rbench compare --plot`, drawn with plotters.
use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::compare::Loaded;
use super::PercentilePoint;
use crate::exit::{fail, Kind};

/// Percentiles as "nines": 0 → 0 %, 1 → 90 %, 2 → 99 %, 3 → 99.9 % … 5 → 99.999 %; 100 % (the
/// maximum) sits one step further, at the right edge, so it never shares an x with p99.999.
const MAX_NINES: f64 = 6.0;

fn nines(percentile: f64) -> f64 {
    if percentile >= 100.0 {
        return MAX_NINES;
    }
    (-(1.0 - percentile / 100.0).log10()).clamp(0.0, MAX_NINES - 1.0)
}

fn nines_label(x: &f64) -> String {
    if *x >= MAX_NINES {
        return "max".into();
    }
    let p = 100.0 * (1.0 - 10f64.powf(-*x));
    let s = format!("{p:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// The embedded DejaVu Sans, so PNG text needs no system fonts and no -dev packages.
pub fn fonts() -> anyhow::Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow::anyhow!("the embedded font could not be loaded"))
    }
}

/// One curve: its label and its points.
pub struct Curve {
    pub label: String,
    pub points: Vec<PercentilePoint>,
}

/// A curve per file and test (tests filtered by `only`, as in the table).
pub fn curves(files: &[Loaded], only: &[String]) -> Vec<Curve> {
    let mut out = Vec::new();
    for f in files {
        for (name, r) in &f.doc.results.tests.0 {
            if !only.is_empty() && !only.iter().any(|o| o.eq_ignore_ascii_case(name)) {
                continue;
            }
            let points = r.curve();
            if !points.is_empty() {
                out.push(Curve {
                    label: format!("{} {name}", f.label),
                    points,
                });
            }
        }
    }
    out
}

/// Draw the curves into `path` (`.svg` or `.png`).
pub fn draw(path: &Path, curves: &[Curve]) -> anyhow::Result<()> {
    if curves.is_empty() {
        return Err(fail(
            Kind::DataErr,
            "nothing to plot: no latency numbers in the results (old rps-only redis-benchmark?)",
        ));
    }
    fonts()?;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let size = (1000, 600);
    let res = match ext.as_str() {
        "svg" => chart(SVGBackend::new(path, size).into_drawing_area(), curves),
        "png" => chart(BitMapBackend::new(path, size).into_drawing_area(), curves),
        _ => {
            return Err(fail(
                Kind::Usage,
                format!(
                    "--plot {}: the file name must end in .svg or .png",
                    path.display()
                ),
            ))
        }
    };
    res.map_err(|e| anyhow::anyhow!("cannot draw the plot {}: {e}", path.display()))
}

fn chart<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    curves: &[Curve],
) -> Result<(), Box<dyn std::error::Error + 'static>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let ymax = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.latency_ms))
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.08;
    let mut chart = ChartBuilder::on(&root)
        .caption("Latency by percentile", ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..MAX_NINES, 0f64..ymax)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(MAX_NINES as usize + 1)
        .x_label_formatter(&nines_label)
        .y_label_formatter(&|y| format!("{y:.3}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    for (i, c) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = c
            .points
            .iter()
            .map(|p| (nines(p.percentile), p.latency_ms))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(c.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert!((nines(99.999) - 5.0).abs() < 1e-9);
        assert_eq!(
            nines(99.99999),
            MAX_NINES - 1.0,
            "only the maximum is at the edge"
        );
        assert_eq!(nines(100.0), MAX_NINES);
        assert_eq!(nines_label(&5.0), "99.999%");
        assert_eq!(nines_label(&0.0), "0%");
        assert_eq!(nines_label(&2.0), "99%");
        assert_eq!(nines_label(&3.0), "99.9%");
        assert_eq!(nines_label(&MAX_NINES), "max");
    }
}
