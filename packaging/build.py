#!/usr/bin/env python3
"""Build the Live Edit installer for one OS: ONE command per OS.

    python packaging/build.py linux      # -> packaging/dist/liveedit_<version>_<arch>.deb
    python packaging/build.py windows    # -> packaging/dist/LiveEdit-<version>-setup.exe
    python packaging/build.py macos      # -> packaging/dist/LiveEdit-<version>.dmg
    python packaging/build.py lock       # recompile requirements-build.txt (needs uv)

Run it from any folder with Python 3.11 (the version the app is frozen with). It:

1. creates ``packaging/build/venv`` and installs the app's locked dependencies
   (``requirements/lock.txt``) and the build tools (``packaging/requirements-build.txt``:
   PyInstaller …), hash-checked; skipped when neither lock changed;
2. installs this project into it (not editable, so its metadata — the version — is real);
3. renders the icons from ``resources/liveedit.svg`` (``make_icons.py``);
4. freezes with ``packaging/liveedit.spec`` into ``packaging/build/dist/liveedit/``;
5. packages: ``dpkg-deb`` (Linux), Inno Setup's ``ISCC`` (Windows), ``hdiutil`` (macOS),
   signing and notarising when the release environment provides the secrets (see
   packaging/README.md) and saying so when it does not.

Options: ``--skip-setup`` reuses the build venv as it is; ``--freeze-only`` stops after
step 4. Everything it writes is under ``packaging/build/`` and ``packaging/dist/``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD = HERE / "build"
DIST = HERE / "dist"
VENV = BUILD / "venv"
FROZEN = BUILD / "dist" / "liveedit"
ICONS = BUILD / "icons"
APP_LOCK = ROOT / "requirements" / "lock.txt"
BUILD_LOCK = HERE / "requirements-build.txt"
PY_VERSION = (3, 11)
APP_NAME = "Live Edit"

#: Debian packages the bundled Qt needs from the system (PyInstaller bundles the rest, but
#: never libc, OpenGL/EGL or libxcb, which must match the machine's drivers and X server).
#: libc6's minimum is the glibc of the build machine, added at build time.
DEB_DEPENDS = (
    "libgl1, libegl1, libxcb1, libxcb-cursor0, libxkbcommon-x11-0, libwayland-client0, "
    "libwayland-cursor0, libwayland-egl1, libfontconfig1, libdbus-1-3, hicolor-icon-theme"
)


def say(text: str) -> None:
    print(f"[build] {text}", flush=True)


def run(cmd: list[str | os.PathLike[str]], **kwargs: object) -> None:
    """Run a command, echoing it; stop the build if it fails."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    code = subprocess.call([str(c) for c in cmd], **kwargs)  # type: ignore[call-overload]
    if code != 0:
        sys.exit(f"[build] failed ({code}): {cmd[0]}")


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def version() -> str:
    """The one version: pyproject.toml's [project] version."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]


def human(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError


def tree_size(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# --- steps -------------------------------------------------------------------------------

def setup(skip: bool) -> Path:
    """The build venv with the app's and the build tools' locked dependencies."""
    if sys.version_info[:2] != PY_VERSION:
        say(f"note: building with Python {platform.python_version()}; releases use "
            f"{'.'.join(map(str, PY_VERSION))}")
    py = venv_python()
    if skip and py.exists():
        return py
    stamp = VENV / ".liveedit-build-stamp"
    digest = "".join(hashlib.sha256(p.read_bytes()).hexdigest()
                     for p in (APP_LOCK, BUILD_LOCK, ROOT / "pyproject.toml"))
    if not py.exists():
        say(f"creating the build venv in {VENV}")
        run([sys.executable, "-m", "venv", "--clear", VENV])
    if not stamp.exists() or stamp.read_text() != digest:
        pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "-q",
               "--require-hashes"]
        run([*pip, "-r", APP_LOCK])
        run([*pip, "-r", BUILD_LOCK])
        stamp.write_text(digest)
    # the project itself, from a clean copy (no build files land in the source tree)
    src = BUILD / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for package in ("app", "ui", "sync", "liveedit"):
        shutil.copytree(ROOT / package, src / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run([py, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps",
         "--no-build-isolation", "--force-reinstall", src])
    return py


def icons(py: Path) -> None:
    run([py, HERE / "make_icons.py", ICONS])


def freeze(py: Path) -> None:
    env = {**os.environ, "LIVEEDIT_ICON_DIR": str(ICONS)}
    run([py, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
         "--distpath", BUILD / "dist", "--workpath", BUILD / "work", HERE / "liveedit.spec"],
        env=env)
    say(f"frozen app: {FROZEN} ({human(tree_size(FROZEN))})")


# --- Linux: .deb -------------------------------------------------------------------------

DESKTOP_ENTRY = f"""\
[Desktop Entry]
Type=Application
Name={APP_NAME}
GenericName=Customer desk
Comment=View and edit customer accounts together, live — online or offline
Exec=/usr/bin/liveedit
Icon=liveedit
Terminal=false
Categories=Office;Network;
Keywords=customer;help desk;support;sync;
StartupWMClass=liveedit
"""

POSTINST = """\
#!/bin/sh
set -e
if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database -q /usr/share/applications || true
fi
if command -v gtk-update-icon-cache >/dev/null 2>&1; then
    gtk-update-icon-cache -q -t -f /usr/share/icons/hicolor || true
