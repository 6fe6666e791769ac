//! The subscriber-statistics report (issue 18): its data types, which are also the JSON answer
//! of `GET /api/stats`, and its two renderings for people: a standalone HTML page for the
//! portal's editors (`GET /admin/stats`, `feedcast stats --html FILE`) and a plain-text table
//! for a terminal (`feedcast stats`).
//!
//! This module only shapes and renders a [`Report`] that counting has already built; it does
//! no counting and reads no store. The serde shape of the types is the API, so field names and
//! date formats change only with the API. The page holds every number a test may want in a
//! machine-readable attribute (`data-feed`, `data-field`, `data-value`, `data-max`), because a
//! test loads it in a headless browser and reads the numbers off it; maud escapes every
//! interpolated value, and the page has no script and no inline style, so it is served under
//! the strict policy of [`content_security_policy`].

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Serialize;

/// Subscriber statistics of every feed, as of one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// When the report was built; RFC 3339 in JSON.
    pub generated_at: DateTime<Utc>,
    /// The site's time zone, e.g. "Asia/Shanghai": days are counted in it.
    pub time_zone: String,
    /// The day the report is for, in the site's time zone; "YYYY-MM-DD" in JSON.
    pub today: NaiveDate,
    /// Aggregator reports ignored as implausible, over the days shown.
    pub suspect_reports: u64,
    /// Every feed, most subscribers first, then by feed path.
    pub feeds: Vec<FeedStats>,
}

/// The statistics of one feed (all its formats and variants counted as one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedStats {
    /// The feed's path below `/feeds/`, e.g. "category/hydrogen", "region/320281".
    pub feed: String,
    /// The feed's title, e.g. "氢能"; any text, so every rendering escapes it.
    pub title: String,
    /// Its subscribers today, by source.
    pub subscribers: Subscribers,
    /// The last 30 days ending today, oldest first, every day present.
    pub days: Vec<DayStats>,
}

/// A feed's subscribers by source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscribers {
    /// The sum of the aggregators' counts, `direct` and `push`.
    pub total: u64,
    /// What each aggregator reports in its User-Agent, most first.
    pub aggregators: Vec<AggregatorCount>,
    /// Distinct other clients.
    pub direct: u64,
    /// WebSub push subscriptions not already counted by an aggregator.
    pub push: u64,
}

/// The subscribers one aggregator reports for a feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AggregatorCount {
    /// The aggregator's name, e.g. "Feedly".
    pub name: String,
    /// Its latest reported count.
    pub subscribers: u64,
}

/// One day of one feed, in the site's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayStats {
    /// The day; "YYYY-MM-DD" in JSON.
    pub day: NaiveDate,
    /// Subscribers that day: `aggregators + direct + push`.
    pub subscribers: u64,
    /// Subscribers reported by aggregators that day.
    pub aggregators: u64,
    /// Distinct other clients that day.
    pub direct: u64,
    /// Push subscriptions that day not counted by an aggregator.
    pub push: u64,
    /// 200s and 304s of the feed's documents.
    pub polls: u64,
    /// Of `polls`, the 304s.
    pub not_modified: u64,
    /// Body bytes sent.
    pub bytes: u64,
}

