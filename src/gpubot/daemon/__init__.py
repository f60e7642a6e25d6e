"""`gpubot serve`: the long-running daemon. `serve` runs it; `wiring` builds it; the rest keeps it alive."""
