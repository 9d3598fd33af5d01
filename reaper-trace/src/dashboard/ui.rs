//! Drawing one frame from the [`View`] and the [`App`] state. Pure: renders into any ratatui
//! backend (the tests use `TestBackend`). Every process name goes through
//! [`escape_control`]: names are chosen by whoever runs the process.

use std::borrow::Cow;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Bar, BarChart, BarGroup, Block, Cell, Clear, Paragraph, Row, Table, Wrap};

use super::app::{App, Mode, Panel};
use super::keys::{self, KEYMAP};
use super::tree::{Content, TreePanel};
use crate::escape::escape_control;
use crate::event::{Proc, ReaperKind, Verdict};
use crate::tree::render as tree_render;
use crate::view::{HIST_BUCKETS, HIST_LABELS, NS_PER_SEC, ROOT_PIDNS, Tracked, View};

fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

fn warn() -> Style {
    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
}

fn alarm() -> Style {
    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
}

/// A duration, compact: `850ns`, `12µs`, `3.4ms`, `1.2s`, `45s`, `2m03s`, `1h02m`.
pub fn fmt_duration(ns: u64) -> String {
    let f = ns as f64;
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..10_000 => format!("{:.1}µs", f / 1e3),
        10_000..1_000_000 => format!("{:.0}µs", f / 1e3),
        1_000_000..10_000_000 => format!("{:.1}ms", f / 1e6),
        10_000_000..1_000_000_000 => format!("{:.0}ms", f / 1e6),
        1_000_000_000..10_000_000_000 => format!("{:.1}s", f / 1e9),
        _ => fmt_age(ns),
    }
}

/// An age in whole units, so it changes at most once a second: `340ms`, `12s`, `2m03s`.
pub fn fmt_age(ns: u64) -> String {
    let s = ns / NS_PER_SEC;
    match s {
        0 => format!("{}ms", ns / 1_000_000),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// A count, compact: `9999`, `12.3k`, `4.5M`.
pub fn fmt_count(n: u64) -> String {
    match n {
        0..10_000 => n.to_string(),
        10_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// A pid namespace: `root` for the initial one, else its inode number.
pub fn fmt_pidns(ns: u32) -> Cow<'static, str> {
    match ns {
        ROOT_PIDNS => "root".into(),
        0 => "?".into(),
        n => n.to_string().into(),
    }
}

/// `PID NAME`, the name escaped.
pub fn proc_label(p: &Proc) -> String {
    let comm = if p.comm.is_empty() {
        Cow::Borrowed("?")
    } else {
        escape_control(&p.comm)
    };
    format!("{} {comm}", p.pid)
}

/// A reaper: `PID NAME`, or `PID/TID NAME` when the thread that adopts or waits is not the
/// main one (a hand-off between threads otherwise reads like a process adopting from itself).
pub fn reaper_label(p: &Proc) -> String {
    if p.tid != p.pid && p.tid != 0 {
        let comm = if p.comm.is_empty() {
            Cow::Borrowed("?")
        } else {
            escape_control(&p.comm)
        };
        format!("{}/{} {comm}", p.pid, p.tid)
    } else {
        proc_label(p)
    }
}

/// A pid namespace's container, escaped (names come from the runtimes' files).
fn container_cell(view: &View, pidns: u32) -> String {
    escape_control(&view.container_label(pidns)).into_owned()
}

fn comm(p: &Proc) -> String {
    escape_control(&p.comm).into_owned()
}

fn kind_style(k: Option<ReaperKind>) -> Style {
    match k {
        Some(ReaperKind::Unexpected) => alarm(),
        Some(ReaperKind::Thread) => Style::new().fg(Color::Cyan),
        Some(ReaperKind::Subreaper) => Style::new().fg(Color::Green),
        Some(ReaperKind::Init) => Style::new().fg(Color::Yellow),
        None => dim(),
    }
}

pub fn draw(f: &mut Frame, view: &View, app: &App) {
    let area = f.area();
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(f, header, view, app);
    draw_footer(f, footer, app);
    if let Some(tree) = &app.tree {
        draw_tree(f, body, view, tree);
    } else if app.zoom {
        draw_panel(f, body, app.focus, view, app);
    } else {
        let hist_h = (body.height / 4).clamp(6, 12);
        let [top, middle, bottom] = Layout::vertical([
            Constraint::Fill(3),
            Constraint::Fill(4),
            Constraint::Length(hist_h),
        ])
        .areas(body);
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)])
                .areas(middle);
        draw_panel(f, top, Panel::Adoptions, view, app);
        draw_panel(f, left, Panel::Zombies, view, app);
        draw_panel(f, right, Panel::Reapers, view, app);
        draw_panel(f, bottom, Panel::Lifetimes, view, app);
    }
    if app.help {
        draw_help(f, area);
    }
}

