//! The report's plots, as SVG: outputs read per second over the run
//! (one line per mode; log scale, as the modes differ by orders of
//! magnitude), the latency percentile curve (HDR style: the
//! x axis is 1 / (1 - percentile) on a log scale, so 90%, 99%, 99.9% are
//! evenly spaced; latency on a log scale), and memory over the run (the
//! daemon's RSS and Redis's used_memory, linear, from zero so that a slope
//! is seen at its true size).
//!
//! plotters is built with its SVG backend only: text is written as SVG
//! `<text>` and sized with plotters' own estimate, so no font is needed.

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::coord::ranged1d::AsRangedCoord;
use plotters::prelude::*;

use super::Outcome;
use super::sample;

const SIZE: (u32, u32) = (900, 520);

fn colour(i: usize) -> RGBColor {
    [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(148, 103, 189)][i % 4]
}

/// The width of the throughput plot's windows: a second, or a tenth of
/// one when a mode lasted less than 20 s (it would show a point or two).
pub fn window_seconds(outcomes: &[Outcome]) -> f64 {
    if outcomes.iter().all(|o| o.seconds >= 20.0) { 1.0 } else { 0.1 }
}

/// (window middle, outputs per second in the window) from the mode's first
/// event produced to its end; the last window is as wide as what is left.
pub fn per_window(o: &Outcome, window: f64) -> Vec<(f64, f64)> {
    let first = o.produced.first_us;
    let windows = ((o.seconds / window).ceil() as usize).max(1);
    let mut counts = vec![0u64; windows];
    for &t in &o.read.finished_us {
        let w = (t.saturating_sub(first) as f64 / 1e6 / window) as usize;
        if let Some(c) = counts.get_mut(w.min(windows - 1)) {
            *c += 1;
        }
    }
    counts
        .iter()
        .enumerate()
        .map(|(w, c)| {
            let start = w as f64 * window;
            let width = (o.seconds - start).clamp(window / 10.0, window);
            (start + width / 2.0, *c as f64 / width)
        })
        .collect()
}

/// The throughput plot, as an SVG document.
pub fn throughput(outcomes: &[Outcome]) -> anyhow::Result<String> {
    let mut svg = String::new();
    draw_throughput(&mut svg, outcomes)?;
    Ok(svg)
}

