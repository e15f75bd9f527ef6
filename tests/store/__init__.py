"""Event store tests (a package so `tcpproxy` imports the same way from any test)."""
