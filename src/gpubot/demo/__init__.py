"""`gpubot demo`: the real daemon against the Slack stand-in and fake GPUs, printed as text."""