fn draw_throughput(svg: &mut String, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let window = window_seconds(outcomes);
    let series: Vec<Vec<(f64, f64)>> = outcomes.iter().map(|o| per_window(o, window)).collect();
    let x_max = outcomes.iter().map(|o| o.seconds).fold(window, f64::max);
    let y_max = series.iter().flatten().map(|p| p.1).fold(10.0, f64::max) * 2.0;
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    let mut chart =
        chart(&root, &format!("Outputs read per second ({window} s windows)"), 0f64..x_max, (1f64..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first event was produced")
        .y_desc("outputs / s")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    let lines = outcomes.iter().zip(series).enumerate().map(|(i, (o, points))| {
        // A window without outputs sits on the axis.
        let points = points.into_iter().map(|(x, y)| (x, y.max(1.0))).collect();
        (o.mode.name().to_owned(), colour(i).stroke_width(2), points)
    });
    lines_with_legend(&mut chart, lines, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// (1 / (1 - q), latency ms) from the fastest to the last recorded value.
pub fn percentile_curve(o: &Outcome) -> Vec<(f64, f64)> {
    let h = &o.read.latency;
    if h.is_empty() {
        return Vec::new();
    }
    // Beyond 1 / count, every quantile is the maximum.
    let x_last = (h.len() as f64).max(2.0);
    let steps = 200;
    (0..=steps)
        .map(|k| {
            let x = x_last.powf(f64::from(k) / f64::from(steps));
            let q = 1.0 - 1.0 / x;
            (x, (h.value_at_quantile(q) as f64 / 1000.0).max(0.01))
        })
        .collect()
}

/// The latency percentile plot, as an SVG document.
pub fn latency(outcomes: &[Outcome]) -> anyhow::Result<String> {
    let mut svg = String::new();
    draw_latency(&mut svg, outcomes)?;
    Ok(svg)
}

fn draw_latency(svg: &mut String, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let curves: Vec<Vec<(f64, f64)>> = outcomes.iter().map(percentile_curve).collect();
    let x_max = curves.iter().flatten().map(|p| p.0).fold(10.0, f64::max);
    let y_min = curves.iter().flatten().map(|p| p.1).fold(f64::INFINITY, f64::min).min(1.0) * 0.8;
    let y_max = curves.iter().flatten().map(|p| p.1).fold(1.0, f64::max) * 1.5;
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    let mut chart =
        chart(&root, "End-to-end latency by percentile", (1f64..x_max).log_scale(), (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency, ms")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| if *y >= 10.0 { format!("{y:.0}") } else { format!("{y}") })
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    let lines = outcomes
        .iter()
        .zip(curves)
        .enumerate()
        .map(|(i, (o, points))| (o.mode.name().to_owned(), colour(i).stroke_width(2), points));
    lines_with_legend(&mut chart, lines, SeriesLabelPosition::UpperLeft)?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// The memory plot, as an SVG document: for each daemon mode its RSS
/// (solid) and its Redis's used_memory (thin), MiB over seconds since the
/// first event was produced.
pub fn memory(outcomes: &[Outcome]) -> anyhow::Result<String> {
    let mut svg = String::new();
    draw_memory(&mut svg, outcomes)?;
    Ok(svg)
}

fn draw_memory(svg: &mut String, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let kinds: [(&str, sample::Field, u32); 2] = [("RSS", |s| s.rss, 2), ("Redis used_memory", |s| s.redis, 1)];
    let mut lines = Vec::new();
    for (i, o) in outcomes.iter().enumerate().filter(|(_, o)| o.samples.iter().any(|s| s.rss.is_some())) {
        for (kind, value, width) in kinds {
            let points: Vec<(f64, f64)> = sample::series(&o.samples, o.produced.first_us, value)
                .into_iter()
                .map(|(t, v)| (t, v as f64 / (1 << 20) as f64))
                .collect();
            if !points.is_empty() {
                lines.push((format!("{} {kind}", o.mode.name()), colour(i).stroke_width(width), points));
            }
        }
    }
    let points = || lines.iter().flat_map(|(_, _, p)| p.iter());
    let x_min = points().map(|p| p.0).fold(0.0, f64::min);
    let x_max = points().map(|p| p.0).fold(1.0, f64::max);
    // Headroom for the legend, above the lines.
    let y_max = points().map(|p| p.1).fold(1.0, f64::max) * 1.4;
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    let mut chart =
        chart(&root, &format!("Memory, sampled every {} s", sample::EVERY.as_secs()), x_min..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first event was produced")
        .y_desc("MiB")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    lines_with_legend(&mut chart, lines, SeriesLabelPosition::UpperLeft)?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// A chart of the report on an SVG document, over `X` and `Y` ranges.
type Chart<'a, 'b, X, Y> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>,
>;

/// `root` filled white, and on it a chart with the report's caption size,
/// margin and label areas over `x` and `y`.
fn chart<'a, 'b, X: AsRangedCoord, Y: AsRangedCoord>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    x: X,
    y: Y,
) -> anyhow::Result<Chart<'a, 'b, X, Y>> {
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(|e| anyhow!("{e}"))
}

/// Draws each (label, style, points) as a line and a legend with their
/// labels at `position`.
fn lines_with_legend<'a, 'b: 'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
    lines: impl IntoIterator<Item = (String, ShapeStyle, Vec<(f64, f64)>)>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (label, style, points) in lines {
        chart
            .draw_series(LineSeries::new(points, style))
            .map_err(|e| anyhow!("{e}"))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// 1 -> "0%", 2 -> "50%", 10 -> "90%", 1000 -> "99.9%".
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    let text = format!("{p:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
    }
}
