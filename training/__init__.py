"""Training, evaluation, comparison and promotion of routing models."""
