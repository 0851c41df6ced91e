"""Regional downscaling by fine-tuning the pretrained global transformer.

A coarse field (global or regional analysis, or a forecast) is interpolated to
the fine grid of a region; the network, whose transformer blocks come from the
pretrained global model, predicts the fine-scale residual from it, the fine
grid's static fields and the time of day and year.
"""
