"""The fan-out bench's report: the table of figures against their ceilings and targets, and CPU lines."""

from __future__ import annotations

from importlib import metadata

from bench.fanout_lib.results import Results

P99_TARGET_MS = 250.0  # DESIGN §8: a drop reaches 10,000 viewers with p99 under 250 ms; burst answers too
FPS_RATIO_TARGET = 0.8  # DESIGN §8: delivered frames/s >= 0.8 x websockets.broadcast to as many sockets
STARLETTE_KIB = 24.0  # bare Starlette/uvicorn endpoint per idle socket (docs/fanout-research.md, B at 10,000)
RSS_RATIO_TARGET = 1.25  # DESIGN §8: RSS per idle viewer <= 1.25 x bare Starlette ...
RSS_CAP_KIB = 32.0  # ... and under 32 KiB
SUSTAINED_RATIO_TARGET = 0.5  # DESIGN §8: sustained reservations >= 0.5 x redis-benchmark EVALSHA


# --- the table -------------------------------------------------------------------------------------------------


def _r(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or x != x else f"{x:.{digits}f}"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("meets" if ok else "misses")


def table(results: Results) -> list[str]:
    rows: list[tuple[str, str, str, str, str, str]] = []
    d, a = results.livedrop, results.ceiling_a
    if d is not None:
        n = f"{d.viewers:,}"
        ratio = d.probe_p99_ms / a.probe_p99_ms if a and a.probe_p99_ms else None
        rows.append(
            (
                f"drop latency p50 / p99, {n} viewers (ms)",
                f"{d.probe_p50_ms:.0f} / {d.probe_p99_ms:.0f}",
                f"p99 < {P99_TARGET_MS:.0f}",
                f"{a.probe_p50_ms:.0f} / {a.probe_p99_ms:.0f}" if a else "-",
                f"p99 x{_r(ratio)}",
                verdict(d.probe_p99_ms < P99_TARGET_MS),
            )
        )
        fps_ratio = d.fps / a.fps if a and a.fps else None
        best_ratio = d.fps_best / a.fps_best if a and a.fps_best else None
        rows.append(
            (
                f"delivered frames/s, bursts of drop frames, median / best ({n})",
                f"{d.fps:,.0f} / {d.fps_best:,.0f}",
                f">= {FPS_RATIO_TARGET} x A",
                f"{a.fps:,.0f} / {a.fps_best:,.0f}" if a else "-",
                f"{_r(fps_ratio)} / {_r(best_ratio)}",
                verdict(fps_ratio >= FPS_RATIO_TARGET if fps_ratio is not None else None),
            )
        )
        cpu_ratio = a.us_per_frame / d.us_per_frame if a and d.us_per_frame else None
        rows.append(
            (
                "server CPU per delivered frame (us), median burst",
                f"{d.us_per_frame:.1f}",
                "-",
                f"{a.us_per_frame:.1f}" if a else "-",
                f"A/LiveDrop {_r(cpu_ratio)}",
                "-",
            )
        )
        rows.append(
            (
                "latency inside a burst p50 / p99 (ms)",
                f"{d.burst_p50_ms:.0f} / {d.burst_p99_ms:.0f}",
                "-",
                f"{a.burst_p50_ms:.0f} / {a.burst_p99_ms:.0f}" if a else "-",
                "-",
                "-",
            )
        )
        rss_ok = d.rss_per_conn_kib <= RSS_RATIO_TARGET * STARLETTE_KIB and d.rss_per_conn_kib < RSS_CAP_KIB
        rows.append(
            (
                "node RSS per idle viewer (KiB)",
                f"{d.rss_per_conn_kib:.1f}",
                f"<= {RSS_RATIO_TARGET} x {STARLETTE_KIB:.0f} and < {RSS_CAP_KIB:.0f}",
                f"Starlette {STARLETTE_KIB:.0f}; A {a.rss_per_conn_kib:.1f}" if a else f"Starlette {STARLETTE_KIB:.0f}",
                f"{d.rss_per_conn_kib / STARLETTE_KIB:.2f} x Starlette",
                verdict(rss_ok),
            )
        )
        rows.append(
            (
                "livedrop_viewer_send_path_total",
                ", ".join(f"{k} {v:,.0f}" for k, v in results.send_path.items()) or "missing",
                'path="sansio"',
                "-",
                "-",
                "ok" if set(results.send_path) == {"sansio"} else "FAIL",
            )
        )
        rows.append(
            (
                f"connect {n} viewers (gated, s)",
                f"{d.connect_s:.1f}",
                "-",
                f"{a.connect_s:.1f}" if a else "-",
                "-",
                "-",
            )
        )
    ceiling_text = f"{results.redis_ceiling:,.0f}/s" if results.redis_ceiling else "-"
    for s in results.sustained:
        ratio = s.rate / results.redis_ceiling if results.redis_ceiling else None
        rows.append(
            (
                f"sustained reserves answered/s, {s.viewers:,} viewers, {s.offered:,.0f}/s offered "
                f"(answer p50 / p99 {s.p50_ms:.0f} / {s.p99_ms:.0f} ms)",
                f"{s.rate:,.0f}",
                f">= {SUSTAINED_RATIO_TARGET} x redis-benchmark",
                f"EVALSHA -P 1: {ceiling_text}",
                _r(ratio),
                "-",
            )
        )
    if results.sustained:
        best = max(results.sustained, key=lambda s: s.rate)
        ratio = best.rate / results.redis_ceiling if results.redis_ceiling else None
        rows.append(
            (
                "sustained reserves answered/s, best window",
                f"{best.rate:,.0f}",
                f">= {SUSTAINED_RATIO_TARGET} x redis-benchmark",
                f"EVALSHA -P 1: {ceiling_text}",
                _r(ratio),
                verdict(ratio >= SUSTAINED_RATIO_TARGET if ratio is not None else None),
            )
        )
    b = results.burst
    if b is not None:
        errors = sum(v for k, v in b.answers.items() if k.startswith("error"))
        rows.append(
            (
                f"burst: {b.viewers:,} reserves within {b.seconds:g} s: reserved / sold_out / errors",
                f"{b.answers.get('reserved', 0)} / {b.answers.get('rejected:sold_out', 0):,} / {errors}",
                f"exactly {results.settings['burst_units']}, 0 errors",
                "-",
                "-",
                "ok" if any(c.ok for c in results.checks if c.name.startswith("burst: exactly")) else "FAIL",
            )
        )
        rows.append(
            (
                "burst answer latency p50 / p99 (ms)",
                f"{b.p50_ms:.0f} / {b.p99_ms:.0f}",
                f"p99 < {P99_TARGET_MS:.0f}",
                "-",
                "-",
                verdict(b.p99_ms < P99_TARGET_MS),
            )
        )
    st = results.storm
    if st is not None:
        rows.append(
            (
                f"reconnect storm: {st.viewers:,} within {st.spread:g} s, welcomed",
                f"{st.welcomed:,}",
                "all",
                "-",
                "-",
                "ok" if st.welcomed == st.viewers and st.failed == 0 else "FAIL",
            )
        )
        rows.append(
            (
                "storm: time to all welcomes (s) / welcome p50 / p99 (ms)",
                f"{st.all_welcomed_s:.2f} / {st.p50_ms:.0f} / {st.p99_ms:.0f}",
                "-",
                "-",
                "-",
                "-",
            )
        )
        rows.append(
            (
                "storm: /readyz afterwards",
                str(st.readyz_after),
                "200",
                "-",
                "-",
                "ok" if st.readyz_after == 200 else "FAIL",
            )
        )
    stalls = [
        (label, w.stall_max_ms)
        for label, w in (
            ("burst", results.burst),
            ("storm", results.storm),
            *(("sustained", x) for x in results.sustained),
        )
        if w is not None
    ]
    if stalls:
        rows.append(
            (
                "node /healthz answer max, ms (" + " / ".join(label for label, _ in stalls) + ")",
                " / ".join(f"{x:.0f}" for _, x in stalls),
                "-",
                "-",
                "-",
                "-",
            )
        )
    head = ("figure", "LiveDrop", "target", "ceiling (same run)", "ratio", "verdict")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def cpu_lines(results: Results) -> list[str]:
    lines = []
    for label, cpu in (
        ("fan-out bursts, LiveDrop (median burst)", results.livedrop.cpu if results.livedrop else None),
        ("fan-out bursts, A (median burst)", results.ceiling_a.cpu if results.ceiling_a else None),
        ("reservation burst", results.burst.cpu if results.burst else None),
        ("reconnect storm", results.storm.cpu if results.storm else None),
        *((f"sustained reservations, {s.offered:,.0f}/s offered", s.cpu) for s in results.sustained),
    ):
        if cpu is not None:
            lines.append(f"| {label} | {cpu.text()} |")
    return ["| window | CPU % server/clients/redis/others |", "|---|---|", *lines]


def package_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
