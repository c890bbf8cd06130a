//! The throughput plot: median Mpps per device, grouped by frame size, as
//! an SVG (plotters, SVG backend only: no fonts or bitmaps needed).
//!
//! Each bar is labelled with its Mpps and, where the reference devices were
//! measured, its ratio to xswitch ("×") and its share of the kernel XDP
//! limit ("%").

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::dut::DutKind;
use super::report::BenchReport;

const COLORS: [RGBColor; 6] = [
    RGBColor(150, 150, 150), // direct
    RGBColor(90, 90, 200),   // xdp-redirect
    RGBColor(230, 150, 40),  // linux-bridge
    RGBColor(60, 160, 90),   // ovs-afxdp
    RGBColor(160, 200, 120), // ovs-system
    RGBColor(200, 40, 60),   // xswitch
];

fn color(k: DutKind) -> RGBColor {
    let i = DutKind::ALL.iter().position(|&x| x == k).unwrap_or(0);
    COLORS[i]
}

/// Writes the plot of `rep.summary` to `path` (SVG).
pub fn write_svg(rep: &BenchReport, path: &Path) -> Result<(), String> {
    draw(rep, path).map_err(|e| format!("plot {}: {e}", path.display()))
}

fn draw(rep: &BenchReport, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut sizes: Vec<usize> = rep.summary.iter().map(|s| s.frame_size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut duts: Vec<DutKind> = rep.summary.iter().map(|s| s.dut).collect();
    duts.sort_unstable();
    duts.dedup();
    if sizes.is_empty() || duts.is_empty() {
        return Err("nothing measured".into());
    }
    // One slot per bar plus a gap slot after every frame-size group.
    let per_group = duts.len() + 1;
    let slots = sizes.len() * per_group;
    let ymax = rep
        .summary
        .iter()
        .map(|s| s.mpps)
        .fold(0.0, f64::max)
        .max(0.1)
        * 1.25;
    let width = (140 + slots * 62).max(700) as u32;
    let root = SVGBackend::new(path, (width, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let flows = rep.summary.first().map_or(1, |s| s.flows);
    let caption = format!(
        "xswitch bench {} — Mpps at the sink ({} sink, {} flow{}), Linux {}",
        rep.machine.date,
        rep.sink,
        flows,
        if flows == 1 { "" } else { "s" },
        rep.machine.kernel
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((0..slots).into_segmented(), 0.0..ymax)?;
    let label_sizes = sizes.clone();
    let dut_count = duts.len();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_labels(slots + 1)
        .x_label_formatter(&move |v| match v {
            SegmentValue::CenterOf(j) if j % per_group == dut_count / 2 => label_sizes
                .get(j / per_group)
                .map_or(String::new(), |s| format!("{s}-byte frames")),
            _ => String::new(),
        })
        .y_desc("Mpps (median)")
        .draw()?;
    let label_style =
        TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (k, &dut) in duts.iter().enumerate() {
        let c = color(dut);
        let bars: Vec<(usize, f64)> = sizes
            .iter()
            .enumerate()
            .filter_map(|(g, &size)| {
                rep.summary
                    .iter()
                    .find(|s| s.dut == dut && s.frame_size == size)
                    .map(|s| (g * per_group + k, s.mpps))
            })
            .collect();
        chart
            .draw_series(bars.iter().map(|&(j, mpps)| {
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(j), 0.0),
                        (SegmentValue::Exact(j + 1), mpps),
                    ],
                    c.filled(),
                );
                r.set_margin(0, 0, 3, 3);
                r
            }))?
            .label(dut.name())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        for (g, &size) in sizes.iter().enumerate() {
            let Some(s) = rep
                .summary
                .iter()
                .find(|s| s.dut == dut && s.frame_size == size)
            else {
                continue;
            };
            let j = g * per_group + k;
            let mut lines = vec![format!("{:.2}", s.mpps)];
            // The calibration row (no device at all) has no ratio worth
            // printing; the references do not get one to themselves.
            let ratios = dut != DutKind::Direct;
            if let Some(r) = s
                .ratio_to_xswitch
                .filter(|_| ratios && dut != DutKind::Xswitch)
            {
                lines.push(format!("×{r:.2}"));
            }
            if let Some(r) = s
                .ratio_to_xdp_limit
                .filter(|_| ratios && dut != DutKind::XdpRedirect)
            {
                lines.push(format!("{:.0}%XDP", r * 100.0));
            }
            // Stacked upwards from the top of the bar.
            for (i, text) in lines.iter().rev().enumerate() {
                let y = s.mpps + ymax * (0.012 + 0.035 * i as f64);
                chart.draw_series(std::iter::once(Text::new(
                    text.clone(),
                    (SegmentValue::CenterOf(j), y),
                    label_style.clone(),
                )))?;
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
