"""The simulator over the production ACD engine, and the demo (docs/packages/sim.md)."""
