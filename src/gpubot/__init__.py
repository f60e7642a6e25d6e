"""gpubot: shared NVIDIA GPUs made visible and fair, from Slack."""

__version__ = "0.1.0"
