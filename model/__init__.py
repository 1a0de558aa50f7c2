"""Routing models: rules (with the danger override), classifiers and the router that combines them."""
