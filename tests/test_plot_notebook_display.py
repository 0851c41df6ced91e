"""Figures from stmodel.plot draw in Jupyter without %matplotlib inline."""

import pytest
from matplotlib.figure import Figure

from stmodel.plot.notebook_display import enable_notebook_display

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def shell():
    interactiveshell = pytest.importorskip("IPython.core.interactiveshell")
    shell = interactiveshell.InteractiveShell.instance()
    for formatter in shell.display_formatter.formatters.values():
        formatter.pop(Figure, None)  # as in a fresh kernel, where no backend was loaded
    yield shell
    interactiveshell.InteractiveShell.clear_instance()


def _figure() -> Figure:
    figure = Figure(figsize=(2, 2))
    figure.add_subplot().plot([0, 1], [1, 0])
    return figure


def test_a_figure_is_shown_as_png_in_ipython(shell):
    assert "image/png" not in shell.display_formatter.format(_figure())[0]
    assert enable_notebook_display()
    data, _ = shell.display_formatter.format(_figure())
    assert data["image/png"][:8] == PNG_SIGNATURE


def test_a_format_the_user_chose_is_kept(shell):
    shell.display_formatter.formatters["image/svg+xml"].for_type(Figure, lambda f: "<svg/>")
    assert not enable_notebook_display()
    data, _ = shell.display_formatter.format(_figure())
    assert "image/png" not in data and data["image/svg+xml"] == "<svg/>"


def test_nothing_happens_outside_ipython():
    pytest.importorskip("IPython")
    from IPython import get_ipython

    if get_ipython() is not None:
        pytest.skip("running inside IPython")
    assert not enable_notebook_display()
