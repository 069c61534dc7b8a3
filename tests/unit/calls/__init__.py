"""Tests of monitor/calls/."""
