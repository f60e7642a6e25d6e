"""The pure core of gpubot: claims, durations, commands and policies.

Nothing here imports Slack, SQL, NVML, APScheduler, the environment or the wall clock.
"""
