"""Tests of bridge/extensions/."""
