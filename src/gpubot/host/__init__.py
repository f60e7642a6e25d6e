"""The host commands (`gpubot status`, `claims`, `release --force`, `doctor`, `db copy`): the database, directly."""
