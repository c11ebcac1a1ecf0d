"""Notifications: e-mails when something a person waits for happens, and signed webhooks.

Other apps call one function where their state changes, `notify.event(kind=..., object_id=...)`; it
queues `tasks.event_dispatch_task` once the transaction commits. The dispatch turns the change into an
`Event` (once, by its key), e-mails the people it concerns (unless they turned that kind off) and makes a
`WebhookDelivery` per subscribed webhook, each posted by `tasks.webhook_deliver_task` with retries.
See docs/notifications.md.
"""
