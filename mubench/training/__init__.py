"""The one training loop, the shared losses and log-probs, (prompt, response) encoding."""