fn draw_header(f: &mut Frame, area: Rect, view: &View, app: &App) {
    let sep = || Span::raw("  ");
    let mut l1 = vec![];
    match &app.mode {
        Mode::Live => l1.push(Span::styled(
            " LIVE ",
            Style::new().bg(Color::Green).fg(Color::Black),
        )),
        Mode::Replay { speed, done, .. } => {
            let s = if *speed == 0.0 {
                " REPLAY ".to_string()
            } else {
                format!(" REPLAY ×{speed} ")
            };
            l1.push(Span::styled(
                s,
                Style::new().bg(Color::Blue).fg(Color::White),
            ));
            if *done {
                l1.push(Span::styled(" END ", Style::new().bg(Color::DarkGray)));
            }
        }
    }
    if app.paused {
        l1.push(Span::styled(
            " PAUSED ",
            Style::new().bg(Color::Yellow).fg(Color::Black),
        ));
    }
    l1.push(sep());
    let lost = view.lost();
    l1.push(Span::styled(
        format!("lost {}", fmt_count(lost)),
        if lost > 0 { alarm() } else { Style::new() },
    ));
    l1.push(sep());
    let mm = view.mismatches();
    l1.push(Span::styled(
        format!("mismatches {mm}"),
        if mm > 0 { alarm() } else { Style::new() },
    ));
    l1.push(sep());
    l1.push(Span::styled(
        format!("{:.0} ev/s", view.events_per_sec()),
        bold(),
    ));
    l1.push(sep());
    l1.push(Span::raw(match view.tracked() {
        Tracked::Live(n) => format!("tasks {n} (live model)"),
        Tracked::FromEvents(n) => format!("tasks {n} (from events)"),
    }));

    let over = view.zombies_over_threshold();
    let mut l2 = vec![
        Span::styled(format!("zombies {}", view.zombie_count()), bold()),
        Span::styled(
            format!(" ({over} >{})", fmt_age(view.zombie_threshold_ns)),
            if over > 0 { alarm() } else { Style::new() },
        ),
        Span::raw("  adopted by"),
    ];
    for (k, n) in view.adoptions_by_kind() {
        l2.push(Span::raw(" "));
        let style = if k == ReaperKind::Unexpected && n > 0 {
            alarm()
        } else {
            kind_style(Some(k))
        };
        l2.push(Span::styled(format!("{} {n}", k.as_str()), style));
    }
    if view.unobserved() > 0 {
        l2.push(Span::styled(
            format!(" released {}", view.unobserved()),
            dim(),
        ));
    }
    // What `doctor` would name: a namespace init or subreaper holding zombies past the
    // threshold.
    let findings = crate::doctor::diagnose(view);
    if let Some(first) = findings.first() {
        let r = &first.reaper;
        let who = match first.role {
            crate::doctor::Role::Init => format!(
                "PID 1 {} ({})",
                escape_control(&r.comm),
                container_cell(view, r.pidns)
            ),
            crate::doctor::Role::Subreaper => {
                format!("subreaper {} {}", r.pid, escape_control(&r.comm))
            }
        };
        let more = match findings.len() {
            1 => String::new(),
            n => format!(" +{}", n - 1),
        };
        l2.push(Span::styled(format!("  not reaping: {who}{more}"), alarm()));
    }

    let filter = &app.query.filter;
    let mut l3 = vec![];
    match &app.mode {
        Mode::Live => l3.push(Span::raw("system-wide")),
        Mode::Replay {
            file,
            speed,
            position_ns,
            total_ns,
            cut_line,
            ..
        } => {
            let speed = if *speed == 0.0 {
                "max speed".to_string()
            } else {
                format!("×{speed}")
            };
            l3.push(Span::raw(format!("{} ", escape_control(file))));
            if let Some(n) = cut_line {
                // Next to the file name, where a narrow screen still shows it.
                l3.push(Span::styled(
                    format!("(last line {n} cut, not replayed) "),
                    warn(),
                ));
            }
            l3.push(Span::raw(format!(
                "{speed} {}/{}",
                fmt_duration(*position_ns),
                fmt_duration(*total_ns)
            )));
        }
    }
    l3.push(Span::raw(format!("  {} events", fmt_count(view.events()))));
    l3.push(Span::raw("  filter: "));
    if filter.is_empty() {
        l3.push(Span::raw("none"));
    } else {
        let mut parts = vec![];
        if let Some(ns) = filter.pidns {
            parts.push(format!("container {}", container_cell(view, ns)));
        }
        if let Some(c) = &filter.container {
            parts.push(format!("container {}", escape_control(c)));
        }
        if let Some(n) = &filter.name {
            parts.push(format!("name \"{}\"", escape_control(n)));
        }
        l3.push(Span::styled(
            parts.join(" "),
            Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD),
        ));
    }
    let lines = vec![
        Line::from(l1),
        Line::from(l2),
        Line::from(l3).style(Style::new().fg(Color::Gray)),
    ];
    f.render_widget(Paragraph::new(lines), area);
}

