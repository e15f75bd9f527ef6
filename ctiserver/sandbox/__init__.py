"""The sandbox Asterisk: Debian's Asterisk 22 in a debootstrap chroot, and `ctiserver asterisk up|down|...`."""
