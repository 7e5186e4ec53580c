"""Widgets on top of plain plotting functions.

Every interactive cell in the course calls `interactive_figure(plot_fn, ...)`:
the controls drive a function that returns a matplotlib Figure, and the
figure for the initial values is rendered at once. So a headless run
(papermill, nbval, a static viewer) still shows the content: widget state does
not survive headless runs (papermill #400), the figure does.

The returned box carries the CSS class `collab-interactive`, which the browser
tests use to find each control panel and its figure.
"""
from typing import Callable

import matplotlib.pyplot as plt

INTERACTIVE_CSS_CLASS = "collab-interactive"


def interactive_figure(plot_fn: Callable[..., "plt.Figure"], **controls):
    """Build controls -> figure. `controls` maps plot_fn's keyword names to ipywidgets.

    Returns an `ipywidgets.VBox([controls..., output])`. Each change of a control
    clears the output and draws `plot_fn(**current_values)` into it.
    """
    import ipywidgets as widgets
    from IPython.display import display

    output = widgets.Output()

    def redraw(_change=None):
        figure = plot_fn(**{name: control.value for name, control in controls.items()})
        with output:
            output.clear_output(wait=True)
            display(figure)
        plt.close(figure)

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([*controls.values(), output])
    box.add_class(INTERACTIVE_CSS_CLASS)
    return box
