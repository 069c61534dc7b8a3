"""Tests of monitor/sinks/."""
