"""Export and bundles (placeholder docstring; filled in below)."""
