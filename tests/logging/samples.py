"""Config files the logging tests share."""

from __future__ import annotations

#: A logs.conf as cn-infra agents ship it: field names capitalised (its decoder
#: matches keys in any case) and a hooks section (its sample even puts a ``Level``
#: into a hook, a key its decoder drops).
CN_INFRA_LOGS_CONF = """\
default-level: debug
loggers:
 - Name: "vpp-agent"
   Level: warn
 - name: "examplechild"
   LEVEL: error
hooks:
  fluent:
    Address: "192.0.2.10"
    Port: 24224
    Protocol: tcp
    Level: debug
  logstash:
    Address: "192.0.2.10"
    Port: 5000
    Protocol: tcp
    Levels: [error, fatal]
  syslog:
    Level: error
"""
