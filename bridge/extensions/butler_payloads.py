"""Butler-compatible topics and payloads, so a Butler user's Node-RED flows keep working.

Butler publishes `host: directory/user` on `qliksense/session/start` and friends, the task name
on `qliksense/task_failure` (JSON with camelCase keys on `…_full`), and the active users on
`qliksense/users/active/count` and `…/usernames`.
"""

from __future__ import annotations

import json

from bridge.core.events import Event, LogEvent, TaskEvent, TaskEventType, UserEvent, UserEventType
from bridge.core.privacy import PLAIN, Privacy
from bridge.core.state import BridgeState

_USER_TOPICS = {
    UserEventType.SESSION_START: "session/start",
    UserEventType.SESSION_STOP: "session/stop",
    UserEventType.CONNECTION_OPEN: "connection/open",
    UserEventType.CONNECTION_CLOSE: "connection/close",
}
_TASK_TOPICS = {
    TaskEventType.TASK_FAILED: "task_failure",
    TaskEventType.TASK_ABORTED: "task_aborted",
}

Message = tuple[str, bytes]


def event_messages(event: Event, base: str, privacy: Privacy = PLAIN) -> list[Message]:
    """Butler's messages for one event (none for events Butler never published)."""
    if isinstance(event, LogEvent):
        return []
    if isinstance(event, UserEvent):
        who = f"{event.user_directory or ''}/{privacy.user_id(event.user_id) or ''}"
        return [(f"{base}/{_USER_TOPICS[event.event_type]}", f"{event.server}: {who}".encode())]
    topic = _TASK_TOPICS.get(event.event_type)
    if topic is None:
        return []
    return [
        (f"{base}/{topic}", (event.task_name or "").encode()),
        (f"{base}/{topic}_full", json.dumps(_full(event, privacy), ensure_ascii=False).encode()),
    ]


def _full(event: TaskEvent, privacy: Privacy) -> dict[str, str | None]:
    return {
        "hostName": event.server,
        "user": privacy.account(event.user),
        "taskName": event.task_name,
        "taskId": event.task_id,
        "appName": event.app_name,
        "appId": event.app_id,
        "logTimeStamp": event.log_timestamp,
        "logLevel": event.log_level,
        "executionId": event.execution_id,
        "logMessage": privacy.redact(event.message, privacy.user_part(event.user)),
    }


def active_user_messages(state: BridgeState, base: str, privacy: Privacy = PLAIN) -> list[Message]:
    """`users/active/count` and `users/active/usernames` (distinct user ids, as Butler)."""
    ids = {user_id for server in state.servers.values() for _, user_id in server.users()}
    treated = (privacy.user_id(user_id) for user_id in ids)
    names = sorted(name for name in treated if name is not None)
    return [
        (f"{base}/users/active/count", str(len(ids)).encode()),
        (f"{base}/users/active/usernames", json.dumps(names, ensure_ascii=False).encode()),
    ]