fi
"""


def package_linux() -> Path:
    """``liveedit_<version>_<arch>.deb``: /opt/liveedit, /usr/bin/liveedit, menu entry, icons."""
    ver = version()
    arch = subprocess.check_output(["dpkg", "--print-architecture"], text=True).strip()
    glibc = platform.libc_ver()[1] or "2.31"
    root = BUILD / "deb"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(FROZEN, root / "opt" / "liveedit", symlinks=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "liveedit").symlink_to("/opt/liveedit/liveedit")
    apps = root / "usr" / "share" / "applications"
    apps.mkdir(parents=True)
    (apps / "liveedit.desktop").write_text(DESKTOP_ENTRY, "utf-8")
    hicolor = root / "usr" / "share" / "icons" / "hicolor"
    for size in (16, 24, 32, 48, 64, 128, 256, 512):
        target = hicolor / f"{size}x{size}" / "apps"
        target.mkdir(parents=True)
        shutil.copy2(ICONS / "png" / f"liveedit-{size}.png", target / "liveedit.png")
    (hicolor / "scalable" / "apps").mkdir(parents=True)
    shutil.copy2(ICONS / "liveedit.svg", hicolor / "scalable" / "apps" / "liveedit.svg")
    doc = root / "usr" / "share" / "doc" / "liveedit"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Live Edit — Apache-2.0. Bundles Python (PSF), Qt 6 and PySide6 (LGPLv3) and the\n"
        "Python packages listed in requirements/lock.txt, each under its own licence.\n",
        "utf-8")
    control_dir = root / "DEBIAN"
    control_dir.mkdir()
    installed_kib = (tree_size(root) + 1023) // 1024
    (control_dir / "control").write_text(
        f"Package: liveedit\nVersion: {ver}\nArchitecture: {arch}\n"
        f"Maintainer: Live Edit maintainers <liveedit@localhost>\n"
        f"Installed-Size: {installed_kib}\nSection: net\nPriority: optional\n"
        f"Depends: libc6 (>= {glibc}), {DEB_DEPENDS}\n"
        f"Description: offline-first live customer desk for help-desk reps\n"
        f" Live Edit shows and edits customer accounts together, live, and keeps working\n"
        f" offline. The package also contains the reference sync server\n"
        f" (liveedit server serve) and the headless client (liveedit client).\n",
        "utf-8")
    (control_dir / "postinst").write_text(POSTINST, "utf-8")
    (control_dir / "postrm").write_text(POSTINST, "utf-8")
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir() or os.access(path, os.X_OK) or path.name in ("postinst", "postrm"):
            path.chmod(0o755)
        else:
            path.chmod(0o644)
    DIST.mkdir(exist_ok=True)
    deb = DIST / f"liveedit_{ver}_{arch}.deb"
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, deb])
    say(f"installed size {human(installed_kib * 1024)}")
    return deb


# --- Windows: Inno Setup installer -------------------------------------------------------

def _sign_windows(paths: list[Path]) -> None:
    """Authenticode-sign with signtool when WINDOWS_CERT_PFX (base64) is provided."""
    pfx_b64 = os.environ.get("WINDOWS_CERT_PFX")
    if not pfx_b64:
        say("WINDOWS_CERT_PFX not set: NOT signing (the installer will show 'unknown "
            "publisher')")
        return
    import base64

    pfx = BUILD / "signing.pfx"
    pfx.write_bytes(base64.b64decode(pfx_b64))
    try:
        signtool = os.environ.get("SIGNTOOL", "signtool")
        run([signtool, "sign", "/f", pfx, "/p", os.environ.get("WINDOWS_CERT_PASSWORD", ""),
             "/fd", "sha256", "/td", "sha256",
             "/tr", os.environ.get("WINDOWS_TIMESTAMP_URL", "http://timestamp.digicert.com"),
             *paths])
    finally:
        pfx.unlink(missing_ok=True)


def package_windows() -> Path:
    """``LiveEdit-<version>-setup.exe`` (Start-menu entry, uninstaller) via Inno Setup."""
    ver = version()
    _sign_windows([FROZEN / "liveedit.exe", FROZEN / "LiveEdit.exe"])
    iscc = os.environ.get("ISCC") or shutil.which("iscc") or shutil.which("ISCC")
    if iscc is None:
        default = Path(os.environ.get("PROGRAMFILES(X86)", r"C:\Program Files (x86)"))
        candidate = default / "Inno Setup 6" / "ISCC.exe"
        iscc = str(candidate) if candidate.exists() else None
    if iscc is None:
        sys.exit("[build] Inno Setup's ISCC.exe not found (choco install innosetup, or set ISCC)")
    DIST.mkdir(exist_ok=True)
    run([iscc, f"/DAppVersion={ver}", f"/DSourceDir={FROZEN}", f"/DOutputDir={DIST}",
         f"/DIconFile={ICONS / 'liveedit.ico'}", HERE / "windows" / "liveedit.iss"])
    setup_exe = DIST / f"LiveEdit-{ver}-setup.exe"
    _sign_windows([setup_exe])
    return setup_exe


# --- macOS: .app in a .dmg ---------------------------------------------------------------

def package_macos() -> Path:
    """``LiveEdit-<version>.dmg`` holding ``Live Edit.app``; signed + notarised if possible."""
    ver = version()
    app = BUILD / "dist" / f"{APP_NAME}.app"
    identity = os.environ.get("APPLE_DEVELOPER_ID")
    entitlements = HERE / "macos" / "entitlements.plist"
    if identity:
        run(["codesign", "--force", "--deep", "--options", "runtime", "--timestamp",
             "--entitlements", entitlements, "--sign", identity, app])
        run(["codesign", "--verify", "--deep", "--strict", "--verbose=2", app])
    else:
        say("APPLE_DEVELOPER_ID not set: NOT signing (Gatekeeper will refuse a download; "
            "right-click > Open works for testing)")
    stage = BUILD / "dmg"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    shutil.copytree(app, stage / app.name, symlinks=True)
    (stage / "Applications").symlink_to("/Applications")
    DIST.mkdir(exist_ok=True)
    dmg = DIST / f"LiveEdit-{ver}.dmg"
    dmg.unlink(missing_ok=True)
    run(["hdiutil", "create", "-volname", f"{APP_NAME} {ver}", "-srcfolder", stage,
         "-ov", "-format", "UDZO", dmg])
    if identity:
        run(["codesign", "--force", "--timestamp", "--sign", identity, dmg])
        creds = [os.environ.get(k) for k in ("APPLE_ID", "APPLE_TEAM_ID", "APPLE_APP_PASSWORD")]
        if all(creds):
            apple_id, team, password = creds
            run(["xcrun", "notarytool", "submit", dmg, "--apple-id", apple_id,
                 "--team-id", team, "--password", password, "--wait"])
            run(["xcrun", "stapler", "staple", dmg])
        else:
            say("APPLE_ID / APPLE_TEAM_ID / APPLE_APP_PASSWORD not all set: signed but NOT "
                "notarised")
    return dmg


# --- lock --------------------------------------------------------------------------------

def lock() -> int:
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        sys.exit("[build] lock needs uv (pip install uv, or set UV=/path/to/uv)")
    run([uv, "pip", "compile", HERE / "requirements-build.in", "--universal",
         "--generate-hashes", "--python-version", "3.11",
         "--custom-compile-command", "python packaging/build.py lock",
         "-o", BUILD_LOCK], cwd=ROOT)
    return 0


PACKAGERS = {"linux": package_linux, "windows": package_windows, "macos": package_macos}
HOST = {"linux": "linux", "windows": "win32", "macos": "darwin"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="packaging/build.py", description=__doc__.split("\n")[0])
    parser.add_argument("target", choices=[*PACKAGERS, "lock"])
    parser.add_argument("--skip-setup", action="store_true",
                        help="reuse packaging/build/venv as it is")
    parser.add_argument("--freeze-only", action="store_true",
                        help="stop after PyInstaller (no installer)")
    args = parser.parse_args(argv)
    if args.target == "lock":
        return lock()
    if not sys.platform.startswith(HOST[args.target]):
        sys.exit(f"[build] {args.target} installers are built on {args.target} "
                 f"(PyInstaller does not cross-compile); this is {sys.platform}")
    started = time.monotonic()
    py = setup(args.skip_setup)
    icons(py)
    freeze(py)
    if args.freeze_only:
        return 0
    artifact = PACKAGERS[args.target]()
    minutes, seconds = divmod(time.monotonic() - started, 60)
    say(f"{artifact} ({human(artifact.stat().st_size)}) built in {int(minutes)} min "
        f"{seconds:.0f} s")
    (DIST / "ARTIFACT").write_text(f"{artifact.name}\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
