"""Turns `bench/results.json` into Markdown: the targets with a verdict each, then every figure.

`run_all.py` prints this and writes it into BENCHMARKS.md between the figure markers. It can also be
run on its own to re-render a results file:

    python bench/report.py bench/results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIGURES_START = "<!-- figures:start (written by bench/run_all.py; edit around it, not inside) -->"
FIGURES_END = "<!-- figures:end -->"

GPUBOT_APPS = ("gpubot-8gpu", "gpubot-64gpu")
COMMAND_KINDS = ("status", "claim", "release", "help", "realtime")
# The commands that commit a change: the durable floor is their like-for-like floor.
WRITE_KINDS = ("claim", "release")
FLOOR_DEFAULT, FLOOR_TUNED, FLOOR_DURABLE = "floor-default", "floor-tuned", "floor-durable"
RATIO_TARGET = 3.0
DEFAULT_SPEEDUP_TARGET = 4.0
ACK_LIMIT_MS = 3000.0
HOME_TARGET_MS = 50.0
THROUGHPUT_TARGET = 300.0
READY_TARGET_MS = 2000.0
RSS_TARGET_MIB = 90.0
RSS_GROWTH_TARGET_MIB = 5.0
VIEW_TARGET_MS = 20.0
NVML_TARGET_MS = 10.0
NVML_SPEEDUP_TARGET = 20.0
EXPIRY_TARGET_MS = 5000.0


@dataclass(frozen=True)
class Verdict:
    """One target, what was measured against it, and whether it was met (None: not measured here)."""

    target: str
    measured: str
    met: bool | None

    @property
    def mark(self) -> str:
        """met / **missed** / not measured."""
        return {True: "met", False: "**missed**", None: "not measured"}[self.met]


def _latency_rows(results: dict[str, Any]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {(row["app"], row["kind"], row["in_flight"]): row for row in results["load"]["latency"]}


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def verdicts(results: dict[str, Any]) -> list[Verdict]:
    """Every target of issue 5, judged on this run's figures."""
    rows = _latency_rows(results)
    in_flights = sorted({key[2] for key in rows})
    out = _ratio_verdicts(rows, in_flights, FLOOR_TUNED, COMMAND_KINDS, "tuned floor's")
    out.extend(_versus_default(rows, in_flights))
    out.extend(
        _ratio_verdicts(rows, in_flights, FLOOR_DURABLE, WRITE_KINDS, "durable floor's (ours: the floor of a write)")
    )
    worst_ack = max(rows.values(), key=lambda row: row["ack"]["p99_ms"])
    over = sum(row["acks_over_3s"] for row in rows.values() if row["app"] in GPUBOT_APPS)
    out.append(
        Verdict(
            "ack p99 < 3 s, every envelope type, any load",
            f"worst gpubot ack p99 {_ms(max(r['ack']['p99_ms'] for k, r in rows.items() if k[0] in GPUBOT_APPS))} ms"
            f" (worst of all apps: {worst_ack['app']} {worst_ack['kind']}@{worst_ack['in_flight']}"
            f" {_ms(worst_ack['ack']['p99_ms'])} ms); {over} gpubot acks over 3 s",
            all(r["ack"]["p99_ms"] < ACK_LIMIT_MS for k, r in rows.items() if k[0] in GPUBOT_APPS),
        )
    )
    for app in GPUBOT_APPS:
        homes = [rows[key] for key in sorted(rows) if key[0] == app and key[1] == "home"]
        if homes:
            out.append(
                Verdict(
                    f"Home publish p99 ≤ {HOME_TARGET_MS:g} ms after the event ({app})",
                    ", ".join(f"{r['in_flight']} in flight: {_ms(r['reply']['p99_ms'])} ms" for r in homes),
                    all(r["reply"]["p99_ms"] <= HOME_TARGET_MS and r["lost"] == 0 for r in homes),
                )
            )
    for run in results["load"]["throughput"]:
        if run["app"] in GPUBOT_APPS:
            out.append(
                Verdict(
                    f"≥ {THROUGHPUT_TARGET:g} commands/s sustained, no error, none lost",
                    f"{run['commands_per_s']:.0f}/s over {run['seconds']:.0f} s at {run['in_flight']} in flight,"
                    f" {run['errors']} errors, {run['lost']} lost",
                    run["commands_per_s"] >= THROUGHPUT_TARGET and run["errors"] == 0 and run["lost"] == 0,
                )
            )
    start = results["startup"]["gpubot"]
    ready_p99 = start["restart"]["ready_ms"]["p99_ms"]
    empty_ms = start["empty_database"]["ready_s"] * 1000
    out.append(
        Verdict(
            f"ready ≤ {READY_TARGET_MS / 1000:g} s after start",
            f"restart p99 {_ms(ready_p99)} ms; first start on an empty database {_ms(empty_ms)} ms",
            ready_p99 <= READY_TARGET_MS and empty_ms <= READY_TARGET_MS,
        )
    )
    memory = results["load"]["memory"]
    steady = max(memory["rss_after_mib"], memory["rss_after_rounds_mib"].get(memory["app"], 0.0))
    out.append(
        Verdict(
            f"RSS ≤ {RSS_TARGET_MIB:g} MB steady, growth < {RSS_GROWTH_TARGET_MIB:g} MB"
            f" over {memory['commands']:,} commands",
            f"{memory['rss_before_mib']:.1f} → {memory['rss_after_mib']:.1f} MiB ({memory['growth_mib']:+.1f});"
            f" after start {memory['rss_after_start_mib'].get(memory['app'], 0):.1f} MiB ({memory['app']})",
            steady <= RSS_TARGET_MIB and memory["growth_mib"] < RSS_GROWTH_TARGET_MIB and memory["errors"] == 0,
        )
    )
    views = {(row["view"], row["gpus"]): row for row in results["views"]["views"]}
    big = [views[(view, 256)] for view in ("dashboard", "home") if (view, 256) in views]
    out.append(
        Verdict(
            f"dashboard and Home view for 256 GPUs built in ≤ {VIEW_TARGET_MS:g} ms",
            ", ".join(f"{row['view']} p99 {_ms(row['build']['p99_ms'])} ms ({row['blocks']} blocks)" for row in big),
            all(row["build"]["p99_ms"] <= VIEW_TARGET_MS and row["within_limit"] for row in big),
        )
    )
    fleet = [row for row in results["views"]["views"] if row["view"].startswith("fleet ")]
    if fleet:
        out.append(
            Verdict(
                f"fleet views for 32 hosts of 8 GPUs built in ≤ {VIEW_TARGET_MS:g} ms within Block Kit's limits",
                ", ".join(
                    f"{row['view']} p99 {_ms(row['build']['p99_ms'])} ms ({row['blocks']} blocks)" for row in fleet
                ),
                all(row["build"]["p99_ms"] <= VIEW_TARGET_MS and row["within_limit"] for row in fleet),
            )
        )
    out.append(nvml_verdict(results["telemetry"]["nvml"]))
    expiry = results["expiry"]
    warn, expire = expiry["warning_dm_late"], expiry["expiry_dm_late"]
    missing = expiry["missing_dms"]["warning"] + expiry["missing_dms"]["expiry"]
    out.append(
        Verdict(
            f"warnings and expiries ≤ {EXPIRY_TARGET_MS / 1000:g} s late at p99 ({expiry['claims']} claims)",
            f"warning DM p99 {_ms(warn['p99_ms'] if warn else None)} ms, expiry DM p99"
            f" {_ms(expire['p99_ms'] if expire else None)} ms late; {missing} missing",
            bool(warn and expire and missing == 0)
            and warn["p99_ms"] <= EXPIRY_TARGET_MS
            and expire["p99_ms"] <= EXPIRY_TARGET_MS,
        )
    )
    return out