/// The page's only stylesheet. The policy allows it by its hash, so any change here changes
/// the policy too (both are computed from this one constant). It must hold no `<`, since it
/// is written into the page unescaped.
const STYLE: &str = "body{font-family:system-ui,'PingFang SC','Noto Sans CJK SC','Microsoft YaHei',sans-serif;\
max-width:72rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#222;background:#fff}\
h1{font-size:1.6rem;margin:0 0 .3rem}h1 small{font-size:1rem;font-weight:400;color:#555}\
h2{font-size:1.2rem;margin:2rem 0 .6rem;padding-bottom:.2rem;border-bottom:1px solid #ddd}\
.meta{color:#666;margin:0 0 1rem}\
.summary{background:#f4f7fb;border:1px solid #d7e3f1;border-radius:6px;padding:.6rem 1rem}\
.summary strong{font-size:1.15rem}\
table{border-collapse:collapse;width:100%;font-size:.95rem}table.compact{width:auto;min-width:36rem}\
th,td{padding:.35rem .5rem;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}\
th{background:#f6f6f6;font-weight:600;white-space:nowrap;vertical-align:bottom}\
th small{display:block;font-weight:400;color:#666}\
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
.path{display:block;color:#666;font-size:.85rem;word-break:break-all}\
.none{color:#999}\
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(30rem,1fr));gap:1rem}\
figure{margin:0;border:1px solid #e4e4e4;border-radius:6px;padding:.6rem .8rem}\
figcaption{font-weight:600}figcaption .path{font-weight:400}\
svg{display:block;width:100%;height:auto}";

/// The chart's drawing area in SVG user units; the page scales it to the column's width.
const CHART_WIDTH: f64 = 600.0;
/// Tall enough to tell 1 from 2 subscribers in a feed with a few dozen.
const CHART_HEIGHT: f64 = 170.0;
/// Room left of the plot for the maximum's label (up to seven digits at 11px).
const CHART_LEFT: f64 = 48.0;
/// Room right of the plot so the last day's label is not clipped.
const CHART_RIGHT: f64 = 8.0;
/// Room above the plot for the top half of the maximum's label.
const CHART_TOP: f64 = 12.0;
/// Room below the plot for the first and last days' labels.
const CHART_BOTTOM: f64 = 26.0;

/// The Content-Security-Policy the page is served under: no script and no other resource at
/// all, the one inline stylesheet by its hash, and nothing may frame the page, change its base
/// or submit a form.
pub fn content_security_policy() -> String {
    format!(
        "default-src 'none'; style-src 'sha256-{}'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        style_hash()
    )
}

/// The base64 SHA-256 of [`STYLE`], as CSP names an inline stylesheet.
fn style_hash() -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE))
}

/// A byte count in SI units with one decimal ("0 B", "999 B", "1.2 MB"), as both renderings
/// show bytes sent. SI (powers of 1000) because that is what "MB" means to an editor.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KB", "MB", "GB", "TB", "PB", "EB"];
    if n < 1000 {
        return format!("{n} B");
    }
    // In integers, so the rounding is exact and never shows "1000.0 KB" for 999,999 bytes.
    let mut divisor: u128 = 1;
    for unit in UNITS {
        divisor *= 1000;
        let tenths = (u128::from(n) * 10 + divisor / 2) / divisor;
        if tenths < 10_000 || unit == "EB" {
            return format!("{}.{} {unit}", tenths / 10, tenths % 10);
        }
    }
    // Unreachable: the loop returns at "EB" at the latest (u64::MAX is 18.4 EB).
    format!("{n} B")
}

/// The feeds in report order: most subscribers first, then by path. The producer already sorts
/// them so; sorting again (stable, cheap) keeps the ranks right for any report built by hand.
fn ranked(report: &Report) -> Vec<&FeedStats> {
    let mut feeds: Vec<&FeedStats> = report.feeds.iter().collect();
    feeds.sort_by(|a, b| {
        b.subscribers
            .total
            .cmp(&a.subscribers.total)
            .then_with(|| a.feed.cmp(&b.feed))
    });
    feeds
}

/// A feed's figures of `today`: zero if the day is missing, rather than another day's.
fn today_of(feed: &FeedStats, today: NaiveDate) -> Option<&DayStats> {
    feed.days.iter().rev().find(|d| d.day == today)
}

/// The sum of the aggregators' counts of a feed.
fn aggregator_sum(subscribers: &Subscribers) -> u64 {
    subscribers.aggregators.iter().map(|a| a.subscribers).sum()
}

/// Totals over every feed, for the summary line and the table's last line.
#[derive(Default)]
struct Totals {
    subscribers: u64,
    aggregators: u64,
    direct: u64,
    push: u64,
    polls: u64,
    not_modified: u64,
    bytes: u64,
}

impl Totals {
    fn of(report: &Report) -> Totals {
        let mut t = Totals::default();
        for feed in &report.feeds {
            // Saturating: a report is shown even if some count is absurd.
            t.subscribers = t.subscribers.saturating_add(feed.subscribers.total);
            t.aggregators = t
                .aggregators
                .saturating_add(aggregator_sum(&feed.subscribers));
            t.direct = t.direct.saturating_add(feed.subscribers.direct);
            t.push = t.push.saturating_add(feed.subscribers.push);
            if let Some(day) = today_of(feed, report.today) {
                t.polls = t.polls.saturating_add(day.polls);
                t.not_modified = t.not_modified.saturating_add(day.not_modified);
                t.bytes = t.bytes.saturating_add(day.bytes);
            }
        }
        t
    }
}

