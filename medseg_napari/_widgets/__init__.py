"""Thin Qt widgets: each collects parameters, calls the core and adds layers."""
