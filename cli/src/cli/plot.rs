//! `forklog plot`: line charts of runs drawn from their exact downsampled history ([`forklog::Store::sample`])
//! with plotters, as SVG or PNG.
//!
//! One panel per key, stacked. Each run is one line through the M4 points of its buckets (per bucket, the
//! distinct points among first, min, max and last, in step order), over a lighter min/max band when a bucket
//! holds more than one row. A run forked from another plotted run is marked on the parent's curve at the fork
//! step (a circle) and labelled with the child's id. The legend names each run `id@vK`.
//!
//! Text is set in DejaVu Sans, compiled into the binary (the `dejavu` crate), or in the TrueType font that
//! `FORKLOG_FONT` names.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use forklog::{RunInfo, Sample, Series, Store};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{open_existing, CliError, EXIT_OK};

/// Arguments of `forklog plot`.
#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// Runs to draw (RUN or ID@vK).
    #[arg(required = true)]
    pub runs: Vec<String>,
    /// Metrics to draw, one panel each (comma-separated). Default: every numeric metric of the runs.
    #[arg(long, value_name = "K1,K2", value_delimiter = ',')]
    pub keys: Option<Vec<String>>,
    /// Draw each run and all its descendants (the fork tree of a sweep).
    #[arg(long)]
    pub tree: bool,
    /// Buckets per run (points along the step axis; at most 4 drawn per bucket).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub buckets: u32,
    /// Output file: .svg or .png.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Picture width in pixels.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(100..=16384))]
    pub width: u32,
    /// Picture height in pixels (default: 300 per panel).
    #[arg(long, value_parser = clap::value_parser!(u32).range(100..=16384))]
    pub height: Option<u32>,
}

/// The registered font's family name: `FORKLOG_FONT` (a .ttf file) when set and readable, else DejaVu Sans
/// compiled into the binary (so a picture has the same text on every machine). `None` only if plotters
/// refuses both.
fn font() -> Option<&'static str> {
    static FONT: OnceLock<Option<&'static str>> = OnceLock::new();
    *FONT.get_or_init(|| {
        if let Some(p) = std::env::var_os("FORKLOG_FONT").map(PathBuf::from) {
            match std::fs::read(&p) {
                Ok(bytes) => {
                    // The font lives as long as the process (plotters keeps a 'static reference).
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                        return Some("sans-serif");
                    }
                    eprintln!("note: FORKLOG_FONT {} is not a usable font: using DejaVu Sans", p.display());
                }
                Err(e) => eprintln!("note: FORKLOG_FONT {}: {e}: using DejaVu Sans", p.display()),
            }
        }
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
            .then_some("sans-serif")
    })
}

/// One run to draw.
struct Curve {
    info: RunInfo,
    label: String,
    sample: Sample,
}

/// The points a line through series `s` passes: per bucket, first, min, max and last in step order, each
/// step once.
pub fn line_points(s: &Series) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for b in &s.buckets {
        let mut pts = [b.first, b.min, b.max, b.last];
        pts.sort_by_key(|p| p.step);
        let mut prev = None;
        for p in pts {
            if prev != Some(p.step) {
                out.push((p.step as f64, p.value));
                prev = Some(p.step);
            }
        }
    }
    out
}

/// The runs to draw: the given ones, and with `tree` all their descendants (parents before children).
fn collect_runs(store: &Store, runs: &[String], tree: bool) -> Result<Vec<RunInfo>, CliError> {
    let mut out: Vec<RunInfo> = Vec::new();
    let mut queue: VecDeque<RunInfo> = VecDeque::new();
    for r in runs {
        queue.push_back(store.info(r)?);
    }
    while let Some(info) = queue.pop_front() {
        if out.iter().any(|o| o.id == info.id && o.version == info.version) {
            continue;
        }
        if tree {
            for c in store.children(&format!("{}@v{}", info.id, info.version))? {
                queue.push_back(c);
            }
        }
        out.push(info);
    }
    Ok(out)
}

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

/// `forklog plot`.
pub fn plot(dir: &Path, args: PlotArgs) -> Result<u8, CliError> {
    let store = open_existing(dir)?;
    let keys: Vec<String> = args.keys.clone().unwrap_or_default();
    picture(&store, &args.runs, &keys, args.tree, args.buckets, &args.out, args.width, args.height)?;
    Ok(EXIT_OK)
}