fn draw_footer(f: &mut Frame, area: Rect, app: &App) {
    let error = match &app.mode {
        Mode::Replay { error, .. } => error.as_deref(),
        Mode::Live => None,
    };
    let line = match (&app.prompt, error) {
        (Some(text), _) => Line::from(vec![
            Span::styled("filter by name or pid: ", bold()),
            Span::raw(escape_control(text).into_owned()),
            Span::styled("_", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled("   Enter apply  Esc cancel", dim()),
        ]),
        // Playing stopped on it: what to do is in it; top exits with it.
        (None, Some(e)) => Line::styled(format!("{}  (q quits)", escape_control(e)), alarm()),
        (None, None) => Line::styled(
            keys::footer_line(),
            Style::new().fg(Color::Black).bg(Color::Gray),
        ),
    };
    f.render_widget(Paragraph::new(line), area);
}

fn panel_block(panel: Panel, app: &App, detail: String) -> Block<'static> {
    let focused = app.focus == panel;
    let style = if focused {
        Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    Block::bordered().border_style(style).title(Line::from(vec![
        Span::styled(
            format!(" {} ", panel.title()),
            style.add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("{detail} ")),
    ]))
}

fn draw_panel(f: &mut Frame, area: Rect, panel: Panel, view: &View, app: &App) {
    match panel {
        Panel::Adoptions => draw_adoptions(f, area, view, app),
        Panel::Zombies => draw_zombies(f, area, view, app),
        Panel::Reapers => draw_reapers(f, area, view, app),
        Panel::Lifetimes => draw_lifetimes(f, area, view, app),
    }
}

/// Rows of a table panel: a header, the visible window of rows (the selected one
/// highlighted), a note when there are none.
#[allow(
    clippy::too_many_arguments,
    reason = "the four panels differ in each of them; a struct would only name them again"
)]
fn render_table(
    f: &mut Frame,
    area: Rect,
    block: Block<'static>,
    header: Vec<&'static str>,
    widths: Vec<Constraint>,
    rows: Vec<Row<'static>>,
    highlight: Option<usize>,
    empty: &str,
) {
    if rows.is_empty() {
        f.render_widget(
            Paragraph::new(Line::styled(format!(" {empty}"), dim())).block(block),
            area,
        );
        return;
    }
    let rows: Vec<Row> = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            if Some(i) == highlight {
                r.style(Style::new().add_modifier(Modifier::REVERSED))
            } else {
                r
            }
        })
        .collect();
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(bold().fg(Color::Gray)))
        .column_spacing(1)
        .block(block);
    f.render_widget(table, area);
}

/// The rows of `all` that fit under the header, the selected one among them; with the first
/// one's index, how many there are, and (in the focused panel) which one shown is selected.
fn window<T>(
    all: Vec<T>,
    app: &App,
    panel: Panel,
    area: Rect,
) -> (Vec<T>, usize, usize, Option<usize>) {
    let visible = area.height.saturating_sub(3) as usize; // borders and the header row
    let total = all.len();
    let selected = app.selected_row(panel, total);
    let first = App::first_row(selected, visible);
    let highlight = selected
        .filter(|_| app.focus == panel && app.tree.is_none())
        .map(|s| s - first);
    (
        all.into_iter().skip(first).take(visible).collect(),
        first,
        total,
        highlight,
    )
}

fn position(first: usize, shown: usize, total: usize) -> String {
    if shown < total {
        format!(" {}-{} of {total}", first + 1, first + shown)
    } else {
        format!(" {total}")
    }
}

fn draw_adoptions(f: &mut Frame, area: Rect, view: &View, app: &App) {
    let wide = area.width >= 110;
    let now = view.now();
    let all = view.adoptions(&app.query);
    let (rows, first, total, highlight) = window(all, app, Panel::Adoptions, area);
    let shown = rows.len();
    let ns_w = rows
        .iter()
        .map(|a| container_cell(view, a.orphan.pidns).chars().count())
        .max()
        .unwrap_or(0)
        .max(9) as u16;
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|a| {
            let predicted = match (a.verdict, &a.predicted) {
                (Verdict::Match, _) => Cell::from("= match").style(Style::new().fg(Color::Green)),
                (Verdict::Mismatch, Some(p)) => {
                    Cell::from(format!("≠ {} {}", p.pid, p.kind.as_str())).style(alarm())
                }
                (Verdict::Mismatch, None) => Cell::from("≠").style(alarm()),
                (Verdict::Unknown, _) => Cell::from("? unknown").style(dim()),
                (Verdict::Unobserved, _) => Cell::from("released").style(dim()),
                // The state changed between the snapshot and the kernel's choice: not a
                // finding, but not the prediction either.
                (Verdict::Changed, _) => Cell::from("~ changed").style(dim()),
            };
            let reaper = match &a.reaper {
                Some(r) => Cell::from(reaper_label(r)),
                None => Cell::from("-").style(dim()),
            };
            let mut cells = vec![];
            if wide {
                cells.push(Cell::from(fmt_age(now.saturating_sub(a.ts))));
            }
            let mut orphan = proc_label(&a.orphan);
            if a.zombie {
                orphan.push_str(" (Z)");
            }
            cells.extend([
                Cell::from(orphan),
                Cell::from(proc_label(&a.father)),
                reaper,
                Cell::from(a.kind.map_or("-", ReaperKind::as_str)).style(kind_style(a.kind)),
                predicted,
                Cell::from(container_cell(view, a.orphan.pidns)),
            ]);
            let row = Row::new(cells);
            if a.is_finding() {
                row.style(alarm())
            } else {
                row
            }
        })
        .collect();
    let mut header = vec![];
    let mut widths = vec![];
    if wide {
        header.push("AGO");
        widths.push(Constraint::Length(6));
    }
    header.extend([
        "ORPHAN",
        "DEAD PARENT",
        "REAPER",
        "KIND",
        "PREDICTED",
        "CONTAINER",
    ]);
    widths.extend([
        Constraint::Fill(1),
        Constraint::Fill(1),
        Constraint::Fill(1),
        Constraint::Length(10),
        Constraint::Length(if wide { 16 } else { 9 }),
        Constraint::Length(ns_w),
    ]);
    let detail = format!(
        "{} · {}",
        position(first, shown, total),
        app.query.adoptions.name()
    );
    let block = panel_block(Panel::Adoptions, app, detail);
    render_table(
        f,
        area,
        block,
        header,
        widths,
        rows,
        highlight,
        "no adoption yet",
    );
}

