"""Callbacks the ACD asks for (kept places, scheduled callbacks): the pure planning rules, their durable
store, and the live service that hands them to the ACD and dials them."""
