"""The memory and compute plan: tracing under fake tensors, per-stage plans, the profile plan, arch configs."""