fn draw_zombies(f: &mut Frame, area: Rect, view: &View, app: &App) {
    let wide = area.width >= 70;
    let now = view.now();
    let all = view.zombies(&app.query);
    let (rows, first, total, highlight) = window(all, app, Panel::Zombies, area);
    let shown = rows.len();
    let pid_w = rows
        .iter()
        .map(|z| z.task.pid.to_string().len())
        .max()
        .unwrap_or(3)
        .max(3) as u16;
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|z| {
            let over = view.over_threshold(z);
            let mut age = fmt_age(z.age(now));
            if !z.since_known {
                age.insert(0, '≥');
            }
            if over {
                age.insert(0, '!');
            }
            let reaper = z.reaper.as_ref().map_or("?".to_string(), reaper_label);
            let mut cells = vec![
                Cell::from(z.task.pid.to_string()),
                Cell::from(comm(&z.task)),
                Cell::from(age),
                Cell::from(reaper),
            ];
            if wide {
                cells.push(Cell::from(container_cell(view, z.task.pidns)));
            }
            let row = Row::new(cells);
            if over { row.style(alarm()) } else { row }
        })
        .collect();
    let mut header = vec!["PID", "COMM", "AGE", "WAITS FOR"];
    let mut widths = vec![
        Constraint::Length(pid_w),
        Constraint::Fill(2),
        Constraint::Length(7),
        Constraint::Fill(3),
    ];
    if wide {
        header.push("CONTAINER");
        widths.push(Constraint::Length(10));
    }
    let detail = format!(
        "{} · {} · red >{}",
        position(first, shown, total),
        app.query.zombies.name(),
        fmt_age(view.zombie_threshold_ns)
    );
    let block = panel_block(Panel::Zombies, app, detail);
    render_table(f, area, block, header, widths, rows, highlight, "no zombie");
}

fn draw_reapers(f: &mut Frame, area: Rect, view: &View, app: &App) {
    let wide = area.width >= 70;
    let narrow = area.width < 52;
    let all = view.reapers(&app.query);
    let (rows, first, total, highlight) = window(all, app, Panel::Reapers, area);
    let shown = rows.len();
    let pid_w = rows
        .iter()
        .map(|r| r.proc.pid.to_string().len())
        .max()
        .unwrap_or(3)
        .max(3) as u16;
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|r| {
            let (p50, p99) = match r.lifetimes {
                Some(l) => (fmt_duration(l.median), fmt_duration(l.p99)),
                None => ("-".into(), "-".into()),
            };
            let mut cells = vec![
                Cell::from(r.proc.pid.to_string()),
                Cell::from(comm(r.proc)),
                Cell::from(fmt_count(r.adopted)),
                Cell::from(fmt_count(r.reaped)),
            ];
            if !narrow {
                cells.push(Cell::from(r.waiting.to_string()).style(if r.waiting > 0 {
                    Style::new().fg(Color::Yellow)
                } else {
                    Style::new()
                }));
            }
            cells.extend([Cell::from(p50), Cell::from(p99)]);
            if wide {
                cells.push(Cell::from(container_cell(view, r.proc.pidns)));
            }
            Row::new(cells)
        })
        .collect();
    let mut header = vec!["PID", "COMM", "ADOPT", "REAPED"];
    let mut widths = vec![
        Constraint::Length(pid_w),
        Constraint::Fill(1),
        Constraint::Length(5),
        Constraint::Length(6),
    ];
    if !narrow {
        header.push("WAIT");
        widths.push(Constraint::Length(4));
    }
    header.extend(["P50", "P99"]);
    widths.extend([Constraint::Length(5), Constraint::Length(5)]);
    if wide {
        header.push("CONTAINER");
        widths.push(Constraint::Length(10));
    }
    let detail = format!(
        "{} · by {}",
        position(first, shown, total),
        app.query.reapers.name()
    );
    let block = panel_block(Panel::Reapers, app, detail);
    render_table(
        f,
        area,
        block,
        header,
        widths,
        rows,
        highlight,
        "no adoption or reap yet",
    );
}

