"""Data layer: taxonomy, record schema, loading, validation, cleaning, masking, splitting, corpus."""