def nvml_verdict(nvml: dict[str, Any]) -> Verdict:
    """The NVML target, judged on `telemetry_cost.nvml_backend`'s figures (not measured where it was skipped)."""
    target = f"NVML full sample ≤ {NVML_TARGET_MS:g} ms and ≥ {NVML_SPEEDUP_TARGET:g}× faster than nvidia-smi -q -x"
    if "skipped" in nvml:
        return Verdict(target, nvml["skipped"], None)
    speedup = nvml.get("nvidia_smi_over_nvml")
    sample_p99 = nvml["sample"]["p99_ms"]
    measured = f"{_ms(sample_p99)} ms p99 for {nvml['gpus']} GPUs and {nvml['processes']} processes; " + (
        f"nvidia-smi {speedup:g}× slower (p50s)" if speedup is not None else nvml["nvidia_smi"]["skipped"]
    )
    if sample_p99 > NVML_TARGET_MS:
        return Verdict(target, measured, False)
    # Without nvidia-smi beside it, half of the target could not be measured.
    return Verdict(target, measured, None if speedup is None else speedup >= NVML_SPEEDUP_TARGET)


def _ratio_verdicts(
    rows: dict[tuple[str, str, int], dict[str, Any]],
    in_flights: list[int],
    floor_app: str,
    kinds: Iterable[str],
    floor_label: str,
) -> list[Verdict]:
    # Reply p99 of each of `kinds` within RATIO_TARGET× the floor's /gpu reply p99, per load.
    out = []
    for in_flight in in_flights:
        floor = rows.get((floor_app, "status", in_flight))
        if floor is None:
            continue
        floor_p99 = floor["reply"]["p99_ms"]
        parts, met = [], True
        for kind in kinds:
            for app in GPUBOT_APPS:
                row = rows.get((app, kind, in_flight))
                if row is None:
                    continue
                ratio = row["reply"]["p99_ms"] / floor_p99
                ok = ratio <= RATIO_TARGET and row["lost"] == 0 and row["errors"] == 0
                met = met and ok
                short = app.removeprefix("gpubot-")
                parts.append(f"{kind}/{short} {ratio:.1f}×{'' if ok else ' ✗'}")
        out.append(
            Verdict(
                f"reply p99 ≤ {RATIO_TARGET:g}× {floor_label} ({_ms(floor_p99)} ms), {in_flight} in flight, none lost",
                ", ".join(parts),
                met,
            )
        )
    return out


