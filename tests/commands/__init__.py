"""Tests of bridge/commands/."""
