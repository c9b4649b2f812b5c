#!/usr/bin/env python3
"""Draws docs/update-cpu.svg: CPU time of one update against repository
size, before chunked summaries, with them, with the state in pieces and
with summaries spliced inside the store, from the tables `cargo bench
--bench s3` printed (docs/benchmarks.md, "S3: one upload, and a burst");
the first three on the same 410-byte records, the others on records
shaped like pkgsrc's. With `bytes`, docs/update-bytes.svg: the bytes
written per update before and after splicing. Log-log axes.
Standard library only. Usage: scripts/plot-update-cpu.py [bytes] [OUT]"""
import math
import sys

SIZES = [200, 1000, 20000, 100000]
SERIES = [
    ("whole summary recompressed, whole state", "#c0392b", [0.04, 0.14, 2.98, 13.95]),
    ("changed runs recompressed, whole state (83863f6)", "#e67e22", [0.03, 0.07, 0.16, 0.51]),
    ("changed runs, state in pieces", "#2471a3", [0.026, 0.083, 0.065, 0.070]),
    ("the same, records shaped like pkgsrc's (1.2 KiB), 2026-11-29", "#27ae60", [0.084, 0.074, 0.073, 0.166]),
    ("spliced in the store, with the site (ffdc71e)", "#8e44ad", [0.069, 0.059, 0.064, 0.127]),
    ("the same, written files kept in memory (2026-12-07)", "#17202a", [0.067, 0.061, 0.061, 0.089]),
    ("the same, updates spread over the repository (2026-12-07)", "#7f8c8d", [0.067, 0.074, 0.082, 0.084]),
]
UNIT, TITLE, AXIS, TICKS = "s", "One upload applied: CPU time against repository size", "CPU per update (memory store)", [0.01, 0.1, 1, 10]
XMIN, XMAX, YMIN, YMAX = 100, 200000, 0.01, 20
args = sys.argv[1:]
if args[:1] == ["bytes"]:
    args = args[1:]
    SERIES = [
        ("summaries read back and written whole (2026-11-29)", "#27ae60", [0.16, 0.69, 12.88, 64.36]),
        ("spliced in the store above 5 MiB, with the site (ffdc71e)", "#8e44ad", [0.48, 0.94, 13.11, 1.08]),
    ]
    UNIT, TITLE, AXIS, TICKS = "MiB", "One upload applied: bytes written against repository size", "MiB written per update", [0.1, 1, 10, 100]
    YMIN, YMAX = 0.1, 200
W, H, L, R, T, B = 700, 420, 70, 80, 30, 60


def x(v):
    return L + (math.log10(v) - math.log10(XMIN)) / (math.log10(XMAX) - math.log10(XMIN)) * (W - L - R)


def y(v):
    return H - B - (math.log10(v) - math.log10(YMIN)) / (math.log10(YMAX) - math.log10(YMIN)) * (H - T - B)


out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>']
for v in TICKS:
    out.append(f'<line x1="{L}" x2="{W - R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
    out.append(f'<text x="{L - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g} {UNIT}</text>')
for v in [100, 1000, 10000, 100000]:
    out.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{T}" y2="{H - B}" stroke="#ddd"/>')
    out.append(f'<text x="{x(v):.1f}" y="{H - B + 18}" text-anchor="middle">{v:,}</text>')
out.append(f'<text x="{(L + W - R) / 2}" y="{H - 18}" text-anchor="middle">packages in the repository</text>')
out.append(f'<text x="16" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 {(T + H - B) / 2})">{AXIS}</text>')
out.append(f'<text x="{L}" y="18" font-weight="bold">{TITLE}</text>')
# The last values' labels, moved apart where they would overlap (13 px a
# line), from the bottom up.
label_y = {}
for i in sorted(range(len(SERIES)), key=lambda i: -y(SERIES[i][2][-1])):
    want = y(SERIES[i][2][-1]) + 4
    label_y[i] = min([want] + [v - 13 for v in label_y.values() if v - 13 < want])
for i, (name, colour, values) in enumerate(SERIES):
    points = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in zip(SIZES, values))
    out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
    for s, v in zip(SIZES, values):
        out.append(f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}"/>')
    # Only the last value is written out: four series crowd the rest.
    out.append(f'<text x="{x(SIZES[-1]) + 6:.1f}" y="{label_y[i]:.1f}" fill="{colour}">{values[-1]:g} {UNIT}</text>')
    out.append(f'<line x1="{L + 20}" x2="{L + 44}" y1="{T + 18 + 18 * i}" y2="{T + 18 + 18 * i}" stroke="{colour}" stroke-width="2"/>')
    out.append(f'<text x="{L + 50}" y="{T + 22 + 18 * i}">{name}</text>')
out.append("</svg>")
default = "docs/update-bytes.svg" if UNIT == "MiB" else "docs/update-cpu.svg"
path = args[0] if args else default
with open(path, "w") as f:
    f.write("\n".join(out) + "\n")
