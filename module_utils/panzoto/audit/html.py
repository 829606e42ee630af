"""The audit as one self-contained HTML page: inline CSS and SVG charts, no external assets.

Every number shown carries a `data-metric` attribute naming where it comes from in the
JSON report, so a test (or a person) can check the page against the JSON.
"""

from __future__ import annotations

from datetime import date, timedelta
from html import escape

from ansible.module_utils.panzoto.audit.reports import (
    DIAGNOSIS_REPORT,
    percent,
    processor_view_line,
    readable_age,
    readable_time,
    seconds_text,
    share,
    shown,
)

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
STATUS_COLOURS = {"completed": "#59a14f", "failed": "#e15759", "pending": "#edc948", "processing": "#4e79a7"}
CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.status { display: inline-block; padding: 0.2em 0.7em; border-radius: 0.3em; color: #fff; font-weight: bold; }
.status-ok { background: #2e7d32; } .status-breached { background: #c62828; } .status-error { background: #6d4c41; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 1em 0; }
.card { border: 1px solid #ddd; border-radius: 0.4em; padding: 0.6em 1em; min-width: 8em; }
.card .value { font-size: 1.6em; font-weight: bold; } .card .label { color: #555; font-size: 0.9em; }
.charts { display: flex; flex-wrap: wrap; gap: 2em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; }
code.id { white-space: nowrap; font-size: 0.9em; }
.breached { color: #c62828; font-weight: bold; } .ok { color: #2e7d32; }
pre { background: #f4f4f4; padding: 0.6em; overflow-x: auto; }
.legend span { display: inline-block; margin-right: 1em; font-size: 0.9em; }
.legend i { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; }
"""


def _e(value: object) -> str:
    return escape(shown(value), quote=True)


def _id(value: str | None) -> str:
    return f'<code class="id">{_e(value or "(none)")}</code>'


def _num(value: object, metric: str) -> str:
    return f'<span data-metric="{_e(metric)}">{_e(value)}</span>'


def bar_chart(chart_id: str, title: str, bars: list[tuple[str, int, str]]) -> str:
    """Horizontal bars (label, value, colour) as inline SVG."""
    width, label_width, row = 460, 150, 24
    height = row * max(len(bars), 1) + 10
    top = max((value for _, value, _ in bars), default=0) or 1
    parts = [
        f'<svg id="{chart_id}" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{_e(title)}</title>'
    ]
    for index, (label, value, colour) in enumerate(bars):
        y = 5 + index * row
        length = round((width - label_width - 50) * value / top)
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 15}" text-anchor="end" font-size="12">{_e(label)}</text>'
            f'<rect x="{label_width}" y="{y + 2}" width="{length}" height="{row - 6}" fill="{colour}">'
            f"<title>{_e(label)}: {value}</title></rect>"
            f'<text x="{label_width + length + 4}" y="{y + 15}" font-size="12">{value}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def every_day(days: list[str]) -> list[str]:
    """The days from the first to the last, gaps filled."""
    if not days:
        return []
    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def stacked_days_chart(days: list[dict], colours: dict[str, str]) -> str:
    """Failures per day, one stacked column per day, one colour per category."""
    by_day: dict[str, dict[str, int]] = {}
    for entry in days:
        by_day.setdefault(entry["day"], {})[entry["category"]] = entry["count"]
    ordered = every_day(sorted(by_day))[-31:]  # days without failures too, at most a month of columns
    width, height, bottom = 640, 220, 180
    column = max(min((width - 40) // max(len(ordered), 1), 60), 8)
    top = max((sum(by_day.get(day, {}).values()) for day in ordered), default=0) or 1
    parts = [
        f'<svg id="chart-failures-per-day" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        "<title>Failures per day by category</title>",
        f'<line x1="30" y1="{bottom}" x2="{width}" y2="{bottom}" stroke="#999"/>',
        f'<text x="26" y="{bottom - (bottom - 20) + 4}" text-anchor="end" font-size="11">{top}</text>',
    ]
    for index, day in enumerate(ordered):
        x, y = 34 + index * column, bottom
        for category, count in sorted(by_day.get(day, {}).items()):
            bar = (bottom - 20) * count / top
            y -= bar
            parts.append(
                f'<rect x="{x}" y="{y:.1f}" width="{column - 4}" height="{bar:.1f}" '
                f'fill="{colours.get(category, "#999")}">'
                f"<title>{_e(day)} {_e(category)}: {count}</title></rect>"
            )
        parts.append(
            f'<text x="{x + (column - 4) / 2:.1f}" y="{bottom + 14}" text-anchor="middle" font-size="10">'
            f"{_e(day[5:])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def trend_chart(history: list[dict]) -> str:
    """The last runs: failed and stuck (left scale) and success rate (right scale, percent)."""
    runs = [entry for entry in history if entry.get("status") != "error"]
    width, height, left, right, top_y, bottom = 640, 220, 40, 600, 20, 180
    peak = max((max(r.get("failed", 0), r.get("pending_stuck", 0)) for r in runs), default=0) or 1
    step = (right - left) / max(len(runs) - 1, 1)

    def series(key: str, scale: float, colour: str, label: str) -> str:
        points = [(left + i * step, bottom - (bottom - top_y) * (r.get(key) or 0) / scale) for i, r in enumerate(runs)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in points)
        line = f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2">'
        return f"{line}<title>{label}</title></polyline>{dots}"

    parts = [
        f'<svg id="chart-trend" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>Trend of the last runs</title>',
        f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999"/>',
        f'<text x="{left - 4}" y="{top_y + 4}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{right + 4}" y="{top_y + 4}" font-size="11">100%</text>',
    ]
    if runs:
        parts.append(series("failed", peak, "#e15759", "failed jobs"))
        parts.append(series("pending_stuck", peak, "#edc948", "stuck pending jobs"))
        rates = [{"rate": (r.get("success_rate") or 0) * 100} for r in runs]
        parts.append(series_from(rates, left, step, bottom, top_y))
        parts.append(
            f'<text x="{left}" y="{bottom + 16}" font-size="10">{_e(readable_time(runs[0]["at"]))}</text>'
            f'<text x="{right}" y="{bottom + 16}" text-anchor="end" font-size="10">'
            f"{_e(readable_time(runs[-1]['at']))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def series_from(rates: list[dict], left: float, step: float, bottom: float, top_y: float) -> str:
    points = [(left + i * step, bottom - (bottom - top_y) * r["rate"] / 100) for i, r in enumerate(rates)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return (
        f'<polyline points="{path}" fill="none" stroke="#59a14f" stroke-width="2" stroke-dasharray="5,3">'
        "<title>success rate</title></polyline>"
    )


def render_html(doc: dict, history: list[dict], diagnosis_exists: bool) -> str:
    status = doc["status"]
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Job audit of {_e(doc['table'])}: {_e(status)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>Job audit of {_e(doc['table'])}</h1>\n"
        f'<p><span class="status status-{_e(status)}" id="run-status">{_e(status)}</span> '
        f"at {_e(readable_time(doc['now']))}"
    )
    if status != "error":
        head += f" · {_num(doc['total_items'], 'total_items')} items scanned"
    head += "</p>\n"
    if diagnosis_exists:
        head += f'<p><a href="{DIAGNOSIS_REPORT}">Job diagnosis report</a> (the failed jobs examined one by one)</p>\n'
    if status == "error":
        body = f'<p class="breached" id="run-error">The audit could not run: {_e(doc["error"])}</p>\n'
        return head + body + _next_steps(doc) + "</body>\n</html>\n"
    return head + _findings(doc, history) + _next_steps(doc) + _cost(doc) + "</body>\n</html>\n"


def _findings(doc: dict, history: list[dict]) -> str:
    by_status, completed = doc["by_status"], doc["completed"]
    total = sum(by_status.values())
    colours = {c["category"]: PALETTE[i % len(PALETTE)] for i, c in enumerate(doc["categories"])}
    cards = [
        (total, "jobs", "by_status.total"),
        (by_status["failed"], "failed", "by_status.failed"),
        (doc["pending_stuck"]["count"], "stuck pending", "pending_stuck.count"),
        (doc["processing_stuck"]["count"], "stuck processing", "processing_stuck.count"),
        (doc["pending_invisible"]["count"], "pending the processor cannot see", "pending_invisible.count"),
        (doc["failed_recent"], f"failed in {doc['recent_window']}", "failed_recent"),
        (percent(completed["success_rate"]), "success rate", "completed.success_rate"),
        (
            seconds_text(completed["processing_seconds_average"]),
            "avg processing",
            "completed.processing_seconds_average",
        ),
        (seconds_text(completed["processing_seconds_p95"]), "p95 processing", "completed.processing_seconds_p95"),
    ]
    out = ['<div class="cards">']
    out += [
        f'<div class="card"><div class="value">{_num(value, metric)}</div><div class="label">{_e(label)}</div></div>'
        for value, label, metric in cards
    ]
    out.append("</div>")
    if doc["breached"]:
        out.append(
            '<p class="breached">Thresholds breached: '
            + _e("; ".join(item["message"] for item in doc["breached"]))
            + "</p>"
        )
    else:
        out.append('<p class="ok">All thresholds within limits.</p>')
    out.append('<h2>Status and error categories</h2>\n<div class="charts">')
    out.append(
        bar_chart(
            "chart-status",
            "Jobs per status",
            [(s, n, STATUS_COLOURS.get(s, "#999")) for s, n in by_status.items()],
        )
    )
    out.append(
        bar_chart(
            "chart-categories",
            "Failed jobs per category",
            [(c["category"], c["count"], colours[c["category"]]) for c in doc["categories"]],
        )
    )
    out.append("</div>")
    out.append(
        '<div class="scroll"><table id="status-table">'
        '<tr><th>status</th><th class="num">jobs</th><th class="num">share</th></tr>'
    )
    out += [
        f'<tr><td>{_e(s)}</td><td class="num">{_num(n, "by_status." + s)}</td>'
        f'<td class="num">{share(n, total)}</td></tr>'
        for s, n in by_status.items()
    ]
    out.append("</table></div>")
    out.append("<h2>Failures per day by category</h2>")
    out.append(stacked_days_chart(doc["failures_by_day"], colours))
    out.append(
        '<p class="legend">'
        + "".join(f'<span><i style="background:{colour}"></i>{_e(name)}</span>' for name, colour in colours.items())
        + "</p>"
    )
    out.append(f"<h2>Trend of the last {len(history)} runs</h2>")
    out.append(trend_chart(history))
    out.append(
        '<p class="legend"><span><i style="background:#e15759"></i>failed</span>'
        '<span><i style="background:#edc948"></i>stuck pending</span>'
        '<span><i style="background:#59a14f"></i>success rate (dashed, right scale)</span></p>'
    )
    out.append(_thresholds(doc))
    out.append(_categories(doc))
    out.append(_lists(doc))
    return "\n".join(out) + "\n"


def _verdict(result: dict) -> str:
    return "breached" if result["breached"] else "waived" if result["waived"] else "ok"


def _thresholds(doc: dict) -> str:
    rows = [
        f'<tr><td>{_e(t["name"])}</td><td class="num">{_num(t["value"], "threshold." + t["name"] + ".value")}</td>'
        f'<td class="num">{_num(t["limit"], "threshold." + t["name"] + ".limit")}</td>'
        f'<td class="{_verdict(t)}">{_verdict(t)}</td></tr>'
        for t in doc["threshold_results"]
    ]
    return (
        '<h2>Thresholds</h2>\n<div class="scroll"><table id="thresholds">'
        '<tr><th>threshold</th><th class="num">value</th><th class="num">limit</th><th>result</th></tr>'
        + "".join(rows)
        + "</table></div>"
    )


def _categories(doc: dict) -> str:
    if not doc["categories"]:
        return "<h2>Error categories</h2>\n<p>No failed jobs.</p>"
    rows = []
    for c in doc["categories"]:
        ids = " ".join(_id(job_id) for job_id in c["example_job_ids"])
        rows.append(
            f'<tr><td>{_e(c["category"])}</td><td class="num">{_num(c["count"], "category." + c["category"])}</td>'
            f"<td>{_e(c['solution'])}</td><td>{'yes' if c['deletable'] else 'no'}</td>"
            f"<td>{_e(readable_time(c['oldest_failure']))} to {_e(readable_time(c['newest_failure']))}</td>"
            f"<td>{ids}</td></tr>"
        )
    return (
        '<h2>Error categories</h2>\n<div class="scroll"><table id="categories">'
        '<tr><th>category</th><th class="num">jobs</th>'
        "<th>solution</th><th>cleanup may delete</th><th>failed between</th><th>example job ids</th></tr>"
        + "".join(rows)
        + "</table></div>"
    )


def _lists(doc: dict) -> str:
    stuck, future, repeated, malformed = (
        doc["pending_stuck"],
        doc["future_dated"],
        doc["repeated_failures"],
        doc["malformed"],
    )
    out = [
        f"<h2>Stuck pending jobs ({_num(stuck['count'], 'pending_stuck.count')},"
        f" waiting over {_e(doc['stuck_after'])})</h2>"
    ]
    if stuck["jobs"]:
        out.append('<div class="scroll"><table id="stuck-jobs"><tr><th>job id</th><th>created</th><th>age</th></tr>')
        out += [
            f"<tr><td>{_id(job['job_id'])}</td><td>{_e(readable_time(job['created_at']))}</td>"
            f"<td>{_e(readable_age(job['age_seconds']))}</td></tr>"
            for job in stuck["jobs"]
        ]
        out.append("</table></div>")
    processing = doc["processing_stuck"]
    out.append(
        f"<h2>Stuck in processing ({_num(processing['count'], 'processing_stuck.count')},"
        f" over {_e(doc['processing_stuck_after'])})</h2>"
    )
    if processing["jobs"]:
        out.append(
            '<div class="scroll"><table id="stuck-processing"><tr><th>job id</th><th>since</th><th>age</th></tr>'
        )
        out += [
            f"<tr><td>{_id(job['job_id'])}</td><td>{_e(readable_time(job['since']))}</td>"
            f"<td>{_e(readable_age(job['age_seconds']))}</td></tr>"
            for job in processing["jobs"]
        ]
        out.append("</table></div>")
    out.append(f"<p>{_e(processor_view_line(doc['pending_invisible']))}</p>")
    if future["count"]:
        out.append(
            f"<h2>Dated in the future ({_num(future['count'], 'future_dated.count')}):"
            " clock skew, not counted as recent</h2>"
        )
        out.append(
            '<div class="scroll"><table id="future-dated"><tr><th>job id</th><th>dated</th><th>ahead by</th></tr>'
        )
        out += [
            f"<tr><td>{_id(job['job_id'])}</td><td>{_e(readable_time(job['dated']))}</td>"
            f"<td>{_e(readable_age(job['ahead_seconds']))}</td></tr>"
            for job in future["examples"]
        ]
        out.append("</table></div>")
    out.append(
        f"<h2>Audio files failing in more than one job ({_num(repeated['count'], 'repeated_failures.count')})</h2>"
    )
    if repeated["audio_files"]:
        out.append(
            '<div class="scroll"><table id="repeated-audio">'
            '<tr><th>audio file</th><th class="num">failures</th><th>jobs</th></tr>'
        )
        out += [
            f'<tr><td>{_id(a["audio_file_id"])}</td><td class="num">{a["failures"]}</td>'
            f"<td>{' '.join(_id(j) for j in a['job_ids'])}</td></tr>"
            for a in repeated["audio_files"]
        ]
        out.append("</table></div>")
    reasons = ", ".join(f"{reason} {n}" for reason, n in malformed["by_reason"].items())
    out.append(
        f"<p>Malformed items: {_num(malformed['count'], 'malformed.count')}{_e(': ' + reasons) if reasons else ''}</p>"
    )
    return "\n".join(out)


def _next_steps(doc: dict) -> str:
    out = ["<h2>Next steps</h2>"]
    if not doc["next_steps"]:
        out.append("<p>Nothing to do.</p>")
    for step in doc["next_steps"]:
        out.append(f"<p>{_e(step['why'])}:</p>")
        if step["command"]:
            out.append(f"<pre><code>{_e(step['command'])}</code></pre>")
    return "\n".join(out) + "\n"


def _cost(doc: dict) -> str:
    requests = doc["requests"]
    return (
        f"<p><small>Scan cost: {requests['pages']} pages, {requests['http_requests']} HTTP requests,"
        f" {requests['segments']} segments.</small></p>\n"
    )
