"""Tests of monitor/observer/."""
