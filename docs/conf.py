"""Sphinx configuration of brainjepa_sk (builds offline: no intersphinx)."""

import os
import sys
from importlib import metadata

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _gallery_order

project = "brainjepa_sk"
author = "brainjepa_sk developers"
copyright = "brainjepa_sk developers"
try:
    release = metadata.version("brainjepa_sk")
except metadata.PackageNotFoundError:
    release = "dev"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    # MathJax shipped with the docs: formulas render when the HTML is read offline
    "sphinx-mathjax-offline",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_templates", "Thumbs.db", ".DS_Store"]
default_role = "py:obj"

autosummary_generate = True
# The class template (_templates/autosummary/class.rst) documents each class's own members with
# autodoc; numpydoc's member tables would also list everything inherited from torch.nn.Module.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# No intersphinx (the build is offline): references to torch / numpy / Python types cannot resolve.
nitpick_ignore_regex = [
    ("py:.*", r"(torch|numpy|np|nn|F)(\..*)?"),
    ("py:class", r"(int|float|bool|str|dict|list|tuple|callable|optional|path-like|array-like)"),
]

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Only plot_*.py files are executed (CPU only, offline, well under a minute each; the test
    # suite runs them too). Other files, e.g. nonexec_*.py examples that download the published
    # weights or need data on a particular atlas, are rendered with their code but not run.
    "filename_pattern": "/plot_",
    # examples/demo.py is the `make demo` script, not a gallery page
    "ignore_pattern": r"demo\.py",
    "within_subsection_order": "_gallery_order.ExampleOrder",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "download_all_examples": False,
}

try:
    import pydata_sphinx_theme  # noqa: F401

    html_theme = "pydata_sphinx_theme"
except ImportError:
    html_theme = "alabaster"
html_title = "brainjepa_sk"
html_static_path = []


def _skip_metadata_request_methods(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated ``set_*_request`` methods (metadata routing): their
    docstrings refer to scikit-learn's own documentation, which this offline build lacks."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_request_methods)