/// Draws `runs` (and with `tree` their descendants) into `out` (.svg or .png): what `forklog plot` and the
/// demo do. `keys` empty means every numeric metric; `height` defaults to 300 pixels per panel.
#[allow(clippy::too_many_arguments)]
pub fn picture(
    store: &Store,
    runs: &[String],
    keys: &[String],
    tree: bool,
    buckets: u32,
    out: &Path,
    width: u32,
    height: Option<u32>,
) -> Result<(), CliError> {
    let ext = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let png = match ext.as_deref() {
        Some("svg") => false,
        Some("png") => true,
        _ => return Err(CliError::new(format!("--out {}: the file must end in .svg or .png", out.display()))),
    };
    let infos = collect_runs(store, runs, tree)?;
    let keys: Vec<String> = keys.iter().filter(|k| !k.is_empty()).cloned().collect();
    let mut curves = Vec::new();
    for info in infos {
        let label = format!("{}@v{}", info.id, info.version);
        let sample = store.sample(&label, &keys, buckets, None, None)?;
        curves.push(Curve { info, label, sample });
    }
    let keys: Vec<String> = if keys.is_empty() {
        let all: BTreeSet<String> =
            curves.iter().flat_map(|c| c.sample.series.iter().map(|s| s.key.to_string())).collect();
        all.into_iter().collect()
    } else {
        let mut dedup = Vec::new();
        for k in keys {
            if !dedup.contains(&k) {
                dedup.push(k);
            }
        }
        dedup
    };
    if keys.is_empty() {
        return Err(CliError::new("nothing to plot: the runs have no numeric metrics"));
    }
    let height = height.unwrap_or_else(|| (300 * keys.len() as u32).clamp(100, 16384));
    let font = font();
    if font.is_none() {
        eprintln!("note: no usable font: drawing without text");
    }
    let drawn = if png {
        let root = BitMapBackend::new(out, (width, height)).into_drawing_area();
        draw(store, &root, &curves, &keys, font).and_then(|()| root.present().map_err(Into::into))
    } else {
        let root = SVGBackend::new(out, (width, height)).into_drawing_area();
        draw(store, &root, &curves, &keys, font).and_then(|()| root.present().map_err(Into::into))
    };
    drawn.map_err(|e| CliError::new(format!("drawing {}: {e}", out.display())))
}

/// Draws every panel on `root`.
fn draw<DB: DrawingBackend>(
    store: &Store,
    root: &DrawingArea<DB, Shift>,
    curves: &[Curve],
    keys: &[String],
    font: Option<&'static str>,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let panels = root.split_evenly((keys.len(), 1));
    for (panel, key) in panels.iter().zip(keys) {
        draw_panel(store, panel, curves, key, font)?;
    }
    Ok(())
}

/// Where run `c` was forked from a plotted run: (parent index, fork step).
fn fork_of(c: &Curve, curves: &[Curve]) -> Option<(usize, u64)> {
    let p = c.info.parent.as_ref()?;
    let step = c.info.fork_step?;
    let i = curves.iter().position(|q| q.info.id == p.id && p.version.is_none_or(|v| v == q.info.version))?;
    Some((i, step))
}

fn draw_panel<DB: DrawingBackend>(
    store: &Store,
    panel: &DrawingArea<DB, Shift>,
    curves: &[Curve],
    key: &str,
    font: Option<&'static str>,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    // Axis ranges over every run's points of this key.
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for c in curves {
        if let Some(s) = c.sample.series(key) {
            for b in &s.buckets {
                x0 = x0.min(b.first.step as f64);
                x1 = x1.max(b.last.step as f64);
                for v in [b.min.value, b.max.value, b.first.value, b.last.value] {
                    if v.is_finite() {
                        y0 = y0.min(v);
                        y1 = y1.max(v);
                    }
                }
            }
        }
    }
    if !(x0.is_finite() && y0.is_finite()) {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        (y0, y1) = (y0 - 0.5, y1 + 0.5);
    }
    let pad = (y1 - y0) * 0.05;
    let mut builder = ChartBuilder::on(panel);
    builder.margin(10);
    if let Some(f) = font {
        builder.caption(key, (f, 18)).x_label_area_size(30).y_label_area_size(60);
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
    let mut mesh = chart.configure_mesh();
    mesh.disable_mesh();
    if let Some(f) = font {
        mesh.x_desc("step").label_style((f, 12)).x_label_formatter(&|x| format!("{x:.0}"));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    for (i, c) in curves.iter().enumerate() {
        let Some(s) = c.sample.series(key) else { continue };
        if s.buckets.is_empty() {
            continue;
        }
        let color = Palette99::pick(i).to_rgba();
        if s.buckets.iter().any(|b| b.count > 1) {
            let mut band: Vec<(f64, f64)> = Vec::new();
            for b in &s.buckets {
                band.push((b.first.step as f64, b.max.value));
                band.push((b.last.step as f64, b.max.value));
            }
            for b in s.buckets.iter().rev() {
                band.push((b.last.step as f64, b.min.value));
                band.push((b.first.step as f64, b.min.value));
            }
            band.retain(|p| p.1.is_finite());
            chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.18).filled())))?;
        }
        let pts: Vec<(f64, f64)> = line_points(s).into_iter().filter(|p| p.1.is_finite()).collect();
        let series = chart.draw_series(LineSeries::new(pts, color.stroke_width(2)))?;
        if font.is_some() {
            series
                .label(c.label.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 3), (x + 14, y + 3)], color.filled()));
        }
    }
    // Fork points on the parents' curves.
    for c in curves {
        let Some((pi, step)) = fork_of(c, curves) else { continue };
        let parent = &curves[pi];
        let s = store.sample(&parent.label, &[key], 1, None, Some(step))?;
        let Some(b) = s.series.first().and_then(|x| x.buckets.last()) else { continue };
        if !b.last.value.is_finite() {
            continue;
        }
        let at = (b.last.step as f64, b.last.value);
        chart.draw_series(std::iter::once(Circle::new(at, 5, BLACK.stroke_width(2))))?;
        if let Some(f) = font {
            chart.draw_series(std::iter::once(Text::new(c.info.id.clone(), at, (f, 12))))?;
        }
    }
    if font.is_some() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}
