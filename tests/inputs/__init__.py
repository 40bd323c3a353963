"""Tests of bridge/inputs/."""
