"""Writing a simulation's results: ``results.json`` and a self-contained ``report.html`` with matplotlib charts.

Charts are PNG, base64-embedded, so the page opens offline. Labels are Japanese by default (IPAexGothic from
matplotlib-fontja, so any machine renders them), English with ``lang="en"``. This module must never compute a
result: it only draws and words what the runner measured.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from simulator.simulation.flows import FLOW_LABELS, MILESTONE_LABELS

__all__ = ["write_report"]

_KIND = {
    "registry": ("既存住基", "resident registry"),
    "municipal_cs": ("市町村CS", "municipal CS"),
    "prefectural_server": ("都道府県サーバ", "prefectural server"),
    "national_server": ("全国サーバ", "national server"),
    "atena": ("団体内統合宛名", "addressee system"),
    "business": ("業務システム", "business system"),
    "intermediate_server": ("中間サーバー・プラットフォーム", "intermediate-server platform"),
    "nws": ("情報提供ネットワークシステム", "NWS"),
    "card_management": ("個人番号カード管理システム", "card management system"),
    "portal": ("マイナポータル", "portal"),
    "staff": ("職員", "staff"),
}
_TEXT = {
    "title": ("jukisim シミュレーション結果", "jukisim simulation results"),
    "summary": ("概要", "Summary"),
    "throughput": ("処理件数（日別）", "Completed flows per day"),
    "queues": ("待ち行列の長さ（滞留件数）", "Queue lengths (backlog)"),
    "utilisation": ("稼働率", "Utilisation"),
    "latency": ("所要時間（経路別・端から端まで）", "Latency per hop and end to end"),
    "faults": ("障害と回復", "Faults and recovery"),
    "records": ("情報提供等記録・メッセージの計数", "Records and message counts"),
    "lost": ("消失メッセージ", "lost messages"),
    "hop": ("経路", "hop"),
    "flow": ("業務の流れ", "flow"),
    "count": ("件数", "count"),
    "day": ("日", "day"),
    "time": ("時刻", "time"),
    "backlog": ("滞留件数", "backlog"),
    "seconds": ("秒", "seconds"),
    "fault": ("障害", "fault"),
    "peak": ("最大滞留", "peak backlog"),
    "recovery": ("回復時間", "recovery time"),
    "drained": ("翌朝の開庁までに解消", "drained before the next opening"),
    "yes": ("はい", "yes"),
    "no": ("いいえ", "no"),
    "mode_model": ("コストモデル（実測コストによる抽象フロー）", "cost model (abstract flows, measured costs)"),
    "mode_real": ("実コンポーネント（署名・暗号・SQLite を実行）", "real components (signatures, encryption, SQLite)"),
    "p50": ("中央値", "median"),
    "none": ("なし", "none"),
}


def _t(key: str, lang: str) -> str:
    ja, en = _TEXT[key]
    return ja if lang == "ja" else en


def _station_label(name: str, lang: str) -> str:
    kind = name[:-2] if name.endswith(".*") else None
    if kind is None:
        from simulator.simulation.costmodel import kind_of

        kind = kind_of(name)
        prefix = name.split(".")[0] if not name.startswith(("jlis.", "nws.", "platform.")) else ""
        if name.startswith("jlis.prefectural_server."):
            prefix = name.rsplit(".", 1)[-1]
    else:
        prefix = "全団体" if lang == "ja" else "all"
    ja, en = _KIND.get(kind, (kind, kind))
    label = ja if lang == "ja" else en
    return f"{label}（{prefix}）" if prefix and lang == "ja" else (f"{label} ({prefix})" if prefix else label)


def _flow_label(flow: str, lang: str) -> str:
    ja, en = FLOW_LABELS.get(flow, (flow, flow))
    return ja if lang == "ja" else en


def _hop_label(label: str, lang: str) -> str:
    route, _, message = label.partition(" ")
    a, _, b = route.partition("→")
    index = 0 if lang == "ja" else 1
    return f"{_KIND.get(a, (a, a))[index]}→{_KIND.get(b, (b, b))[index]} {message}"


def _duration(seconds: float | None, lang: str) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} {'分' if lang == 'ja' else 'min'}"
    return f"{seconds / 3600:.1f} {'時間' if lang == 'ja' else 'h'}"


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _charts(result: dict[str, Any], lang: str) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with contextlib.suppress(ImportError):  # IPAexGothic, so Japanese labels render on any machine
        import matplotlib_fontja  # noqa: F401
    charts: dict[str, str] = {}
    start = datetime.fromisoformat(result["run"]["start"])
    bin_s = result["queues"]["bin_s"]

    by_day = result["throughput"].get("completed_by_day") or {}
    if by_day:
        fig, ax = plt.subplots(figsize=(10, 3.6))
        days = max(len(v) for v in by_day.values())
        xs: list[Any] = [start + timedelta(days=i) for i in range(days)]
        bottom = [0] * days
        for flow, values in by_day.items():
            values = list(values) + [0] * (days - len(values))
            ax.bar(xs, values, bottom=bottom, label=_flow_label(flow, lang), width=0.9)
            bottom = [a + b for a, b in zip(bottom, values, strict=True)]
        ax.set_ylabel(_t("count", lang))
        ax.legend(fontsize=7, ncol=2)
        fig.autofmt_xdate()
        charts["throughput"] = _png(fig)

    stations = result["queues"]["stations"]
    if stations:
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
        for name, info in stations.items():
            backlog = info["backlog"]
            if not backlog:
                continue
            xs = [start + timedelta(seconds=(i + 1) * bin_s) for i in range(len(backlog))]
            ax1.plot(xs, backlog, label=_station_label(name, lang), linewidth=1)
            ax2.plot(xs, [u * 100 for u in info["utilisation"]], label=_station_label(name, lang), linewidth=1)
        for fault in result.get("faults", []):
            a = datetime.fromisoformat(fault["start"])
            for ax in (ax1, ax2):
                ax.axvspan(a, a + timedelta(seconds=fault["duration_s"]), color="red", alpha=0.15)
        ax1.set_ylabel(_t("backlog", lang))
        ax2.set_ylabel(_t("utilisation", lang) + " (%)")
        ax1.legend(fontsize=7, ncol=2)
        fig.autofmt_xdate()
        charts["queues"] = _png(fig)

    hops = result["latency"]["hops"]
    if hops:
        ordered = sorted(hops.items(), key=lambda kv: kv[1]["p95_s"], reverse=True)[:25]
        fig, ax = plt.subplots(figsize=(10, max(3.0, 0.28 * len(ordered) + 1)))
        labels = [_hop_label(k, lang) for k, _ in ordered]
        ys = range(len(ordered))
        for key, colour, offset in (("p50_s", "#4c72b0", -0.25), ("p95_s", "#dd8452", 0.0),
                                    ("p99_s", "#c44e52", 0.25)):
            ax.barh([y + offset for y in ys], [max(v[key], 1e-6) for _, v in ordered], height=0.25, color=colour,
                    label=key[:-2])
        ax.set_yticks(list(ys), labels, fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(_t("seconds", lang))
        ax.invert_yaxis()
        ax.legend(fontsize=7)
        charts["latency"] = _png(fig)
    return charts


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(result: dict[str, Any], lang: str = "ja") -> str:
    charts = _charts(result, lang)
    run = result["run"]
    mode = _t("mode_real", lang) if run["mode"] == "real" else _t("mode_model", lang)
    lost = result["lost_messages"]
    summary_rows = [
        ["mode" if lang == "en" else "方式", mode],
        ["profile" if lang == "en" else "プロファイル",
         "national" if run.get("national") else str(run.get("profile") or run.get("municipality") or "")],
        ["start" if lang == "en" else "開始", run["start"]],
        ["days" if lang == "en" else "日数", str(run["days"])],
        ["seed" if lang == "en" else "乱数シード", str(run["seed"])],
        [_t("lost", lang), str(lost)],
        ["checks" if lang == "en" else "検査", "OK" if result["checks"].get("ok") else "NG"],
    ]
    if "performance" in result:
        summary_rows.append(["wall time" if lang == "en" else "実行時間",
                             f"{result['performance'].get('total_wall_s')} s"])
    parts = [f"<h2>{_t('summary', lang)}</h2>", _table(["", ""], summary_rows)]
    if "throughput" in charts:
        parts += [f"<h2>{_t('throughput', lang)}</h2>", f'<img alt="throughput" src="data:image/png;base64,'
                  f'{charts["throughput"]}">']
    flows = result["throughput"]
    parts.append(_table([_t("flow", lang), "started" if lang == "en" else "開始", "completed" if lang == "en"
                         else "完了"],
                        [[_flow_label(f, lang), str(n), str(flows["completed"].get(f, 0))]
                         for f, n in flows["started"].items()]))
    if "queues" in charts:
        parts += [f"<h2>{_t('queues', lang)} / {_t('utilisation', lang)}</h2>",
                  f'<img alt="queues" src="data:image/png;base64,{charts["queues"]}">']
    util = result["utilisation"]
    parts.append(_table(["", _t("utilisation", lang), "busy (s)"],
                        [[_station_label(k if "." in k else f"{k}.*", lang), f"{v['utilisation'] * 100:.4f} %",
                          f"{v['busy_s']:.1f}"] for k, v in util.items()]))
    parts.append(f"<h2>{_t('latency', lang)}</h2>")
    if "latency" in charts:
        parts.append(f'<img alt="latency" src="data:image/png;base64,{charts["latency"]}">')
    e2e = result["latency"]["end_to_end"]
    parts.append(_table([_t("flow", lang), "n", "p50", "p95", "p99", "max"],
                        [[_flow_label(f, lang), str(v["n"]), _duration(v["p50_s"], lang), _duration(v["p95_s"], lang),
                          _duration(v["p99_s"], lang), _duration(v["max_s"], lang)] for f, v in e2e.items()]))
    milestones = result["latency"].get("milestones") or {}
    if milestones:
        rows = []
        for key, v in milestones.items():
            flow, _, milestone = key.partition(":")
            ja, en = MILESTONE_LABELS.get(milestone, (milestone, milestone))
            rows.append([f"{_flow_label(flow, lang)} — {ja if lang == 'ja' else en}", str(v["n"]),
                         _duration(v["p50_s"], lang), _duration(v["p95_s"], lang), _duration(v["max_s"], lang)])
        parts.append(_table([_t("flow", lang), "n", "p50", "p95", "max"], rows))
    parts.append(f"<h2>{_t('faults', lang)}</h2>")
    faults = result.get("faults") or []
    if faults:
        parts.append(_table(
            [_t("fault", lang), "start", _t("peak", lang), _t("recovery", lang), _t("drained", lang)],
            [[f["label"], f["start"], str(f.get("backlog_peak", "—")), _duration(f.get("recovery_s"), lang),
              _t("yes", lang) if f.get("drained_before_next_opening") else _t("no", lang)] for f in faults]))
    else:
        parts.append(f"<p>{_t('none', lang)}</p>")
    parts.append(f"<h2>{_t('records', lang)}</h2>")
    parts.append(_table(["", _t("count", lang)],
                        [[k, str(v)] for k, v in {**result.get("records", {}), **result["messages"]}.items()]))
    style = ("body{font-family:'Noto Sans CJK JP','IPAexGothic',sans-serif;margin:2em;max-width:1100px}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;"
             "font-size:13px}img{max-width:100%}")
    return (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{_t("title", lang)}</title>'
            f"<style>{style}</style></head><body><h1>{_t('title', lang)}</h1>{''.join(parts)}</body></html>\n")


def write_report(result: dict[str, Any], out: Path, lang: str = "ja") -> tuple[Path, Path]:
    """Write ``results.json`` and ``report.html`` under ``out``; returns both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "results.json"
    json_path.write_text(json.dumps(_clean(result), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    html_path = out / "report.html"
    html_path.write_text(render_html(result, lang), encoding="utf-8")
    return json_path, html_path


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write null instead."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
