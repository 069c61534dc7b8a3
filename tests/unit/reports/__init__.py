"""Tests of monitor/reports/."""
