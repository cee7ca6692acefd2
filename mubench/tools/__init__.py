"""Commands that are not pipeline stages: verify, sweeps, plan table, data and judge tools."""
