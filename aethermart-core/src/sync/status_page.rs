//! The worker's live status page (`GET /`): one self-contained HTML document, rendered on the
//! server from a [`Snapshot`] — no script, nothing fetched from elsewhere — that reloads itself
//! every five seconds. Queues (depth, oldest change, dead letters, applied), throughput and lag
//! over the last ten minutes as inline SVG charts, the last errors, the MariaDB node in use and
//! the worker's version.

use super::metrics::{Sample, Snapshot};
use std::fmt::Write as _;

/// Seconds between the page's reloads.
pub const REFRESH_SECONDS: u32 = 5;

/// The page for `snapshot`, taken `now` (Unix seconds), of a worker on MariaDB `node`.
pub fn render(snapshot: &Snapshot, now: f64, node: Option<&str>, version: &str) -> String {
    let mut html = String::with_capacity(16 * 1024);
    let node = node.unwrap_or("unknown");
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>AetherMart sync worker</title><style>{CSS}</style></head><body>\
         <header><h1>AetherMart sync worker</h1><p>version <span id=\"version\">{}</span> · \
         MariaDB node <span id=\"node\">{}</span> · up <span id=\"uptime\">{}</span> · \
         last batch applied <span id=\"last-apply\">{}</span></p></header>",
        escape(version),
        escape(node),
        duration(now - snapshot.started),
        if snapshot.last_apply > 0.0 {
            format!("{} ago", duration(now - snapshot.last_apply))
        } else {
            "never".to_owned()
        },
    );
    if let Some(l) = &snapshot.leadership {
        let _ = write!(
            html,
            "<p id=\"leadership\">binlog capture: this worker is the <span id=\"role\">{}</span>{} \
             for {}</p>",
            if l.leader { "leader" } else { "standby" },
            if l.leader {
                format!(" (lease term {})", l.term)
            } else {
                " (another worker reads the binlog; this one takes over when its lease lapses)"
                    .to_owned()
            },
            duration(now - l.since),
        );
    }
    if let Some(b) = &snapshot.binlog {
        let _ = write!(
            html,
            "<p id=\"binlog\">binlog capture: read lag <span id=\"binlog-lag\" \
             data-seconds=\"{:.3}\">{}</span> · last GTID sequence <span id=\"binlog-sequence\">{}\
             </span> · position stored <span id=\"binlog-stored\">{}</span></p>",
            b.read_lag_seconds,
            duration(b.read_lag_seconds),
            b.sequence,
            if b.stored_at > 0.0 {
                format!("{} ago", duration(now - b.stored_at))
            } else {
                "not yet".to_owned()
            },
        );
    }
    html.push_str(
        "<section><h2>Queues</h2><table id=\"queues\"><thead><tr><th>queue</th>\
         <th>waiting</th><th>oldest change</th><th>dead letters</th><th>applied here</th>\
         </tr></thead><tbody>",
    );
    for q in &snapshot.queues {
        let late = if q.oldest_seconds > 60.0 { " late" } else { "" };
        let dead = if q.dead_letters > 0 { " bad" } else { "" };
        let _ = write!(
            html,
            "<tr><td>{queue}</td><td class=\"depth\" data-queue=\"{queue}\">{}</td>\
             <td class=\"oldest{late}\" data-queue=\"{queue}\" data-seconds=\"{:.3}\">{}</td>\
             <td class=\"dead{dead}\" data-queue=\"{queue}\">{}</td>\
             <td class=\"applied\" data-queue=\"{queue}\">{}</td></tr>",
            q.depth,
            q.oldest_seconds,
            if q.depth == 0 {
                "—".to_owned()
            } else {
                duration(q.oldest_seconds)
            },
            q.dead_letters,
            q.applied_total,
            queue = escape(q.queue),
        );
    }
    if snapshot.queues.is_empty() {
        html.push_str("<tr><td colspan=\"5\">not read yet</td></tr>");
    }
    html.push_str("</tbody></table></section>");

    let throughput = rates(&snapshot.history);
    let lag: Vec<(f64, f64)> = snapshot
        .history
        .iter()
        .map(|s| (s.at, s.lag_seconds))
        .collect();
    html.push_str("<section class=\"charts\">");
    chart(
        &mut html,
        "throughput",
        "Changes applied per second",
        &throughput,
        now,
    );
    chart(
        &mut html,
        "lag",
        "Commit-to-MongoDB lag of the last batch (s)",
        &lag,
        now,
    );
    html.push_str("</section><section><h2>Last errors</h2><ol id=\"errors\">");
    for e in &snapshot.errors {
        let _ = write!(
            html,
            "<li class=\"{kind}\"><time>{} ago</time> {} <b>{kind}</b>: {}</li>",
            duration(now - e.at),
            escape(e.queue),
            escape(&e.message),
            kind = e.kind,
        );
    }
    if snapshot.errors.is_empty() {
        html.push_str("<li class=\"none\">none</li>");
    }
    html.push_str(
        "</ol></section><footer>Also: <a href=\"/metrics\">/metrics</a> · \
         <a href=\"/healthz\">/healthz</a> · <a href=\"/readyz\">/readyz</a></footer>\
         </body></html>\n",
    );
    html
}

/// Changes per second between consecutive samples, at the later sample's time.
fn rates(history: &[Sample]) -> Vec<(f64, f64)> {
    history
        .windows(2)
        .filter(|w| w[1].at > w[0].at)
        .map(|w| {
            let applied = w[1].applied_total.saturating_sub(w[0].applied_total) as f64;
            (w[1].at, applied / (w[1].at - w[0].at))
        })
        .collect()
}

