"""Tests of bridge/core/."""
