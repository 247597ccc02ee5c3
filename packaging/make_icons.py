#!/usr/bin/env python3
"""Render the one source icon (``resources/liveedit.svg``) into every format we ship.

    python packaging/make_icons.py OUT_DIR

writes ``OUT_DIR/png/liveedit-<N>.png`` for N in 16…1024, ``OUT_DIR/liveedit.png`` (512),
``OUT_DIR/liveedit.ico`` (Windows: 16…256, PNG-compressed entries) and
``OUT_DIR/liveedit.icns`` (macOS: 16…1024 incl. the @2x variants). Rendering uses Qt's own
SVG renderer (``PySide6.QtSvg``, part of PySide6-Essentials, which the app depends on
anyway), offscreen, so it needs no display and no extra tool; the .ico and .icns containers
are written here (both are simple chunked formats around PNG data), so the result is the same
on Linux, Windows and macOS.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "resources" / "liveedit.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
#: ICNS element type -> pixel size (PNG payloads; these types all accept PNG data)
ICNS_TYPES = (
    (b"icp4", 16), (b"icp5", 32), (b"icp6", 64), (b"ic07", 128), (b"ic08", 256),
    (b"ic09", 512), (b"ic10", 1024), (b"ic11", 32), (b"ic12", 64), (b"ic13", 256),
    (b"ic14", 512),
)


def render_pngs(source: Path, sizes: tuple[int, ...]) -> dict[int, bytes]:
    """PNG bytes of the SVG rendered at each square size (antialiased, transparent)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(source))
    if not renderer.isValid():
        raise SystemExit(f"make_icons: cannot read {source} as SVG")
    out: dict[int, bytes] = {}
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter)
        painter.end()
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        if not image.save(buffer, "PNG"):
            raise SystemExit(f"make_icons: PNG encoding failed at {size} px")
        buffer.close()
        out[size] = bytes(data.data())
    return out


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """A Windows .ico holding PNG-compressed images (supported since Windows Vista)."""
    header = struct.pack("<HHH", 0, 1, len(pngs))
    offset = len(header) + 16 * len(pngs)
    entries, payload = b"", b""
    for size, data in sorted(pngs.items()):
        dim = 0 if size >= 256 else size  # 0 means 256 in an ICONDIRENTRY
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(data), offset)
        payload += data
        offset += len(data)
    return header + entries + payload


def icns_bytes(pngs: dict[int, bytes]) -> bytes:
    """A macOS .icns: the 'icns' header, then one (type, length, PNG) element per size."""
    body = b"".join(
        kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size] for kind, size in ICNS_TYPES
    )
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def make_icons(out_dir: Path, source: Path = SOURCE) -> dict[str, Path]:
    """Write every icon file into ``out_dir``; returns {kind: path}."""
    pngs = render_pngs(source, PNG_SIZES)
    (out_dir / "png").mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for size, data in pngs.items():
        path = out_dir / "png" / f"liveedit-{size}.png"
        path.write_bytes(data)
        written[f"png{size}"] = path
    written["png"] = out_dir / "liveedit.png"
    written["png"].write_bytes(pngs[512])
    written["ico"] = out_dir / "liveedit.ico"
    written["ico"].write_bytes(ico_bytes({s: pngs[s] for s in ICO_SIZES}))
    written["icns"] = out_dir / "liveedit.icns"
    written["icns"].write_bytes(icns_bytes(pngs))
    written["svg"] = out_dir / "liveedit.svg"
    written["svg"].write_bytes(source.read_bytes())
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    written = make_icons(Path(argv[0]))
    print(f"icons: {len(written)} files from {SOURCE.name} in {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
