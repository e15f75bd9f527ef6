"""The ACD: the pure routing engine and the runtime that applies its decisions (docs/packages/acd.md)."""
