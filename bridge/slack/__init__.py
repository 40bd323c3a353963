"""Slack: failed reloads (and, if wanted, user activity) as Slack messages.

`messages` builds the built-in messages and names the kinds, `templates` a kind's own Jinja2
layout, `layout` picks between them for an event, `client` posts (slack_sdk), and `sink` is the
extension that feeds them from the event stream without ever blocking the MQTT path. Nothing
here is imported unless Slack is configured (or `test-slack` runs, or a template is checked).
"""
