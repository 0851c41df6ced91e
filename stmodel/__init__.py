"""stmodel: a JAX-native 3D Earth-Specific Transformer for gridded weather data.

The Python API (see README.md, "Python API")::

    import stmodel

    models = [stmodel.load_model(m.name) for m in stmodel.list_models()]
    forecast = stmodel.forecast(data, init_times="2000-01-04T00", leads="2d")
    scores = stmodel.evaluate(forecast, data)
    stmodel.plot_map(forecast, "geopotential", level=500, lead=48, path="z500.png")

Importing stmodel is cheap: JAX, xarray and matplotlib load when a function first needs them.
"""

from stmodel.api import (
    evaluate,
    forecast,
    list_models,
    load_model,
    plot_map,
    plot_truth_forecast_error,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "evaluate",
    "forecast",
    "list_models",
    "load_model",
    "plot_map",
    "plot_truth_forecast_error",
]