def _versus_default(rows: dict[tuple[str, str, int], dict[str, Any]], in_flights: list[int]) -> list[Verdict]:
    # What the ratio target implies ("at least 4× faster than a default Bolt app"), judged on its own.
    parts, met = [], True
    for in_flight in in_flights:
        default = rows.get((FLOOR_DEFAULT, "status", in_flight))
        if default is None:
            continue
        speedups = [
            (default["reply"]["p99_ms"] / rows[(app, kind, in_flight)]["reply"]["p99_ms"], kind, app)
            for kind in COMMAND_KINDS
            for app in GPUBOT_APPS
            if (app, kind, in_flight) in rows
        ]
        slowest = min(speedups)
        met = met and slowest[0] >= DEFAULT_SPEEDUP_TARGET
        parts.append(
            f"{in_flight} in flight: {slowest[0]:.1f}× at worst ({slowest[1]}, {slowest[2].removeprefix('gpubot-')})"
        )
    return [
        Verdict(
            f"reply p99 ≥ {DEFAULT_SPEEDUP_TARGET:g}× faster than the default floor's (implied)", "; ".join(parts), met
        )
    ]


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _floor_kind(kind: str) -> str:
    # The floors answer every /gpu alike, so their status row is the floor of every command and form
    # answered in the ack; their Home publish is the floor of everything answered by a Web API call.
    return "home" if kind in ("home", "button") else "status"