/// The report as a complete HTML5 page for the portal's editors: a summary, a table of the
/// `top` feeds by subscribers with a 30-day chart of each, and a compact table of the rest.
/// It loads nothing and runs no script; serve it under [`content_security_policy`].
pub fn html(report: &Report, top: usize) -> String {
    let feeds = ranked(report);
    let (leaders, rest) = feeds.split_at(top.min(feeds.len()));
    let totals = Totals::of(report);
    let today = report.today.to_string();
    let generated = report
        .generated_at
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // Editors may keep the page: it must not be taken for a public one.
                meta name="robots" content="noindex";
                title { "订阅统计 Subscriber statistics · " (today) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 {
                        "订阅统计 Subscriber statistics "
                        small {
                            time datetime=(today) data-field="today" { (today) }
                            " (" span data-field="time_zone" { (report.time_zone) } ")"
                        }
                    }
                    p.meta {
                        "按 " (report.time_zone) " 时区计日 · Days counted in the site's time zone. "
                        "生成于 Generated "
                        time datetime=(generated) data-field="generated_at" { (generated) }
                    }
                }
                p.summary #summary {
                    strong data-field="feeds" data-value=(feeds.len()) { (feeds.len()) }
                    " 个订阅源 feeds · 订阅数 Subscribers "
                    strong data-field="total" data-value=(totals.subscribers) { (totals.subscribers) }
                    " (聚合器 aggregators "
                    span data-field="aggregators" data-value=(totals.aggregators) { (totals.aggregators) }
                    " · 直接 direct "
                    span data-field="direct" data-value=(totals.direct) { (totals.direct) }
                    " · 推送 push "
                    span data-field="push" data-value=(totals.push) { (totals.push) }
                    ") · 可疑报告 Suspect reports "
                    strong data-field="suspect_reports" data-value=(report.suspect_reports) {
                        (report.suspect_reports)
                    }
                    " (近 " (days_shown(report)) " 天 over the days shown, 已忽略 ignored)"
                }
                @if feeds.is_empty() {
                    p.none { "暂无订阅源 No feeds yet." }
                }
                @if !leaders.is_empty() {
                    section #top {
                        h2 { "订阅最多的 " (leaders.len()) " 个订阅源 Top " (leaders.len()) " feeds" }
                        (top_table(leaders, report.today))
                    }
                    section #charts {
                        h2 { "近 30 天每日订阅数 Subscribers per day, last 30 days" }
                        div.charts {
                            @for (i, feed) in leaders.iter().enumerate() {
                                figure data-feed=(feed.feed) {
                                    figcaption {
                                        (i + 1) ". " (feed.title)
                                        span.path { (feed.feed) }
                                    }
                                    (chart(feed))
                                }
                            }
                        }
                    }
                }
                @if !rest.is_empty() {
                    section #rest {
                        h2 { "其余 " (rest.len()) " 个订阅源 Other feeds" }
                        (rest_table(rest, leaders.len()))
                    }
                }
            }
        }
    }
    .into_string()
}

/// How many days the report spans, for the suspect-reports note: the longest feed's history
/// (30 when the producer keeps its promise), so the note never claims more than it shows.
fn days_shown(report: &Report) -> usize {
    report.feeds.iter().map(|f| f.days.len()).max().unwrap_or(0)
}

/// A number cell: the plain integer as text and as `data-value`, right-aligned.
fn num(field: &str, value: u64) -> Markup {
    html! { td.num data-field=(field) data-value=(value) { (value) } }
}

