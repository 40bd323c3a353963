"""Tests of bridge/slack/."""
