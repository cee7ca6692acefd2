"""Foundations every layer uses: validated params, registries, atomic owned outputs, typed artifacts, pins,
runtime, and the Workspace that owns every path."""