/// The table of the top feeds, one row per feed with every figure.
fn top_table(feeds: &[&FeedStats], today: NaiveDate) -> Markup {
    html! {
        table data-table="top" {
            thead {
                tr {
                    th.num { "#" }
                    th { "订阅源" small { "Feed" } }
                    th.num { "订阅数" small { "Subscribers" } }
                    th { "聚合器" small { "Aggregators" } }
                    th.num { "直接" small { "Direct" } }
                    th.num { "推送" small { "Push" } }
                    th.num { "今日请求" small { "Polls today" } }
                    th.num { "其中 304" small { "Not modified" } }
                    th.num { "今日流量" small { "Bytes today" } }
                }
            }
            tbody {
                @for (i, feed) in feeds.iter().enumerate() {
                    @let day = today_of(feed, today);
                    @let bytes = day.map_or(0, |d| d.bytes);
                    tr data-feed=(feed.feed) data-rank=(i + 1) {
                        (num("rank", i as u64 + 1))
                        td {
                            span data-field="title" { (feed.title) }
                            span.path data-field="feed" { (feed.feed) }
                        }
                        (num("total", feed.subscribers.total))
                        td data-field="aggregators" data-value=(aggregator_sum(&feed.subscribers)) {
                            @if feed.subscribers.aggregators.is_empty() {
                                span.none { "—" }
                            }
                            @for (j, a) in feed.subscribers.aggregators.iter().enumerate() {
                                @if j > 0 { " · " }
                                span data-aggregator=(a.name) data-value=(a.subscribers) {
                                    (a.name) " " (a.subscribers)
                                }
                            }
                        }
                        (num("direct", feed.subscribers.direct))
                        (num("push", feed.subscribers.push))
                        (num("polls", day.map_or(0, |d| d.polls)))
                        (num("not_modified", day.map_or(0, |d| d.not_modified)))
                        td.num data-field="bytes" data-value=(bytes) { (human_bytes(bytes)) }
                    }
                }
            }
        }
    }
}

/// The compact table of the feeds after the top ones; ranks continue after `ranks_before`.
fn rest_table(feeds: &[&FeedStats], ranks_before: usize) -> Markup {
    html! {
        table.compact data-table="rest" {
            thead {
                tr {
                    th.num { "#" }
                    th { "路径" small { "Path" } }
                    th { "标题" small { "Title" } }
                    th.num { "订阅数" small { "Subscribers" } }
                }
            }
            tbody {
                @for (i, feed) in feeds.iter().enumerate() {
                    tr data-feed=(feed.feed) data-rank=(ranks_before + i + 1) {
                        (num("rank", (ranks_before + i + 1) as u64))
                        td data-field="feed" { (feed.feed) }
                        td data-field="title" { (feed.title) }
                        (num("total", feed.subscribers.total))
                    }
                }
            }
        }
    }
}

/// One feed's subscribers per day as an inline SVG bar chart: one bar per day (its own
/// `<title>` shows the day's breakdown on hover), the y axis from 0 to the maximum, the first
/// and last days under the x axis. Bars rather than a line, so a single day's dip or a day
/// with no subscribers is visible and each day carries its figures as attributes.
fn chart(feed: &FeedStats) -> Markup {
    let max = feed.days.iter().map(|d| d.subscribers).max().unwrap_or(0);
    let plot_width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT;
    let plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM;
    let baseline = CHART_TOP + plot_height;
    let right = CHART_WIDTH - CHART_RIGHT;
    let slot = plot_width / feed.days.len().max(1) as f64;
    let bar_width = slot * 0.7;
    let first = feed.days.first().map(|d| d.day.to_string());
    let last = feed.days.last().map(|d| d.day.to_string());
    let today = feed.days.last().map_or(0, |d| d.subscribers);
    let label = match (&first, &last) {
        (Some(first), Some(last)) => format!(
            "{}（{}）每日订阅数 subscribers per day, {first} – {last}: 最高 max {max}, 最后一天 last day {today}",
            feed.title, feed.feed
        ),
        _ => format!("{}（{}）: 暂无数据 no data", feed.title, feed.feed),
    };
    html! {
        svg xmlns="http://www.w3.org/2000/svg"
            viewBox=(format!("0 0 {CHART_WIDTH} {CHART_HEIGHT}"))
            width=(CHART_WIDTH) height=(CHART_HEIGHT)
            role="img" aria-label=(label)
            data-feed=(feed.feed) data-max=(max)
            data-first=[first.as_deref()] data-last=[last.as_deref()] {
            title { (label) }
            // Every SVG element is written with its closing tag: in HTML, `<rect>` without one
            // would swallow the elements after it.
            line x1=(CHART_LEFT) y1=(CHART_TOP) x2=(right) y2=(CHART_TOP)
                stroke="#ddd" stroke-dasharray="3 3" {}
            @for (i, day) in feed.days.iter().enumerate() {
                @let height = bar_height(day.subscribers, max, plot_height);
                rect x=(fmt1(CHART_LEFT + i as f64 * slot + (slot - bar_width) / 2.0))
                    y=(fmt1(baseline - height)) width=(fmt1(bar_width)) height=(fmt1(height))
                    fill=(if i + 1 == feed.days.len() { "#1b4f9c" } else { "#4a86d8" })
                    data-day=(day.day) data-value=(day.subscribers) {
                    title {
                        (day.day) ": " (day.subscribers) " (聚合器 aggregators " (day.aggregators)
                        " · 直接 direct " (day.direct) " · 推送 push " (day.push) ")"
                    }
                }
            }
            line x1=(CHART_LEFT) y1=(CHART_TOP) x2=(CHART_LEFT) y2=(baseline)
                stroke="#888" {}
            line x1=(CHART_LEFT) y1=(baseline) x2=(right) y2=(baseline) stroke="#888" {}
            text x=(CHART_LEFT - 5.0) y=(CHART_TOP + 4.0) text-anchor="end" font-size="12"
                fill="#444" data-field="max" { (max) }
            text x=(CHART_LEFT - 5.0) y=(baseline + 4.0) text-anchor="end" font-size="12"
                fill="#444" { "0" }
            @if let (Some(first), Some(last)) = (&first, &last) {
                text x=(CHART_LEFT) y=(CHART_HEIGHT - 8.0) text-anchor="start" font-size="12"
                    fill="#444" data-field="first" { (first) }
                text x=(right) y=(CHART_HEIGHT - 8.0) text-anchor="end" font-size="12"
                    fill="#444" data-field="last" { (last) }
            } @else {
                text x=(CHART_WIDTH / 2.0) y=(CHART_TOP + plot_height / 2.0) text-anchor="middle"
                    font-size="12" fill="#888" { "暂无数据 No data" }
            }
        }
    }
}

