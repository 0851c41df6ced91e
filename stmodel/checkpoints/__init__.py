"""Checkpoints: the orbax store (named items, checksums, damaged steps set aside) and the
global model as a checkpoint or shipped folder holds it. Training writes them,
forecasting and downscaling read them; this package imports neither."""
