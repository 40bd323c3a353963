"""Tests of bridge/mqtt/."""
