"""The host commands (`gpubot status`, `claims`, `release --force`, `doctor`): the database, read directly."""
