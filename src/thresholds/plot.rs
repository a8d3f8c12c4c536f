//! `thresholds --plot PATH`: the LTV distribution on a log axis, a line per tier threshold and the cumulative share of revenue, as SVG or PNG (by extension).

use std::path::Path;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::policy::Policy;

/// DejaVu Sans Mono (see `font/LICENSE-DejaVu`), compiled in: PNG text needs a font and the
/// machine running the CLI may have none.
const FONT: &[u8] = include_bytes!("font/DejaVuSansMono.ttf");
const SIZE: (u32, u32) = (1200, 700);
const BINS: usize = 48;

/// Writes the picture; the format follows the extension (`.svg` or `.png`).
pub fn write(path: &Path, ltvs_sorted: &[Decimal], policy: &Policy) -> anyhow::Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    // Registering twice is harmless; an error means the bundled font is broken.
    register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow::anyhow!("the bundled plot font cannot be read"))?;
    let data = Bins::new(ltvs_sorted);
    let result = match ext.as_deref() {
        Some("svg") => draw(
            SVGBackend::new(path, SIZE).into_drawing_area(),
            &data,
            policy,
        ),
        Some("png") => draw(
            BitMapBackend::new(path, SIZE).into_drawing_area(),
            &data,
            policy,
        ),
        _ => anyhow::bail!(
            "--plot {}: the file name must end in .svg or .png",
            path.display()
        ),
    };
    result.with_context(|| format!("--plot {}: cannot write the picture", path.display()))
}

/// Customers per log-spaced LTV bin, and the share of revenue from customers at or above each
/// bin's lower edge.
struct Bins {
    lo: f64,
    hi: f64,
    /// (lower edge, upper edge, customers)
    counts: Vec<(f64, f64, u64)>,
    /// (LTV, % of revenue from customers with at least this LTV)
    revenue_from: Vec<(f64, f64)>,
    customers: usize,
}

impl Bins {
    fn new(sorted: &[Decimal]) -> Bins {
        // A log axis has no 0: customers below 1 are drawn at 1.
        let value = |d: &Decimal| d.to_f64().unwrap_or(0.0).max(1.0);
        let lo = 1.0_f64;
        let hi = sorted.last().map(value).unwrap_or(10.0).max(10.0) * 1.05;
        let step = (hi.ln() - lo.ln()) / BINS as f64;
        let edge = |i: usize| (lo.ln() + step * i as f64).exp();
        let mut counts: Vec<(f64, f64, u64)> =
            (0..BINS).map(|i| (edge(i), edge(i + 1), 0)).collect();
        for d in sorted {
            let i = (((value(d).ln() - lo.ln()) / step) as usize).min(BINS - 1);
            counts[i].2 += 1;
        }
        let total: f64 = sorted
            .iter()
            .map(|d| d.to_f64().unwrap_or(0.0).max(0.0))
            .sum();
        let mut revenue_from = Vec::with_capacity(BINS + 1);
        let mut above = total;
        let mut next = 0;
        for i in 0..=BINS {
            let x = edge(i);
            while next < sorted.len() && value(&sorted[next]) < x {
                above -= sorted[next].to_f64().unwrap_or(0.0).max(0.0);
                next += 1;
            }
            let share = if total > 0.0 {
                100.0 * above / total
            } else {
                0.0
            };
            revenue_from.push((x.min(hi), share.max(0.0)));
        }
        Bins {
            lo,
            hi,
            counts,
            revenue_from,
            customers: sorted.len(),
        }
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    data: &Bins,
    policy: &Policy,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("{e}");
    root.fill(&WHITE).map_err(fail)?;
    let max_count = data.counts.iter().map(|c| c.2).max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Customers by lifetime value ({} customers) and share of revenue",
                data.customers
            ),
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .right_y_label_area_size(80)
        .build_cartesian_2d((data.lo..data.hi).log_scale(), 0.0..max_count)
        .map_err(fail)?
        .set_secondary_coord((data.lo..data.hi).log_scale(), 0.0..100.0);
    chart
        .configure_mesh()
        .x_desc("lifetime value (net of refunds), log scale; below 1 drawn at 1")
        .y_desc("customers per LTV band (bars)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(fail)?;
    chart
        .configure_secondary_axes()
        .y_desc("% of revenue from customers at or above this LTV (line)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(fail)?;
    let bar = RGBColor(120, 160, 210);
    chart
        .draw_series(
            data.counts
                .iter()
                .map(|&(a, b, n)| Rectangle::new([(a, 0.0), (b, n as f64)], bar.mix(0.8).filled())),
        )
        .map_err(fail)?
        .label("customers per LTV band")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], bar.filled()));
    let revenue = RGBColor(200, 80, 30);
    chart
        .draw_secondary_series(LineSeries::new(
            data.revenue_from.iter().copied(),
            revenue.stroke_width(3),
        ))
        .map_err(fail)?
        .label("% of revenue from customers at or above this LTV")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], revenue.stroke_width(3)));
    let tier_colour = RGBColor(40, 130, 60);
    for t in policy.tiers() {
        let x = t.min_ltv.to_f64().unwrap_or(0.0).max(data.lo);
        if x > data.hi {
            continue;
        }
        chart
            .draw_secondary_series(LineSeries::new(
                [(x, 0.0), (x, 100.0)],
                tier_colour.stroke_width(2),
            ))
            .map_err(fail)?;
        chart
            .draw_secondary_series(std::iter::once(Text::new(
                format!("{} ≥ {}", t.tag, t.min_ltv),
                (x * 1.03, 96.0),
                ("sans-serif", 16).into_font().color(&tier_colour),
            )))
            .map_err(fail)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(fail)?;
    root.present().map_err(fail)?;
    Ok(())
}
