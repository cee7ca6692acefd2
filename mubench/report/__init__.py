"""Tables and figures over every variant."""