fn draw_lifetimes(f: &mut Frame, area: Rect, view: &View, app: &App) {
    let h = view.histogram(&app.query);
    let total = h.total();
    let mut detail = format!(" log scale · {} reaps timed", fmt_count(total));
    if !app.query.filter.is_empty() {
        detail.push_str(" (by the reapers shown)");
    }
    let block = panel_block(Panel::Lifetimes, app, detail);
    let inner = block.inner(area);
    if total == 0 {
        f.render_widget(
            Paragraph::new(Line::styled(" no zombie reaped yet", dim())).block(block),
            area,
        );
        return;
    }
    let n = HIST_BUCKETS as u16;
    let bar_width = (inner.width.saturating_sub(n - 1) / n).clamp(1, 12);
    // Bar heights on a log scale too: a bucket of 3 next to one of 30000 stays visible.
    let height = |c: u64| {
        if c == 0 {
            0
        } else {
            ((c as f64).log10() * 100.0) as u64 + 100
        }
    };
    let max = h
        .counts
        .iter()
        .map(|&c| height(c))
        .max()
        .unwrap_or(1)
        .max(1);
    let bars: Vec<Bar> = h
        .counts
        .iter()
        .zip(HIST_LABELS)
        .map(|(&c, label)| {
            Bar::default()
                .value(height(c))
                .text_value(if c == 0 { String::new() } else { fmt_count(c) })
                .label(Line::from(label))
                .style(Style::new().fg(Color::Magenta))
                .value_style(Style::new().fg(Color::Black).bg(Color::Magenta))
        })
        .collect();
    let chart = BarChart::default()
        .data(BarGroup::default().bars(&bars))
        .bar_width(bar_width)
        .bar_gap(1)
        .max(max)
        .block(block);
    f.render_widget(chart, area);
}

