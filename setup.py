"""One distribution, `openwit`; each top-level folder becomes `openwit.<folder>`.

`openwit` itself is an implicit namespace package (no code at the root). Sub-folders of a part
that hold an `__init__.py` are packaged too, so parts may grow sub-packages.
"""
import os

from setuptools import setup

PARTS = ["common", "queries", "pipeline", "loader", "trainer", "demo"]


def _packages():
    packages, package_dir = [], {}
    for part in PARTS:
        if not os.path.exists(os.path.join(part, "__init__.py")):
            continue
        for root, dirs, files in os.walk(part):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
            if "__init__.py" in files:
                name = "openwit." + root.replace(os.sep, ".")
                packages.append(name)
                package_dir[name] = root
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()

# Each script imports its command's module through openwit.common.launch (the GC paused meanwhile).
CONSOLE_SCRIPTS = {
    "openwit-queries": ("queries", "openwit.common.launch:queries"),
    "openwit-build": ("pipeline", "openwit.common.launch:build"),
    "openwit-stats": ("pipeline", "openwit.common.launch:stats"),
    "openwit-loader": ("loader", "openwit.common.launch:loader"),
    "openwit-train": ("trainer", "openwit.common.launch:train"),
    "openwit-eval": ("trainer", "openwit.common.launch:evaluate"),
}

setup(
    name="openwit",
    version="0.1.0",
    description="Build CLIP-style web image-text datasets (WIT) and train CLIP on them",
    long_description=open("README.md", encoding="utf-8").read() if os.path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    include_package_data=True,
    install_requires=[
        "apache-beam[gcp,aws]>=2.60",
        "requests",
        "aiohttp>=3.9",
        "pillow>=10",
        "simplejpeg>=1.7",
        "opencv-python-headless>=4.8",
        "numba>=0.60",
        "pyarrow>=14",
        "numpy",
        "webdataset>=0.2.90",
        "torch==2.13.0",
        "pyahocorasick>=2.0",
        "tokenizers>=0.15",
        "ftfy>=6",
        "regex",
        "fsspec",
        "gcsfs",
        "s3fs",
        "tqdm",
        "matplotlib",
        "fastwarc",
        "selectolax",
        "xxhash",
        "charset-normalizer",
    ],
    extras_require={"dev": ["pytest", "pytest-timeout"]},
    entry_points={
        "console_scripts": [
            f"{name}={target}"
            for name, (part, target) in CONSOLE_SCRIPTS.items()
            if os.path.exists(os.path.join(part, "__init__.py"))
        ]
    },
)
