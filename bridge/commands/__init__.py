"""Commands the bridge takes over MQTT: one declaration each, one extension that handles them.

`declare` says what a command is (its topic, the config that enables it, its optional Home
Assistant button, its handler), `builtin` declares acknowledge and forget, `handling` is the
extension that subscribes to the enabled ones and answers, and `client` is the CLI's side
(`qlik2mqtt acknowledge`, `qlik2mqtt forget`: publish, wait for the answer).
"""
