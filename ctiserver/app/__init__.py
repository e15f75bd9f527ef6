"""The server as a program: the `ctiserver` command line, the settings of every feature, the wiring that
assembles the features, and the running server that starts and stops them in order."""
