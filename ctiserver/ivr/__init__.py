"""The IVR: the tree, the pure walker, TTS and the runtime over FastAGI (docs/packages/ivr.md)."""
