"""One module per DVC stage: the only code the CLI runs for a stage. A stage imports no other stage."""