/// The tree panel, in place of the others: the selected process with its ancestors and its
/// subtree as `reaper-trace tree` prints them (the same lines), or why there is none.
fn draw_tree(f: &mut Frame, area: Rect, view: &View, tree: &TreePanel) {
    let who = tree.target.as_ref().map(proc_label);
    let style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let title = match &who {
        Some(w) => format!(" Process tree of {w} "),
        None => " Process tree ".into(),
    };
    let keys = "r again, t/Esc close";
    let message = |text: String, style: Style| {
        Paragraph::new(vec![
            Line::styled(text, style),
            Line::raw(""),
            Line::styled(format!("({keys})"), dim()),
        ])
        .wrap(Wrap { trim: false })
    };
    let block = Block::bordered()
        .border_style(style)
        .title(Line::styled(title, style));
    let r = match &tree.content {
        Content::Ready(r) => r,
        other => {
            let body = match other {
                Content::NoSelection => message(
                    "Nothing is selected: select a process in the Adoptions, Zombies or Reapers \
                     panel (Tab or 1-3, then the arrows), then press t."
                        .into(),
                    warn(),
                ),
                Content::NeedsLiveKernel => message(
                    "A process tree needs the live kernel: this is a recording, whose processes \
                     may be long gone. Run `reaper-trace top` (or `reaper-trace tree PID`) on \
                     the machine while they run."
                        .into(),
                    warn(),
                ),
                Content::Failed(e) => message(
                    format!(
                        "Cannot take a snapshot of the process tree: {}",
                        escape_control(e)
                    ),
                    alarm(),
                ),
                Content::Gone(m) => message(m.clone(), warn()),
                Content::Ready(_) => unreachable!(),
            };
            f.render_widget(body.block(block), area);
            return;
        }
    };
    let procs = &r.lineage.processes;
    let me = &procs[r.lineage.selected];
    let children = match me.children.len() {
        0 => "it has no children now; any it had would go to".to_string(),
        1 => "its child would go to".into(),
        n => format!("its {n} children would go to"),
    };
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!("{} {}", me.pid, escape_control(&me.comm)), bold()),
            Span::raw(format!(", if it died now: {children}")),
        ]),
        Line::styled(format!("  => {}", tree_render::orphans_to(me)), bold()),
        Line::styled(
            format!(
                "snapshot: {} tasks read in {:.1} ms, {} ago   ({keys})",
                r.tasks,
                r.read_ns as f64 / 1e6,
                fmt_age(view.now().saturating_sub(r.taken_ts)),
            ),
            dim(),
        ),
        Line::styled(tree_render::COLUMNS, bold().fg(Color::Gray)),
    ];
    // The walk up stopped short of the namespace's init: the parent is not in the snapshot
    // (the kernel hides it from the iterator, or it changed meanwhile).
    if let Some(up) = procs
        .first()
        .filter(|p| !p.ns_init)
        .and_then(|p| p.parent.as_ref())
    {
        lines.push(Line::styled(
            format!(
                "{:>7}          ({} {}: not in the snapshot)",
                up.pid,
                up.pid,
                escape_control(&up.comm)
            ),
            dim(),
        ));
    }
    let inner = block.inner(area);
    let visible = (inner.height as usize).saturating_sub(lines.len());
    let first = tree.scroll.min(procs.len().saturating_sub(visible));
    for (i, p) in procs.iter().enumerate().skip(first).take(visible) {
        let line = tree_render::process_line(p);
        lines.push(if i == r.lineage.selected {
            Line::styled(line, bold().add_modifier(Modifier::REVERSED))
        } else {
            Line::raw(line)
        });
    }
    let shown = procs.len().min(visible);
    let block = block.title(Line::styled(
        format!("{} processes ", position(first, shown, procs.len())),
        Style::new(),
    ));
    f.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_help(f: &mut Frame, area: Rect) {
    let w = area.width.min(72);
    let h = area.height.min(KEYMAP.len() as u16 + 8);
    let rect = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let mut lines: Vec<Line> = KEYMAP
        .iter()
        .map(|b| {
            Line::from(vec![
                Span::styled(format!("{:>20}  ", b.label()), bold().fg(Color::Cyan)),
                Span::raw(b.what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "Kinds: thread = a sibling thread of the dead parent; subreaper = an ancestor with \
         PR_SET_CHILD_SUBREAPER; init = the pid namespace's init; unexpected = none of these \
         (a finding). PREDICTED compares the kernel's choice with find_new_reaper's.",
        dim(),
    ));
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(Text::from(lines))
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" Help ").border_style(bold())),
        rect,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, ExitStatus, Prediction};
    use crate::view::tests::{MS, S, in_ns, p, reap, reparent, zombie};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn screen(t: &Terminal<TestBackend>) -> String {
        let buf = t.backend().buffer();
        let mut out = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                out.push_str(buf[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }

    fn render(view: &View, app: &App, w: u16, h: u16) -> (Terminal<TestBackend>, String) {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, view, app)).unwrap();
        let s = screen(&t);
        (t, s)
    }

    /// The screen's text must be the stored snapshot; `UPDATE_SNAPSHOTS=1` stores it anew.
    fn assert_snapshot(name: &str, screen: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/dashboard/snapshots")
            .join(name);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, screen).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 creates it)", path.display()));
        assert!(
            expected == screen,
            "the screen differs from {} (UPDATE_SNAPSHOTS=1 updates it):\n{screen}",
            path.display()
        );
    }

    fn line_with<'a>(screen: &'a str, needle: &str) -> &'a str {
        screen
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{screen}"))
    }

    /// A small system: a container whose init adopted an orphan, a zombie waiting for a
    /// shell, a finding, lost records.
    fn scene() -> View {
        let mut v = View::new(5 * S);
        let ns = 4026532177;
        let init = in_ns(p(18306, 10, "sleep"), ns, 1);
        let father = in_ns(p(18307, 11, "worker"), ns, 2);
        let orphan = in_ns(p(18308, 12, "a\u{1b}b"), ns, 3);
        let sh = p(4242, 1, "bash");
        v.apply(&Event::Container {
            ts: 99 * S,
            pidns: ns,
            info: crate::container::ContainerInfo {
                runtime: Some(crate::container::Runtime::Docker),
                id: Some("3f2a".repeat(16)),
                name: Some("test".into()),
                ..Default::default()
            },
        });
        // A hand-off between two threads of one process: the reaper shows its tid.
        let mut main_thread = p(4300, 5, "server");
        let mut worker = main_thread.clone();
        worker.tid = 4301;
        main_thread.comm = "server".into();
        v.apply(&reparent(
            99 * S,
            &p(4302, 7, "child"),
            &main_thread,
            &worker,
            ReaperKind::Thread,
        ));
        v.apply(&reparent(
            100 * S,
            &orphan,
            &father,
            &init,
            ReaperKind::Init,
        ));
        v.apply(&zombie(101 * S, &p(5001, 20, "defunct"), &sh));
        v.apply(&zombie(108 * S, &orphan, &init));
        v.apply(&Event::Reparent {
            ts: 109 * S,
            orphan: p(6001, 30, "stray"),
            father: p(6000, 29, "dad"),
            reaper: Some(p(1, 0, "systemd")),
            kind: Some(ReaperKind::Unexpected),
            predicted: Some(Prediction {
                tid: 5999,
                pid: 5999,
                kind: ReaperKind::Subreaper,
            }),
            verdict: Verdict::Mismatch,
            reason: None,
            zombie: false,
            late: false,
        });
        for i in 0..20u64 {
            let c = p(7000 + i as u32, 40 + i, "job");
            v.apply(&Event::Zombie {
                ts: 105 * S,
                task: c.clone(),
                parent: sh.clone(),
                status: ExitStatus::from_wait_status(0),
                autoreaped: false,
                before_trace: false,
            });
            v.apply(&reap(105 * S + (i + 1) * MS, &c, &sh, Some((i + 1) * MS)));
        }
        v.apply(&Event::Lost {
            ts: 109 * S,
            what: "fork".into(),
            count: 3,
        });
        v.set_clock(110 * S);
        v
    }

    #[test]
    fn full_screen_at_80x24() {
        let v = scene();
        let app = App::new(Mode::Live);
        let (_, s) = render(&v, &app, 80, 24);
        assert_snapshot("scene_80x24.txt", &s);
        for title in ["Adoptions", "Zombies", "Reapers", "Zombie lifetimes"] {
            assert!(s.contains(title), "{title} missing:\n{s}");
        }
        // The header: lost records and the mismatch are never hidden.
        assert!(s.contains("lost 3"), "{s}");
        assert!(s.contains("mismatches 1"), "{s}");
        assert!(s.contains("zombies 2 (1 >5s)"), "{s}");
        assert!(s.contains("unexpected 1"), "{s}");
        // The zombie of bash, 9 s old, over the threshold, with who must reap it.
        let row = line_with(&s, "defunct");
        assert!(row.contains("5001") && row.contains("4242 bash"), "{row}");
        assert!(row.contains("!9s"), "{row}");
        // The control character in a name is shown escaped, never sent raw.
        assert!(s.contains(r"a\x1bb"), "{s}");
        assert!(!s.contains('\u{1b}'));
        // The help line fits.
        assert!(s.contains("q quit") && s.contains("? help"), "{s}");
        // The reaper that reaped 20, with its lifetimes' median and p99.
        let row = line_with(&s, "10ms  20ms");
        assert!(row.contains("4242  bash") && row.contains(" 20 "), "{row}");
        // The histogram's labels.
        assert!(s.contains("1ms") && s.contains("10ms"), "{s}");
    }

    #[test]
    fn full_screen_larger() {
        let v = scene();
        let app = App::new(Mode::Live);
        let (_, s) = render(&v, &app, 160, 48);
        assert_snapshot("scene_160x48.txt", &s);
        let row = line_with(&s, "18308 a\\x1bb");
        assert!(row.contains("18307 worker"), "{row}");
        assert!(row.contains("18306 sleep"), "{row}");
        assert!(row.contains("init") && row.contains("= match"), "{row}");
        // The container's name, not the namespace's inode.
        assert!(
            row.trim_end_matches('│').trim_end().ends_with("test"),
            "{row}"
        );
        let thread = line_with(&s, "4302 child");
        assert!(
            thread.contains("4300/4301 server") && thread.contains("thread"),
            "{thread}"
        );
        let finding = line_with(&s, "6001 stray");
        assert!(finding.contains("unexpected") && finding.contains("≠ 5999 subreaper"));
        // Wide: the AGO column and the containers of zombies.
        assert!(s.contains("AGO") && s.contains("CONTAINER"), "{s}");
        let z = line_with(&s, "defunct");
        assert!(z.contains("host"), "{z}");
        for label in HIST_LABELS {
            assert!(s.contains(label), "{label} missing:\n{s}");
        }
    }

    #[test]
    fn a_pid_1_that_does_not_reap_is_marked_in_the_header() {
        let mut v = scene();
        // 18306 `sleep`, PID 1 of container test, has held a zombie for 12 s.
        v.set_clock(120 * S);
        let app = App::new(Mode::Live);
        let (_, s) = render(&v, &app, 160, 48);
        let header = line_with(&s, "zombies ");
        assert!(
            header.contains("not reaping: PID 1 sleep (test)"),
            "{header}"
        );
    }

    #[test]
    fn replay_header_filter_zoom_and_help() {
        let v = scene();
        let mut app = App::new(Mode::Replay {
            file: "trace.jsonl".into(),
            cut_line: None,
            error: None,
            speed: 0.0,
            position_ns: 10 * S,
            total_ns: 10 * S,
            done: true,
        });
        app.query.filter.name = Some("sleep".into());
        let (_, s) = render(&v, &app, 80, 24);
        assert!(!s.contains("cut"), "{s}");
        assert!(s.contains("REPLAY") && s.contains("END"), "{s}");
        assert!(s.contains("(from events)"), "{s}");
        assert!(s.contains("name \"sleep\""), "{s}");
        assert!(!s.contains("defunct"), "{s}");
        assert!(s.contains("18308"), "{s}");

        app.query.filter = Default::default();
        app.zoom = true;
        app.focus = Panel::Reapers;
        let (_, s) = render(&v, &app, 80, 24);
        assert!(s.contains("Reapers") && !s.contains("Adoptions"), "{s}");

        app.help = true;
        let (_, s) = render(&v, &app, 80, 24);
        assert!(s.contains("Help") && s.contains("pause"), "{s}");

        app.help = false;
        app.prompt = Some("ab\u{7}".into());
        let (_, s) = render(&v, &app, 80, 24);
        assert!(s.contains(r"filter by name or pid: ab\x07"), "{s}");

        // A recording whose last line was cut says so next to its name.
        app.prompt = None;
        if let Mode::Replay { cut_line, .. } = &mut app.mode {
            *cut_line = Some(3304);
        }
        let (_, s) = render(&v, &app, 80, 24);
        assert!(
            s.contains("trace.jsonl (last line 3304 cut, not replayed)"),
            "{s}"
        );

        // A malformed line met while playing replaces the footer.
        if let Mode::Replay { error, .. } = &mut app.mode {
            *error = Some(
                "trace.jsonl:9: malformed event: \u{1b}[2J: repair or delete that line".into(),
            );
        }
        let (_, s) = render(&v, &app, 200, 24);
        assert!(
            s.contains(
                r"trace.jsonl:9: malformed event: \x1b[2J: repair or delete that line  (q quits)"
            ),
            "{s}"
        );
        assert!(!s.contains("? help"), "{s}");
    }

    #[test]
    fn empty_and_tiny_screens_do_not_break() {
        let v = View::new(S);
        let app = App::new(Mode::Live);
        let (_, s) = render(&v, &app, 80, 24);
        assert!(s.contains("no zombie"), "{s}");
        assert!(s.contains("no adoption yet"), "{s}");
        for (w, h) in [(1, 1), (10, 3), (20, 8), (40, 12), (300, 100)] {
            render(&scene(), &app, w, h);
            let mut help = app.clone();
            help.help = true;
            render(&scene(), &help, w, h);
        }
    }

    /// The tree panel of 11 `sh`: init 1 and subreaper 10 above it, its subtree below, one
    /// child with an escape sequence for a name.
    fn tree_panel(view: &View) -> TreePanel {
        use crate::tree::tests::{below_subreaper, host, rec};
        let mut records = host();
        let mut evil = below_subreaper(rec(14, 11, "x"));
        evil.task.comm[..8].copy_from_slice(b"evil\x1b[2J");
        records.push(evil);
        let snap = crate::tree::Snapshot::new(records);
        let target = Proc {
            start: 11_000,
            ..Proc::fake(11, "sh")
        };
        let content = super::super::tree::content(
            &target,
            &snap,
            420_000,
            view.now() - 3 * S,
            &mut crate::tree::NoContainers,
        );
        TreePanel::new(Some(target), content)
    }

    #[test]
    fn tree_panel_at_100x30() {
        let v = scene();
        let mut app = App::new(Mode::Live);
        app.tree = Some(tree_panel(&v));
        let (_, s) = render(&v, &app, 100, 30);
        assert_snapshot("tree_100x30.txt", &s);
        // The panel replaces the others; the header and the footer stay.
        assert!(!s.contains("Zombie lifetimes") && s.contains("LIVE"), "{s}");
        assert!(s.contains("t tree"), "{s}");
        // Its destination, said first, then the lines `reaper-trace tree` prints.
        assert!(
            s.contains("11 sh, if it died now: its 2 children would go to"),
            "{s}"
        );
        assert!(s.contains("=> 10 shim (subreaper)"), "{s}");
        assert!(s.contains("3s ago"), "{s}");
        let me = line_with(&s, "\\_ sh ");
        assert!(me.contains("=> 10 shim (subreaper)"), "{me}");
        let up = line_with(&s, "\\_ shim");
        assert!(
            up.contains("[subreaper]") && up.contains("=> 1 init (init)"),
            "{up}"
        );
        assert!(s.contains("\\_ leaf") && !s.contains("plain"), "{s}");
        // Above a first process that is not its namespace's init: its parent, said missing.
        let mut panel = tree_panel(&v);
        if let Content::Ready(r) = &mut panel.content {
            r.lineage.processes.remove(0);
            r.lineage.selected -= 1;
        }
        app.tree = Some(panel);
        let (_, s2) = render(&v, &app, 100, 30);
        assert!(s2.contains("(1 init: not in the snapshot)"), "{s2}");
        // A name with an escape sequence is shown escaped.
        assert!(s.contains(r"evil\x1b[2J") && !s.contains('\u{1b}'), "{s}");
        // Small screens do not break it.
        for (w, h) in [(1, 1), (20, 6), (80, 24)] {
            render(&v, &app, w, h);
        }
    }

    #[test]
    fn tree_panel_says_why_there_is_no_tree() {
        let v = scene();
        let mut app = App::new(Mode::Live);
        let cases = [
            (None, Content::NoSelection, "Nothing is selected"),
            (
                Some(p(4242, 1, "bash")),
                Content::NeedsLiveKernel,
                "needs the live kernel",
            ),
            (
                Some(p(4242, 1, "bash")),
                Content::Failed("no \u{1b}[31mBPF".into()),
                r"Cannot take a snapshot of the process tree: no \x1b[31mBPF",
            ),
        ];
        for (target, content, says) in cases {
            app.tree = Some(TreePanel::new(target, content));
            let (_, s) = render(&v, &app, 80, 24);
            assert!(s.contains(says), "{s}");
            assert!(s.contains("t/Esc close") && !s.contains('\u{1b}'), "{s}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_duration(850), "850ns");
        assert_eq!(fmt_duration(1_500), "1.5µs");
        assert_eq!(fmt_duration(12_000), "12µs");
        assert_eq!(fmt_duration(3_400_000), "3.4ms");
        assert_eq!(fmt_duration(1_200_000_000), "1.2s");
        assert_eq!(fmt_duration(45 * S), "45s");
        assert_eq!(fmt_duration(123 * S), "2m03s");
        assert_eq!(fmt_age(340 * MS), "340ms");
        assert_eq!(fmt_age(3725 * S), "1h02m");
        assert_eq!(fmt_count(12_345), "12.3k");
        assert_eq!(fmt_pidns(ROOT_PIDNS), "root");
        assert_eq!(proc_label(&p(7, 1, "x\u{9b}y")), r"7 x\u{9b}y");
    }
}
