"""Models (load, save, hash), batched generation with its cache, KV/prefix reuse, length batching."""