/// A bar's height for `value` on a scale topped by `max`; 0 when every day is 0, so the scale
/// never divides by zero, and at least a pixel for any non-zero day, so it never looks empty.
fn bar_height(value: u64, max: u64, plot_height: f64) -> f64 {
    if max == 0 || value == 0 {
        return 0.0;
    }
    (value as f64 / max as f64 * plot_height).max(1.0)
}

/// A coordinate with one decimal: enough for a screen, and stable text for the tests.
fn fmt1(x: f64) -> String {
    format!("{x:.1}")
}

/// The report as a plain-text table for a terminal: a line saying when and where, a header,
/// one line per feed (path, right-aligned numbers, then the title and the aggregators' counts
/// last, since CJK text cannot be aligned by counting characters), and a line of totals with
/// the suspect reports. The same report always gives the same text.
pub fn table(report: &Report) -> String {
    const HEADERS: [&str; 7] = [
        "total",
        "aggregators",
        "direct",
        "push",
        "polls",
        "304s",
        "bytes",
    ];
    let feeds = ranked(report);
    let totals = Totals::of(report);
    let rows: Vec<(String, [String; 7], String)> = feeds
        .iter()
        .map(|feed| {
            let day = today_of(feed, report.today);
            let s = &feed.subscribers;
            let numbers = [
                s.total.to_string(),
                aggregator_sum(s).to_string(),
                s.direct.to_string(),
                s.push.to_string(),
                day.map_or(0, |d| d.polls).to_string(),
                day.map_or(0, |d| d.not_modified).to_string(),
                human_bytes(day.map_or(0, |d| d.bytes)),
            ];
            let mut last = printable(&feed.title);
            if !s.aggregators.is_empty() {
                let each: Vec<String> = s
                    .aggregators
                    .iter()
                    .map(|a| format!("{} {}", printable(&a.name), a.subscribers))
                    .collect();
                let _ = write!(last, "  [{}]", each.join(", "));
            }
            (printable(&feed.feed), numbers, last)
        })
        .collect();
    let total_label = format!("all {} feeds", feeds.len());
    let total_numbers = [
        totals.subscribers.to_string(),
        totals.aggregators.to_string(),
        totals.direct.to_string(),
        totals.push.to_string(),
        totals.polls.to_string(),
        totals.not_modified.to_string(),
        human_bytes(totals.bytes),
    ];

    let path_width = rows
        .iter()
        .map(|(path, _, _)| width(path))
        .chain([width("feed"), width(&total_label)])
        .max()
        .unwrap_or(0);
    let mut widths = HEADERS.map(str::len);
    for numbers in rows.iter().map(|(_, n, _)| n).chain([&total_numbers]) {
        for (w, n) in widths.iter_mut().zip(numbers) {
            *w = (*w).max(n.len());
        }
    }

    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        out,
        "Subscriber statistics for {} ({}), generated {}",
        report.today,
        printable(&report.time_zone),
        report
            .generated_at
            .to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    let line = |out: &mut String, first: &str, cells: &[String; 7], last: &str| {
        let _ = write!(out, "{first}{}", pad(path_width - width(first)));
        for (cell, w) in cells.iter().zip(widths) {
            let _ = write!(out, "  {cell:>w$}");
        }
        if last.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "  {last}");
        }
    };
    line(&mut out, "feed", &HEADERS.map(String::from), "title");
    for (path, numbers, last) in &rows {
        line(&mut out, path, numbers, last);
    }
    line(
        &mut out,
        &total_label,
        &total_numbers,
        &format!("suspect reports {}", report.suspect_reports),
    );
    out
}

