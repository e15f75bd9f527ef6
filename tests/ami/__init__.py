"""Tests of ctiserver.ami."""
