#!/usr/bin/env python3
"""Draws docs/soak-rss.svg: the resident memory of `pkgsum serve` and
`pkgsum gateway` over their soak (`cargo bench --bench soak`), from the
CSV files it writes (target/soak-serve.csv, target/soak-gateway.csv:
seconds,rss_kib). Standard library only.
Usage: scripts/plot-soak.py [OUT]"""
import csv
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SERIES = [
    ("serve: 4 notifications a second, 100 idle connections", "#2471a3", "soak-serve.csv"),
    ("gateway: 8 downloaders, 10 slow readers, 100 idle connections", "#c0392b", "soak-gateway.csv"),
]
W, H, L, R, T, B = 700, 380, 70, 30, 50, 60


def read(name):
    with open(ROOT / "target" / name) as f:
        return [(int(r["seconds"]), int(r["rss_kib"]) / 1024) for r in csv.DictReader(f)]


data = [(label, colour, read(name)) for label, colour, name in SERIES]
xmax = max(max(s for s, _ in points) for _, _, points in data) or 1
ymax = max(max(m for _, m in points) for _, _, points in data)
ymax = max(50, (int(ymax / 50) + 1) * 50)


def x(v):
    return L + v / xmax * (W - L - R)


def y(v):
    return H - B - v / ymax * (H - T - B)


out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">Resident memory during a {xmax // 60}-minute soak on LocalStack</text>']
for tick in range(0, ymax + 1, 50):
    out.append(f'<line x1="{L}" x2="{W - R}" y1="{y(tick)}" y2="{y(tick)}" stroke="#ddd"/>')
    out.append(f'<text x="{L - 8}" y="{y(tick) + 4}" text-anchor="end">{tick}</text>')
step = 60 if xmax <= 900 else 120
for tick in range(0, xmax + 1, step):
    out.append(f'<text x="{x(tick)}" y="{H - B + 18}" text-anchor="middle">{tick // 60}</text>')
out.append(f'<text x="{W / 2}" y="{H - 18}" text-anchor="middle">minutes</text>')
out.append(f'<text x="18" y="{H / 2}" text-anchor="middle" transform="rotate(-90 18 {H / 2})">RSS (MiB)</text>')
for i, (label, colour, points) in enumerate(data):
    path = " ".join(f"{x(s):.1f},{y(m):.1f}" for s, m in points)
    out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
    out.append(f'<rect x="{L + 10}" y="{T + 8 + i * 18}" width="14" height="3" fill="{colour}"/>')
    out.append(f'<text x="{L + 30}" y="{T + 13 + i * 18}">{label}</text>')
out.append("</svg>")
target = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "soak-rss.svg"
target.write_text("\n".join(out) + "\n")
print(f"wrote {target}")
