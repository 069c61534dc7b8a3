"""Tests of monitor/intake/."""