def _latency_table(results: dict[str, Any], kinds: Iterable[str], title: str) -> list[str]:
    rows = _latency_rows(results)
    apps = (FLOOR_DEFAULT, FLOOR_TUNED, *GPUBOT_APPS)
    body = []
    for kind in kinds:
        for in_flight in sorted({key[2] for key in rows}):
            floor = rows.get((FLOOR_TUNED, _floor_kind(kind), in_flight))
            default = rows.get((FLOOR_DEFAULT, _floor_kind(kind), in_flight))
            cells = [kind, str(in_flight)]
            present = False
            for app in apps:
                row = rows.get((app, kind if app in GPUBOT_APPS else _floor_kind(kind), in_flight))
                if row is None:
                    cells.append("–")
                    continue
                present = present or app in GPUBOT_APPS
                text = f"{_ms(row['reply']['p50_ms'])} / {_ms(row['reply']['p99_ms'])}"
                if app in GPUBOT_APPS and floor is not None and default is not None:
                    p99 = row["reply"]["p99_ms"]
                    text += f" ({p99 / floor['reply']['p99_ms']:.1f}× · {p99 / default['reply']['p99_ms']:.2f}×)"
                if row["lost"] or row["errors"]:
                    text += f" ⚠ {row['errors']} errors, {row['lost']} lost"
                cells.append(text)
            if present:
                body.append(cells)
    return [
        f"**{title}** — p50 / p99 in ms; (a× · b×) is gpubot's p99 over the tuned floor's and over the default"
        " floor's at the same load",
        "",
        *_table(["kind", "in flight", "default floor", "tuned floor", "gpubot, 8 GPUs", "gpubot, 64 GPUs"], body),
    ]


def _writes_table(results: dict[str, Any]) -> list[str]:
    rows = _latency_rows(results)
    body = []
    for kind in WRITE_KINDS:
        for in_flight in sorted({key[2] for key in rows}):
            tuned, durable = (
                rows.get((FLOOR_TUNED, "status", in_flight)),
                rows.get((FLOOR_DURABLE, "status", in_flight)),
            )
            for app in GPUBOT_APPS:
                row = rows.get((app, kind, in_flight))
                if row is None or tuned is None or durable is None:
                    continue
                p99 = row["reply"]["p99_ms"]
                body.append(
                    [
                        kind,
                        str(in_flight),
                        f"{_ms(tuned['reply']['p50_ms'])} / {_ms(tuned['reply']['p99_ms'])}",
                        f"{_ms(durable['reply']['p50_ms'])} / {_ms(durable['reply']['p99_ms'])}",
                        f"{_ms(row['reply']['p50_ms'])} / {_ms(p99)} ({p99 / tuned['reply']['p99_ms']:.1f}×"
                        f" · {p99 / durable['reply']['p99_ms']:.1f}×)",
                    ]
                )
    return [
        "**Writes against the durable floor** (the tuned floor plus one durable SQLite commit per command) —"
        " p50 / p99 in ms; (a× · d×) is gpubot's p99 over the tuned floor's and over the durable floor's",
        "",
        *_table(["kind", "in flight", "tuned floor", "durable floor", "gpubot, 64 GPUs"], body),
    ]


def _cpu_table(results: dict[str, Any]) -> list[str]:
    rows = [row for row in results["load"]["latency"] if row["in_flight"] == 50]
    body = [
        [
            row["app"],
            row["kind"],
            f"{row['app_cpu_ms_per_envelope']:.2f}",
            f"{row['harness_cpu_pct']:.0f} %",
            _ms(row["ack"]["p99_ms"]),
        ]
        for row in rows
    ]
    return _table(["app", "kind", "app CPU ms per envelope", "harness CPU", "ack p99 ms"], body)


