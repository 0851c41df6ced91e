"""stmodel: a JAX-native 3D Earth-Specific Transformer for gridded weather data."""

__version__ = "0.1.0"
