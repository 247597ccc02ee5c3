"""Faker, limited to what Live Edit uses: the locale-free providers plus en / en_US.

Overrides pyinstaller-hooks-contrib's hook-faker (which bundles all ~70 locales). The demo
data (sync/server/demo_data.py) only ever asks for Faker("en_US"); Faker discovers locales by
listing the provider packages, so the filtered set is all it will look for.
"""

import importlib

from PyInstaller.utils.hooks import collect_data_files, collect_submodules

_LOCALES = {"en", "en_US"}
# A provider without an en_US variant falls back to its own default locale (bank: en_GB,
# lorem: la), so those come along too.
for _provider in importlib.import_module("faker.config").PROVIDERS:
    _default = getattr(importlib.import_module(_provider), "default_locale", None)
    if _default:
        _LOCALES.add(_default)
_KEPT_LEAVES = _LOCALES | {"color", "isbn", "rules"}  # + the non-locale submodules


def _wanted(name: str) -> bool:
    parts = name.split(".")
    return len(parts) < 4 or parts[3] in _KEPT_LEAVES


hiddenimports = collect_submodules("faker.providers", filter=_wanted)
datas = [
    (src, dest)
    for src, dest in collect_data_files("faker.providers", include_py_files=True)
    if _wanted("faker.providers." + dest.replace("\\", "/").split("faker/providers/", 1)[-1]
               .replace("/", "."))
]
datas += collect_data_files("text_unidecode")