def render(results: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    machine = results["machine"]
    packages = machine["packages"]
    lines = [
        f"Run {results['finished_at']} on {machine['cpu_model']}, {machine['cores']} cores,"
        f" {machine['memory_gib']} GiB, Python {machine['python']}, {machine['platform']};"
        f" slack_bolt {packages.get('slack_bolt', '?')}, slack_sdk {packages.get('slack_sdk', '?')},"
        f" SQLAlchemy {packages.get('SQLAlchemy', '?')}; gpubot at {machine['git_commit']}"
        f"{' (with uncommitted changes)' if machine['git_dirty'] else ''}."
        f" One fsync of 4 KiB in {machine['fsync_4kib']['directory']}: {_ms(machine['fsync_4kib']['p50_ms'])} ms p50,"
        f" {_ms(machine['fsync_4kib']['p99_ms'])} ms p99."
        f" Load average {machine['loadavg_before']} before, {machine['loadavg_after']} after"
        f"{' — QUICK (smoke) run, figures not meaningful' if results['quick'] else ''}.",
        "",
        "### Targets",
        "",
        *_table(["target", "measured", "verdict"], ([v.target, v.measured, v.mark] for v in verdicts(results))),
        "",
        "### Reply latency (slash commands answer in the ack, so ack = reply)",
        "",
        *_latency_table(results, ("status", "help", "realtime", "claim", "release"), "envelope sent → reply received"),
        "",
        *_writes_table(results),
        "",
        *_latency_table(results, ("home",), "Home tab: app_home_opened sent → views.publish received"),
        "",
        *_latency_table(
            results,
            ("button", "form"),
            "Interactive: Claim GPUs… clicked → views.open received (button); claim form submitted without a"
            " purpose → ack with the field error (form). The floors' columns are their Home publish and /gpu ack",
        ),
        "",
        "Ack latency of the envelopes answered by a Web API call, p50 / p99 ms: "
        + ", ".join(
            f"{row['app']} {row['kind']}@{row['in_flight']} {_ms(row['ack']['p50_ms'])} / {_ms(row['ack']['p99_ms'])}"
            for row in results["load"]["latency"]
            if row["kind"] in ("home", "button")
        ),
        "",
        "CPU at 50 in flight (the app's from /proc, per envelope; the harness's share of one core):",
        "",
        *_cpu_table(results),
        "",
        "### Throughput (closed loop, 50 in flight, the command mix " + ", ".join(results["load"]["plan"]["mix"]) + ")",
        "",
        *_table(
            ["app", "commands/s", "seconds", "errors", "lost", "reply p50 / p99 ms", "app CPU", "harness CPU"],
            (
                [
                    run["app"],
                    f"{run['commands_per_s']:.0f}",
                    f"{run['seconds']:.0f}",
                    str(run["errors"]),
                    str(run["lost"]),
                    f"{_ms(run['reply']['p50_ms'])} / {_ms(run['reply']['p99_ms'])}",
                    f"{run['app_cpu_pct']:.0f} %",
                    f"{run['harness_cpu_pct']:.0f} %",
                ]
                for run in results["load"]["throughput"]
            ),
        ),
        "",
        *_startup(results["startup"]),
        "",
        *_memory(results["load"]["memory"]),
        "",
        *_views(results["views"]),
        "",
        *_telemetry(results["telemetry"]),
        "",
        *_expiry(results["expiry"]),
    ]
    return "\n".join(lines) + "\n"


def _startup(startup: dict[str, Any]) -> list[str]:
    gpubot = startup["gpubot"]
    empty = gpubot["empty_database"]
    body = [
        [
            "gpubot, empty database (1 start)",
            _ms(empty["connected_s"] * 1000),
            _ms(empty["ready_s"] * 1000),
            _ms(empty["stop_s"] * 1000),
            f"{empty['rss_at_ready_mib']:.1f}",
        ]
    ]
    for name, entry in (("gpubot, restart", gpubot["restart"]), *((k, v) for k, v in startup.items() if k != "gpubot")):
        body.append(
            [
                f"{name} ({entry['starts']} starts)",
                f"{_ms(entry['connected_ms']['p50_ms'])} / {_ms(entry['connected_ms']['p99_ms'])}",
                f"{_ms(entry['ready_ms']['p50_ms'])} / {_ms(entry['ready_ms']['p99_ms'])}",
                f"{_ms(entry['stop_ms']['p50_ms'])} / {_ms(entry['stop_ms']['p99_ms'])}",
                f"{entry['rss_at_ready_mib']:.1f}",
            ]
        )
    return [
        "### Start-up (process spawned → Socket Mode connected → ready line; SIGTERM → exit), p50 / p99 ms",
        "",
        *_table(["app", "connected", "ready", "stop", "RSS at ready MiB"], body),
    ]


def _memory(memory: dict[str, Any]) -> list[str]:
    return [
        "### Memory (VmRSS)",
        "",
        *_table(
            ["app", "after start", "after the latency rounds", f"after {memory['commands']:,} more commands"],
            (
                [
                    app,
                    f"{rss:.1f} MiB",
                    f"{memory['rss_after_rounds_mib'][app]:.1f} MiB",
                    f"{memory['rss_after_mib']:.1f} MiB ({memory['growth_mib']:+.2f})" if app == memory["app"] else "–",
                ]
                for app, rss in memory["rss_after_start_mib"].items()
            ),
        ),
    ]


def _views(views: dict[str, Any]) -> list[str]:
    return [
        f"### Views built by `gpubot.slack.blocks` ({views['repeats']} builds each), ms",
        "",
        *_table(
            ["view", "GPUs", "p50", "p99", "blocks (limit)", "JSON KiB"],
            (
                [
                    row["view"],
                    str(row["gpus"]),
                    f"{row['build']['p50_ms']:.3f}",
                    f"{row['build']['p99_ms']:.3f}",
                    f"{row['blocks']} ({row['block_limit']})",
                    f"{row['json_bytes'] / 1024:.1f}",
                ]
                for row in views["views"]
            ),
        ),
    ]


def _telemetry(telemetry: dict[str, Any]) -> list[str]:
    lines = ["### Telemetry cost per sample, ms", ""]
    body = [
        ["fake", f"{row['gpus']} GPUs (JSON file)", f"{row['sample']['p50_ms']:.3f}", f"{row['sample']['p99_ms']:.3f}"]
        for row in telemetry["fake"]
    ]
    parse = telemetry["nvidia_smi_parse"]
    if "skipped" in parse:
        body.append(["nvidia-smi parse", parse["skipped"], "–", "–"])
    else:
        for row in parse["files"]:
            body.append(
                [
                    "nvidia-smi parse",
                    f"{row['file']} ({row['gpus']} GPU, {row['processes']} procs, {row['kib']} KiB)",
                    f"{row['parse']['p50_ms']:.3f}",
                    f"{row['parse']['p99_ms']:.3f}",
                ]
            )
    nvml = telemetry["nvml"]
    if "skipped" in nvml:
        body.append(["NVML", f"skipped: {nvml['skipped']}", "–", "–"])
    else:
        body.append(
            [
                "NVML",
                f"{nvml['gpus']} GPUs, {nvml['processes']} procs",
                f"{nvml['sample']['p50_ms']:.3f}",
                f"{nvml['sample']['p99_ms']:.3f}",
            ]
        )
        smi = nvml["nvidia_smi"]
        if "skipped" not in smi:
            body.append(["nvidia-smi -q -x", "one real run", f"{smi['p50_ms']:.1f}", f"{smi['p99_ms']:.1f}"])
    lines.extend(_table(["backend", "what", "p50", "p99"], body))
    return lines


def _expiry(expiry: dict[str, Any]) -> list[str]:
    body = []
    for key, label in (
        ("warning_dm", "warning DM received"),
        ("expiry_dm", "expiry DM received"),
        ("warning_marked", "claim marked warned"),
        ("expiry_marked", "claim marked expired"),
    ):
        summary = expiry.get(f"{key}_late")
        body.append(
            [
                label,
                str(summary["count"]) if summary else "0",
                _ms(summary["p50_ms"]) if summary else "–",
                _ms(summary["p99_ms"]) if summary else "–",
                _ms(summary["max_ms"]) if summary else "–",
                str(expiry.get(f"{key}_early", 0)),
            ]
        )
    return [
        f"### Expiry precision ({expiry['claims']} claims of {expiry['duration_s']} s,"
        f" warned {expiry['warn_before_s']} s before the end, due-work tick every {expiry['tick_s']:g} s):"
        " lateness after the due time, ms",
        "",
        *_table(["event", "claims", "p50", "p99", "max", "early"], body),
        "",
        f"Missing DMs: {expiry['missing_dms']['warning']} warnings, {expiry['missing_dms']['expiry']} expiries.",
    ]


def write_into(document: Path, figures: str) -> None:
    """Replace what lies between the figure markers of `document` with `figures`.

    Raises:
        ValueError: the document lacks the markers.
    """
    text = document.read_text(encoding="utf-8")
    start, end = text.find(FIGURES_START), text.find(FIGURES_END)
    if start == -1 or end == -1 or end < start:
        raise ValueError(f"{document} has no figure markers ({FIGURES_START!r} … {FIGURES_END!r})")
    document.write_text(text[: start + len(FIGURES_START)] + "\n\n" + figures + "\n" + text[end:], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Print the report of a results file."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, nargs="?", default=Path(__file__).parent / "results.json")
    args = parser.parse_args(argv)
    print(render(json.loads(args.results.read_text())), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