/// Text safe for a terminal: control characters (an escape sequence in a hostile title could
/// rewrite the editor's screen) become U+FFFD.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// Columns a (path-like, mostly ASCII) text takes; CJK titles are kept last for this reason.
fn width(text: &str) -> usize {
    text.chars().count()
}

/// `n` spaces.
fn pad(n: usize) -> String {
    " ".repeat(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// 30 days ending `today`, subscribers rising by `step` a day from `start`.
    fn days(today: NaiveDate, start: u64, step: u64) -> Vec<DayStats> {
        (0..30u64)
            .map(|i| {
                let subscribers = start + i * step;
                let direct = subscribers / 4;
                DayStats {
                    day: today - chrono::Days::new(29 - i),
                    subscribers,
                    aggregators: subscribers - direct,
                    direct,
                    push: 0,
                    polls: 100 + i,
                    not_modified: 60 + i,
                    bytes: 1_000_000 + i * 1000,
                }
            })
            .collect()
    }

    fn feed(
        path: &str,
        title: &str,
        aggregators: &[(&str, u64)],
        direct: u64,
        push: u64,
    ) -> FeedStats {
        let aggregators: Vec<AggregatorCount> = aggregators
            .iter()
            .map(|(name, n)| AggregatorCount {
                name: (*name).to_string(),
                subscribers: *n,
            })
            .collect();
        let total = aggregators.iter().map(|a| a.subscribers).sum::<u64>() + direct + push;
        FeedStats {
            feed: path.to_string(),
            title: title.to_string(),
            subscribers: Subscribers {
                total,
                aggregators,
                direct,
                push,
            },
            days: days(date(2024, 5, 1), total.saturating_sub(29), 1),
        }
    }

    fn report(feeds: Vec<FeedStats>) -> Report {
        Report {
            generated_at: DateTime::parse_from_rfc3339("2024-05-01T08:30:00Z")
                .unwrap()
                .with_timezone(&Utc),
            time_zone: "Asia/Shanghai".to_string(),
            today: date(2024, 5, 1),
            suspect_reports: 3,
            feeds,
        }
    }

    fn sample() -> Report {
        report(vec![
            feed(
                "category/hydrogen",
                "氢能",
                &[("Feedly", 57), ("Inoreader", 12)],
                5,
                1,
            ),
            feed("region/320281", "江阴", &[("NewsBlur", 5)], 9, 0),
            feed("jiangsu-hydrogen", "江苏氢能", &[], 4, 2),
        ])
    }

    /// The text between `start` and the next `end` after it, if any.
    fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
        let from = text.find(start)? + start.len();
        let to = text[from..].find(end)? + from;
        Some(&text[from..to])
    }

    /// The opening tag of the `tag` element carrying `attribute`.
    fn tag_with<'a>(page: &'a str, tag: &str, attribute: &str) -> &'a str {
        let at = page.find(attribute).unwrap();
        let open = page[..at].rfind(&format!("<{tag}")).unwrap();
        let close = page[at..].find('>').unwrap() + at;
        &page[open..=close]
    }

    /// The `data-field` cell's text in the row of `feed`.
    fn cell<'a>(page: &'a str, feed: &str, field: &str) -> &'a str {
        let row = between(page, &format!("<tr data-feed=\"{feed}\""), "</tr>").unwrap();
        between(row, &format!("data-field=\"{field}\""), "</td>")
            .and_then(|rest| rest.split_once('>'))
            .map(|(_, text)| text)
            .unwrap()
    }

    #[test]
    fn serializes_to_the_documented_api_shape() {
        let mut feed = feed("category/hydrogen", "氢能", &[("Feedly", 57)], 5, 1);
        feed.days.drain(..29);
        let json = serde_json::to_value(report(vec![feed])).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "generated_at": "2024-05-01T08:30:00Z",
                "time_zone": "Asia/Shanghai",
                "today": "2024-05-01",
                "suspect_reports": 3,
                "feeds": [{
                    "feed": "category/hydrogen",
                    "title": "氢能",
                    "subscribers": {
                        "total": 63,
                        "aggregators": [{"name": "Feedly", "subscribers": 57}],
                        "direct": 5,
                        "push": 1
                    },
                    "days": [{
                        "day": "2024-05-01",
                        "subscribers": 63,
                        "aggregators": 48,
                        "direct": 15,
                        "push": 0,
                        "polls": 129,
                        "not_modified": 89,
                        "bytes": 1_029_000
                    }]
                }]
            })
        );
    }

    #[test]
    fn html_escapes_hostile_titles_and_paths() {
        let page = html(
            &report(vec![
                feed(
                    "evil\"path",
                    "<script>alert(1)</script>",
                    &[("<b>", 1)],
                    1,
                    0,
                ),
                feed("also\"evil", "<img src=x onerror=alert(2)>", &[], 1, 0),
            ]),
            1,
        );
        assert!(!page.contains("<script"));
        assert!(!page.contains("<img"));
        assert!(!page.contains("<b>"));
        assert!(!page.contains("evil\"path"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("data-feed=\"evil&quot;path\""));
        assert!(page.contains("data-feed=\"also&quot;evil\""));
    }

    #[test]
    fn html_carries_every_figure_in_data_attributes() {
        let page = html(&sample(), 3);
        assert_eq!(cell(&page, "category/hydrogen", "total"), "75");
        assert_eq!(cell(&page, "category/hydrogen", "direct"), "5");
        assert_eq!(cell(&page, "category/hydrogen", "push"), "1");
        assert_eq!(cell(&page, "category/hydrogen", "polls"), "129");
        assert_eq!(cell(&page, "category/hydrogen", "not_modified"), "89");
        assert_eq!(cell(&page, "region/320281", "total"), "14");
        assert_eq!(cell(&page, "jiangsu-hydrogen", "push"), "2");
        assert!(page.contains("data-field=\"bytes\" data-value=\"1029000\">1.0 MB</td>"));
        let aggregators = between(
            &page,
            "data-field=\"aggregators\" data-value=\"69\">",
            "</td>",
        );
        assert!(aggregators.unwrap().contains(
            "<span data-aggregator=\"Feedly\" data-value=\"57\">Feedly 57</span> · \
             <span data-aggregator=\"Inoreader\" data-value=\"12\">Inoreader 12</span>"
        ));
        let svg = tag_with(&page, "svg", "data-feed=\"category/hydrogen\" data-max");
        assert!(svg.contains("data-max=\"75\""));
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("aria-label=\"氢能"));
        assert!(svg.contains("data-first=\"2024-04-02\" data-last=\"2024-05-01\""));
        assert!(page.contains("data-field=\"suspect_reports\" data-value=\"3\">3<"));
        assert!(page.contains("data-field=\"total\" data-value=\"95\">95<"));
        assert!(page.contains("<html lang=\"zh-CN\">"));
        assert!(page.contains("<meta charset=\"utf-8\">"));
    }

    #[test]
    fn ranks_feeds_by_subscribers_then_path_whatever_the_input_order() {
        let mut r = sample();
        r.feeds.reverse();
        r.feeds.push(feed("a-first", "同票", &[], 14, 0));
        let page = html(&r, 4);
        let order: Vec<&str> = [
            "category/hydrogen",
            "a-first",
            "region/320281",
            "jiangsu-hydrogen",
        ]
        .iter()
        .map(|f| tag_with(&page, "tr", &format!("data-feed=\"{f}\" data-rank")))
        .collect();
        for (i, row) in order.iter().enumerate() {
            assert!(row.contains(&format!("data-rank=\"{}\"", i + 1)), "{row}");
        }
    }

    #[test]
    fn chart_of_a_feed_with_no_subscribers_has_zero_max_and_no_nan() {
        let mut quiet = feed("custom/quiet", "安静", &[], 0, 0);
        for day in &mut quiet.days {
            *day = DayStats {
                day: day.day,
                subscribers: 0,
                aggregators: 0,
                direct: 0,
                push: 0,
                polls: 0,
                not_modified: 0,
                bytes: 0,
            };
        }
        let page = html(&report(vec![quiet]), 5);
        let svg = between(&page, "<svg", "</svg>").unwrap();
        assert!(svg.contains("data-max=\"0\""));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert_eq!(svg.matches("<rect").count(), 30);
        assert!(svg.contains("height=\"0.0\""));
    }

    #[test]
    fn chart_of_a_feed_with_no_days_says_so() {
        let mut empty = feed("custom/new", "新", &[], 1, 0);
        empty.days.clear();
        let page = html(&report(vec![empty]), 5);
        let svg = between(&page, "<svg", "</svg>").unwrap();
        assert!(svg.contains("data-max=\"0\""));
        assert!(svg.contains("No data"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn feeds_beyond_top_are_listed_in_the_rest_table() {
        let page = html(&sample(), 1);
        let top = between(&page, "<table data-table=\"top\">", "</table>").unwrap();
        let rest = between(&page, "data-table=\"rest\">", "</table>").unwrap();
        assert!(top.contains("data-feed=\"category/hydrogen\""));
        assert!(!top.contains("region/320281"));
        assert!(rest.contains("<tr data-feed=\"region/320281\" data-rank=\"2\">"));
        assert!(rest.contains("<tr data-feed=\"jiangsu-hydrogen\" data-rank=\"3\">"));
        assert!(rest.contains("江阴"));
        assert_eq!(cell(&page, "region/320281", "total"), "14");
        assert_eq!(page.matches("<svg").count(), 1);
    }

    #[test]
    fn no_rest_table_when_every_feed_is_in_the_top() {
        let page = html(&sample(), 10);
        assert!(!page.contains("data-table=\"rest\""));
        assert_eq!(page.matches("<svg").count(), 3);
    }

    #[test]
    fn page_is_allowed_by_its_policy_and_needs_nothing_else() {
        use base64::Engine as _;
        use sha2::{Digest as _, Sha256};
        let page = html(&sample(), 2);
        let style = between(&page, "<style>", "</style>").unwrap();
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style));
        assert_eq!(
            content_security_policy(),
            format!(
                "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; \
                 form-action 'none'; frame-ancestors 'none'"
            )
        );
        assert_eq!(page.matches("<style").count(), 1);
        assert!(!page.contains("style="));
        assert!(!page.contains("<script"));
        assert!(!page.contains("<link"));
        assert!(!page.contains(" src="));
        assert!(page.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn human_bytes_uses_si_units_with_one_decimal() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1000), "1.0 KB");
        assert_eq!(human_bytes(1234), "1.2 KB");
        assert_eq!(human_bytes(1_250_000), "1.3 MB");
        assert_eq!(human_bytes(999_949), "999.9 KB");
        assert_eq!(human_bytes(999_950), "1.0 MB");
        assert_eq!(human_bytes(u64::MAX), "18.4 EB");
    }

    #[test]
    fn table_aligns_numbers_and_ends_with_totals() {
        let text = table(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("2024-05-01 (Asia/Shanghai), generated 2024-05-01T08:30:00Z"));
        let header = lines[1];
        assert!(header.starts_with("feed "));
        let total_end = header.find("total").unwrap() + "total".len();
        let polls_end = header.find("polls").unwrap() + "polls".len();
        for (line, total, polls) in [
            (lines[2], "75", "129"),
            (lines[3], "14", "129"),
            (lines[4], "6", "129"),
        ] {
            assert_eq!(&line[total_end - total.len()..total_end], total, "{line}");
            assert_eq!(&line[total_end - total.len() - 1..][..1], " ", "{line}");
            assert_eq!(&line[polls_end - polls.len()..polls_end], polls, "{line}");
        }
        assert!(lines[2].starts_with("category/hydrogen"));
        assert!(lines[2].ends_with("氢能  [Feedly 57, Inoreader 12]"));
        assert!(lines[4].ends_with("江苏氢能"));
        let last = *lines.last().unwrap();
        assert!(last.starts_with("all 3 feeds"));
        assert_eq!(&last[total_end - 2..total_end], "95");
        assert!(last.ends_with("suspect reports 3"));
        assert_eq!(lines.len(), 6);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn table_neutralises_control_characters_in_titles() {
        let text = table(&report(vec![feed("x", "\u{1b}[2Jgone", &[], 1, 0)]));
        assert!(!text.contains('\u{1b}'));
        assert!(text.contains("\u{FFFD}[2Jgone"));
    }

    #[test]
    fn table_of_an_empty_report_has_header_and_totals() {
        let text = table(&report(vec![]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[2].starts_with("all 0 feeds"));
    }
}
