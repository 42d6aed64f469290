"""Measuring, as the worker does it for every variant: the latency protocol and its statistics, the cell inputs and
whole-dataset throughput (``bench``), the quality metrics against fp32 and the references (``metrics``), and greedy
generation timed per token: time to first token, ms per token, tokens per second, agreement (``generation``). The
calibration texts of static quantization stay in ``core.inputs.calibration``: the recipes read them while they build, and
generation here uses the recipes' decoders, so calibration in this package would make a cycle with core.recipes.
"""