/// An inline SVG line chart of `points` (time, value) over the ten minutes before `now`.
fn chart(html: &mut String, id: &str, title: &str, points: &[(f64, f64)], now: f64) {
    const W: f64 = 560.0;
    const H: f64 = 140.0;
    const SPAN: f64 = 600.0;
    let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let last = points.last().map_or(0.0, |p| p.1);
    let _ = write!(
        html,
        "<figure><figcaption>{} · now <span class=\"value\" id=\"{id}-now\">{}</span> · \
         peak {}</figcaption><svg id=\"{id}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" \
         height=\"{H}\" role=\"img\" aria-label=\"{}\"><rect width=\"{W}\" height=\"{H}\" \
         class=\"plot\"/>",
        escape(title),
        number(last),
        number(max),
        escape(title),
    );
    let path: Vec<String> = points
        .iter()
        .filter(|p| now - p.0 <= SPAN)
        .map(|&(t, v)| {
            let x = W - (now - t).max(0.0) / SPAN * W;
            let y = H - v / top * (H - 10.0);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    if path.len() > 1 {
        let _ = write!(html, "<polyline points=\"{}\"/>", path.join(" "));
    }
    let _ = write!(
        html,
        "<text x=\"4\" y=\"14\">{}</text><text x=\"4\" y=\"{}\">10 min ago</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">now</text></svg></figure>",
        number(top),
        H - 4.0,
        W - 4.0,
        H - 4.0
    );
}

fn number(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// Text made safe for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2430;background:#f7f8fa}\
h1{font-size:1.4em;margin:0}h2{font-size:1.1em;margin:1.2em 0 .4em}\
header p{color:#556;margin:.3em 0}table{border-collapse:collapse;background:#fff}\
th,td{padding:.35em .8em;border-bottom:1px solid #e3e6ea;text-align:right}\
th:first-child,td:first-child{text-align:left}td.late,td.bad{color:#b3261e;font-weight:600}\
.charts{display:flex;flex-wrap:wrap;gap:1.5em}figure{margin:0;background:#fff;padding:.6em}\
figcaption{color:#556;margin-bottom:.3em}.plot{fill:#fbfcfd;stroke:#d8dce2}\
polyline{fill:none;stroke:#2463eb;stroke-width:2}svg text{font-size:11px;fill:#778}\
ol{background:#fff;padding:.6em 2em}li.permanent b{color:#b3261e}li.transient b{color:#a05a00}\
time{color:#778}footer{margin-top:1.5em;color:#778}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::metrics::{BinlogLine, QueueLine, RecentError};

    #[test]
    fn the_page_shows_the_numbers_and_escapes_text() {
        let now = 1_000_000.0;
        let snapshot = Snapshot {
            queues: vec![QueueLine {
                queue: "customer_sync_queue",
                depth: 3,
                oldest_seconds: 75.5,
                dead_letters: 1,
                applied_total: 42,
            }],
            history: (0_u32..10)
                .map(|i| Sample {
                    at: now - 50.0 + 5.0 * f64::from(i),
                    applied_total: 10 * u64::from(i),
                    lag_seconds: 0.02,
                })
                .collect(),
            errors: vec![RecentError {
                at: now - 3.0,
                queue: "order_sync_queue",
                kind: "transient",
                message: "writing <orders> failed & retried".into(),
            }],
            last_apply: now - 2.0,
            started: now - 300.0,
            binlog: Some(BinlogLine {
                read_lag_seconds: 1.25,
                sequence: 4711,
                stored_at: now - 0.5,
            }),
            leadership: Some(crate::sync::Leadership {
                leader: true,
                term: 3,
                since: now - 60.0,
            }),
        };
        let page = render(&snapshot, now, Some("127.0.0.1:13306"), "0.1.0");
        for part in [
            "<span id=\"version\">0.1.0</span>",
            "<span id=\"node\">127.0.0.1:13306</span>",
            "<td class=\"depth\" data-queue=\"customer_sync_queue\">3</td>",
            "data-seconds=\"75.500\">75.5 s</td>",
            "<td class=\"dead bad\" data-queue=\"customer_sync_queue\">1</td>",
            "<td class=\"applied\" data-queue=\"customer_sync_queue\">42</td>",
            "<span class=\"value\" id=\"throughput-now\">2.0</span>",
            "writing &lt;orders&gt; failed &amp; retried",
            "<meta http-equiv=\"refresh\" content=\"5\">",
            "<polyline points=",
            "<span id=\"binlog-lag\" data-seconds=\"1.250\">",
            "<span id=\"binlog-sequence\">4711</span>",
            "<span id=\"role\">leader</span> (lease term 3) for 60.0 s",
        ] {
            assert!(page.contains(part), "{part} missing in\n{page}");
        }
        assert!(!page.contains("<script"), "no script");
        let triggers = render(
            &Snapshot {
                binlog: None,
                leadership: None,
                ..snapshot.clone()
            },
            now,
            None,
            "0.1.0",
        );
        assert!(
            !triggers.contains("binlog"),
            "no binlog line under trigger capture"
        );
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing fetched"
        );
        let standby = render(
            &Snapshot {
                binlog: None,
                leadership: Some(crate::sync::Leadership {
                    leader: false,
                    term: 0,
                    since: now - 5.0,
                }),
                ..snapshot
            },
            now,
            None,
            "0.1.0",
        );
        assert!(
            standby.contains("<span id=\"role\">standby</span> (another worker reads"),
            "{standby}"
        );
    }
}
