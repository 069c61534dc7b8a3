"""Tests of monitor/diagnosis/."""
