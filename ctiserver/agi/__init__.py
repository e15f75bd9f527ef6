"""FastAGI: the listener Asterisk connects to for every IVR call, and the channel contract the IVR codes against."""
